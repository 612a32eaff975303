"""/openapi.json is generated from the code and covers exactly the routes Flask serves;
/docs works with no internet."""

from __future__ import annotations

import re

import pytest
from openapi_spec_validator import validate

from app import create_app
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


def _secured_document(env) -> dict:
    settings = env.settings.with_overrides(auth_enabled=True, api_keys="k-0123456789:admin")
    client = create_app(settings).test_client()
    return client.get("/openapi.json", headers={"X-API-Key": "k-0123456789"}).get_json()


def test_the_document_describes_errors_auth_uploads_and_websockets(env):
    spec = _secured_document(env)
    paths = spec["paths"]
    assert set(spec["components"]["securitySchemes"]) == {"ApiKey", "Bearer"}
    submit = paths["/api/v1/tasks"]["post"]
    assert {"201", "200", "400", "401", "403", "413", "422", "500", "503"} <= set(
        submit["responses"])
    assert submit["security"] == [{"ApiKey": []}, {"Bearer": []}]
    assert submit["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"}
    upload = paths["/api/v1/tasks/upload"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload
    assert paths["/admin/health"]["get"]["security"] == []
    assert "WebSocket" in paths["/ws"]["get"]["description"]
    assert "subscribe" in paths["/api/v1/ws/tasks/{client_id}"]["get"]["description"]
    links = submit["responses"]["201"]["links"]
    assert links["GetTask"]["operationId"] == "tasks_get"


def test_with_auth_off_the_document_asks_for_no_credentials(env):
    spec = env.client.get("/openapi.json").get_json()
    assert "securitySchemes" not in spec.get("components", {})
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert operation["security"] == [], (path, method)
            assert not {"401", "403"} & set(operation["responses"]), (path, method)


@pytest.mark.parametrize("secured", [False, True])
def test_the_document_is_valid_openapi_with_unique_operation_ids(env, secured):
    spec = _secured_document(env) if secured else env.client.get("/openapi.json").get_json()
    validate(spec)  # openapi-spec-validator: raises on any violation
    ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))


def test_websocket_routes_document_their_426(env):
    spec = env.client.get("/openapi.json").get_json()
    for path in ("/ws", "/api/v1/ws/tasks/{client_id}"):
        response = spec["paths"][path]["get"]["responses"]["426"]
        assert response["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"}


def test_each_task_type_is_a_complete_submit_variant_with_its_handlers_limits(env):
    schemas = env.client.get("/openapi.json").get_json()["components"]["schemas"]
    mapping = schemas["Submit"]["discriminator"]["mapping"]
    assert set(mapping) == {"echo", "email", "fail", "file.process", "sleep"}
    sleep = schemas["SubmitSleep"]
    assert {"type", "payload", "priority", "max_retries", "timeout", "metadata",
            "scheduled_at"} <= set(sleep["properties"])
    assert schemas["SleepPayload"]["properties"]["seconds"] == {
        "type": "number", "default": 1.0, "minimum": 0.0, "maximum": 3600.0}


def test_the_docs_page_and_its_assets_are_served_by_the_service(env):
    page = env.client.get("/docs/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert not re.search(r"""(src|href)=["']https?://""", html), "the page loads from the net"
    for asset in re.findall(r"""(?:src|href)=["']([^"']+\.(?:js|css))["']""", html):
        url = asset if asset.startswith("/") else f"/docs/{asset.removeprefix('./')}"
        assert env.client.get(url).status_code == 200, url
