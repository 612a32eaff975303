"""``GET /api/v1/whoami``: the role the caller's credentials carry.

Clients that adapt to the caller (the console hides admin actions from a ``user``) ask here
instead of probing an admin route for a 403. With auth off every caller is ``admin``.
"""

from __future__ import annotations

from flask import Blueprint, g
from marshmallow import Schema, fields

from ..services import services
from .document import document

bp = Blueprint("whoami", __name__, url_prefix="/api/v1")


class WhoAmISchema(Schema):
    role = fields.String(required=True, metadata={"enum": ["admin", "user"]})
    auth_enabled = fields.Boolean(required=True)


@bp.get("/whoami")
@document(summary="The caller's role", tags=("auth",), responses={200: WhoAmISchema})
def whoami():
    """``{"role", "auth_enabled"}``: the role of the credentials presented (checked by the gate)."""
    enabled = services().settings.auth_enabled
    return {"role": g.get("role", "admin") if enabled else "admin", "auth_enabled": enabled}
