"""Flask's ``app.json``: strict JSON in and out (:mod:`celery_app.strictjson`).

Every response body (``jsonify``, dicts returned by views, error bodies) is written with
``allow_nan=False`` and without lone surrogates, so no client ever receives ``Infinity`` or
text that is not UTF-8; ``request.get_json()`` refuses what :func:`strictjson.loads` refuses,
with a 400 naming the field.
"""

from __future__ import annotations

from typing import Any

from flask.json.provider import DefaultJSONProvider

from celery_app import strictjson
from celery_app.errors import InvalidRequest


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's default provider with the service's strict codec; keys keep their order."""

    sort_keys = False
    ensure_ascii = False

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs.setdefault("default", self.default)
        kwargs.setdefault("ensure_ascii", self.ensure_ascii)
        kwargs.setdefault("sort_keys", self.sort_keys)
        return strictjson.dumps(obj, **kwargs)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return strictjson.loads(s)
        except strictjson.InvalidJSON as exc:
            raise InvalidRequest(str(exc) if exc.located else f"invalid JSON: {exc}") from None
