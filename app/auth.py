"""Authentication and roles, checked in one place for every route.

Off unless ``AUTH_ENABLED``. When on, a ``before_request`` gate runs after routing and before
any view: deny by default, so a route added later needs credentials without anyone
remembering to say so. Only ``/admin/health``, ``/metrics`` and the console's pages
(``/ui``, which hold no data: what they show is fetched through this gate) are public.

- ``X-API-Key`` is looked up among ``API_KEYS`` (``key:role,…``) by comparing SHA-256 digests
  with :func:`hmac.compare_digest` against every configured key (no early exit).
- ``Authorization: Bearer <JWT>`` (HS256, ``JWT_SECRET_KEY``, ``exp`` required) is verified by
  flask-jwt-extended, whose error loaders answer 401 in the contract's shape (not 422).
- WebSocket routes also take ``?api_key=`` / ``?token=``, checked before the handshake.
- Roles: ``admin`` may do everything; ``user`` everything but ``/admin/*`` (403).
Credentials are never logged: failures are logged by reason only.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping

from flask import Flask, g, request
from flask_jwt_extended import JWTManager, get_jwt, verify_jwt_in_request

from celery_app.errors import TaskqueueError
from celery_app.settings import Settings

from .errors import error_response

logger = logging.getLogger(__name__)

ROLES = ("admin", "user")
ANONYMOUS = "anonymous"
PUBLIC_ENDPOINTS = frozenset({"admin.health", "prometheus_metrics"})
#: The console's pages and assets carry no data; what they load goes through this gate.
PUBLIC_BLUEPRINTS = frozenset({"ui"})
ADMIN_BLUEPRINTS = frozenset({"admin", "dlq", "audit"})
MIN_SECRET_BYTES = 32


class ConfigurationError(TaskqueueError):
    """Settings that must stop the service from starting."""


def parse_api_keys(raw: str) -> dict[bytes, str]:
    """``key:role,key:role`` as {SHA-256 of key: role}; bad entries stop the service."""
    keys: dict[bytes, str] = {}
    for entry in filter(None, (part.strip() for part in raw.split(","))):
        key, sep, role = entry.rpartition(":")
        if not sep or not key or role not in ROLES:
            raise ConfigurationError(
                "API_KEYS must be comma-separated key:role pairs with role admin or user "
                f"(entry {len(keys) + 1} is not)")
        keys[hashlib.sha256(key.encode()).digest()] = role
    return keys


def check_settings(settings: Settings) -> dict[bytes, str]:
    """Refuse to start with auth on but no way to authenticate, or a weak JWT secret."""
    keys = parse_api_keys(settings.api_keys)
    secret = settings.jwt_secret_key.encode()
    if not keys and not secret:
        raise ConfigurationError("AUTH_ENABLED=true needs API_KEYS or JWT_SECRET_KEY (or both)")
    if secret and len(secret) < MIN_SECRET_BYTES:
        raise ConfigurationError(
            f"JWT_SECRET_KEY must be at least {MIN_SECRET_BYTES} bytes for HS256 "
            f"(it is {len(secret)})")
    return keys


def role_for_key(keys: Mapping[bytes, str], presented: str) -> str | None:
    """The role of an API key, comparing in constant time against every configured key."""
    digest = hashlib.sha256(presented.encode()).digest()
    found = None
    for known, role in keys.items():
        if hmac.compare_digest(digest, known):
            found = role
    return found


def key_actor(key: str) -> str:
    """How the audit log names an API key's holder: ``key:<first 8 hex of its SHA-256>``
    (enough to tell keys apart, useless to recover one)."""
    return "key:" + hashlib.sha256(key.encode()).hexdigest()[:8]


def actor() -> str:
    """Who makes the current request, for the audit log: the JWT's ``sub``, an API key's
    :func:`key_actor`, or ``anonymous`` (auth off)."""
    return g.get("actor", ANONYMOUS)


def _unauthorized(reason: str):
    logger.info("rejected request to %s: %s", request.path, reason)
    return error_response(401, "missing or invalid credentials")


def _role_from_jwt(websocket: bool) -> str | None:
    """Verify the bearer (or, on a WebSocket, ``?token=``) JWT; its ``role`` claim."""
    verify_jwt_in_request(locations=["query_string"] if websocket and request.args.get("token")
                          else ["headers"])
    claims = get_jwt()
    if "exp" not in claims:
        raise _MissingExpiry()
    return claims.get("role")


class _MissingExpiry(Exception):
    """A token without ``exp`` would never expire: refused."""


def _install_jwt(app: Flask, secret: str) -> None:
    app.config.update(JWT_SECRET_KEY=secret, JWT_ALGORITHM="HS256",
                      JWT_DECODE_ALGORITHMS=["HS256"], JWT_TOKEN_LOCATION=["headers"],
                      JWT_QUERY_STRING_NAME="token")
    jwt = JWTManager(app)

    def reject(*args: object):
        return _unauthorized("invalid token")

    for loader in (jwt.expired_token_loader, jwt.invalid_token_loader, jwt.unauthorized_loader,
                   jwt.needs_fresh_token_loader, jwt.revoked_token_loader,
                   jwt.token_verification_failed_loader, jwt.user_lookup_error_loader):
        loader(reject)
    app.register_error_handler(_MissingExpiry, lambda _: _unauthorized("token without exp"))


def init_app(app: Flask, settings: Settings) -> None:
    """Install the gate when ``AUTH_ENABLED``; raises :class:`ConfigurationError` on bad setup."""
    if not settings.auth_enabled:
        return
    keys = check_settings(settings)
    if settings.jwt_secret_key:
        _install_jwt(app, settings.jwt_secret_key)

    @app.before_request
    def gate():
        if request.endpoint in PUBLIC_ENDPOINTS or request.blueprint in PUBLIC_BLUEPRINTS:
            return None
        websocket = request.url_rule is not None and request.url_rule.websocket
        key = request.headers.get("X-API-Key") or (websocket and request.args.get("api_key"))
        if key:
            role = role_for_key(keys, key)
            if role is None:
                return _unauthorized("unknown API key")
            g.actor = key_actor(key)
        elif settings.jwt_secret_key and (request.headers.get("Authorization") or
                                          (websocket and request.args.get("token"))):
            role = _role_from_jwt(websocket)
            g.actor = str(get_jwt().get("sub") or "jwt")
        else:
            return _unauthorized("no credentials")
        admin_only = request.path.startswith("/admin") or request.blueprint in ADMIN_BLUEPRINTS
        if role not in ROLES or (admin_only and role != "admin"):
            return error_response(403, "admin role required" if role in ROLES
                                  else "token has no valid role")
        g.role = role  # for GET /api/v1/whoami
        return None
