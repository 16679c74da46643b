"""The intake web service: create_app builds one Flask app from Settings (flaskr's factory pattern).

Nothing here may import TensorFlow, training or worker: the API image ships without them.
"""

from __future__ import annotations

from flask import Flask

from api import limits, locale, problems, security, services
from api.openapi import OPENAPI_CONFIG, ProblemApi
from core.config import Settings


def create_app(settings: Settings | None = None) -> Flask:
    """Settings default to the environment; tests pass their own (a temporary database, a test broker)."""
    settings = settings if settings is not None else Settings.from_env()
    app = Flask(__name__)
    app.config.from_mapping(
        SECRET_KEY=settings.secret_key,
        TESTING=settings.testing,
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        **OPENAPI_CONFIG,
    )
    app.json.ensure_ascii = False  # type: ignore[attr-defined]  # Japanese stays readable in responses
    security.init_app(app, settings)  # refuses the development SECRET_KEY outside the embedded mode
    services.init_app(app, settings)
    problems.init_app(app)
    locale.init_app(app)  # Flask-Babel: _() in templates and views, the agent's or customer's language
    _register_blueprints(app, ProblemApi(app))
    limits.init_app(app, settings)  # wraps the intake and sign-in views registered above
    return app


def _register_blueprints(app: Flask, api: ProblemApi) -> None:
    from api import agents, health, metrics, model_versions
    from api.email import bp as email_webhooks
    from api.intake import tickets, web

    api.register_blueprint(tickets.blp)
    app.register_blueprint(web.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)  # /metrics (Prometheus)
    app.register_blueprint(email_webhooks)  # /webhooks/email/{sendgrid,mailgun,postmark,raw}
    agents.init_app(app, api)  # /agent pages, sign-in, CSRF, bearer-token actions
    model_versions.init_app(app)  # /agent/models: versions, decisions, retrain and rollback buttons
