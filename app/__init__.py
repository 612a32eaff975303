"""The web process: a thin Flask layer that translates the HTTP API onto ``celery_app``."""

from __future__ import annotations

from flask import Flask
from werkzeug.routing import BaseConverter

from celery_app import create_celery
from celery_app.settings import Settings

from . import api, auth, errors, metrics, openapi, protocol, uploads, ws
from .jsonprovider import StrictJSONProvider
from .services import Services
from .ui import bp as ui_bp


class TaskIdConverter(BaseConverter):
    """A task id in a path: any segment except the collection's own words, so
    ``/api/v1/tasks/statistics`` can never also mean the task called "statistics"."""

    regex = r"(?!(?:statistics|upload|batch)$)[^/]+"
    part_isolating = True  # one path segment (werkzeug assumes otherwise for a regex with "/")


def create_app(settings: Settings | None = None) -> Flask:
    """Build the application; with no ``settings`` they are read from the environment."""
    settings = settings or Settings.from_env()
    app = Flask(__name__, static_folder=None)
    app.url_map.strict_slashes = False
    app.url_map.converters["task_id"] = TaskIdConverter
    app.json = StrictJSONProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_payload_bytes
    app.extensions["taskqueue"] = Services(settings, create_celery(settings))
    errors.init_app(app)
    auth.init_app(app, settings)
    uploads.init_app(app)
    protocol.init_app(app)
    metrics.init_app(app, lambda: app.extensions["taskqueue"].celery.runtime)
    api.init_app(app)
    app.register_blueprint(ui_bp)
    ws.init_app(app)
    openapi.init_app(app)
    return app
