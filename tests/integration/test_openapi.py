"""/openapi.json is generated from the code and covers exactly the routes Flask serves;
/docs works with no internet."""

from __future__ import annotations

import re

from app.openapi import UndocumentedRoute, build_spec


def _flask_routes(app) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        routes |= {(path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}}
    return routes


def test_the_document_lists_exactly_the_routes_flask_serves(env):
    spec = env.client.get("/openapi.json").get_json()
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    assert documented == _flask_routes(env.app)
    assert spec["openapi"] == "3.1.0"


def test_a_route_without_a_declaration_cannot_be_served_undocumented(env):
    @env.app.get("/api/v1/forgotten")
    def forgotten():
        return {}

    try:
        build_spec(env.app)
    except UndocumentedRoute as exc:
        assert "/api/v1/forgotten" in str(exc)
    else:
        raise AssertionError("an undocumented route was accepted")


def test_the_document_describes_errors_auth_uploads_and_websockets(env):
    spec = env.client.get("/openapi.json").get_json()
    paths = spec["paths"]
    assert set(spec["components"]["securitySchemes"]) == {"ApiKey", "Bearer"}
    submit = paths["/api/v1/tasks"]["post"]
    assert {"201", "200", "400", "401", "403", "413", "500", "503"} <= set(submit["responses"])
    assert submit["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"}
    upload = paths["/api/v1/tasks/upload"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload
    assert paths["/admin/health"]["get"]["security"] == []
    assert "WebSocket" in paths["/ws"]["get"]["description"]
    assert "subscribe" in paths["/api/v1/ws/tasks/{client_id}"]["get"]["description"]
    links = submit["responses"]["201"]["links"]
    assert links["GetTask"]["operationId"] == "tasks_get"


def test_the_docs_page_and_its_assets_are_served_by_the_service(env):
    page = env.client.get("/docs/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert not re.search(r"""(src|href)=["']https?://""", html), "the page loads from the net"
    for asset in re.findall(r"""(?:src|href)=["']([^"']+\.(?:js|css))["']""", html):
        url = asset if asset.startswith("/") else f"/docs/{asset.removeprefix('./')}"
        assert env.client.get(url).status_code == 200, url
