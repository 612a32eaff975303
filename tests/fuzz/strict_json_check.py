"""A schemathesis check of our own (loaded through ``SCHEMATHESIS_HOOKS``): every JSON response
body is strict JSON — no ``NaN``/``Infinity`` (which Python's parser, and so schemathesis's
schema check, would accept), no lone surrogates, valid UTF-8."""

from __future__ import annotations

import schemathesis

from celery_app import strictjson


@schemathesis.check
def strict_json_body(ctx, response, case):  # noqa: ANN001, ANN201 (schemathesis's signature)
    """Fail when a response that says it is JSON is not strict JSON."""
    content_type = ",".join(response.headers.get("content-type", []))
    if "json" not in content_type or not response.content:
        return None
    try:
        strictjson.loads(response.content)
    except strictjson.InvalidJSON as exc:
        raise AssertionError(f"response body is not strict JSON: {exc}") from None
    return None
