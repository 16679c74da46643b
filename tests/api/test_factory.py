"""The app factory itself: configuration from Settings or the environment, the shared objects, the import boundary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from flask import Flask, g
from sqlalchemy import text

from api import create_app
from api.services import get_session
from core.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_config_comes_from_settings(make_settings) -> None:
    settings = make_settings(database_url="sqlite://", max_request_bytes=4096)
    app = create_app(settings)
    assert app.testing
    assert app.config["SECRET_KEY"] == "test-secret"
    assert app.config["MAX_CONTENT_LENGTH"] == 4096
    services = app.extensions["furiwake"]
    assert services.settings is settings
    assert services.celery.conf.broker_url == settings.broker_url
    assert str(services.engine.url) == "sqlite://"


def test_settings_default_to_the_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FURIWAKE_HOME", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    monkeypatch.setenv("SECRET_KEY", "from-the-environment")
    app = create_app()
    assert not app.testing
    assert app.config["SECRET_KEY"] == "from-the-environment"
    assert app.config["MAX_CONTENT_LENGTH"] == Settings.max_request_bytes
    assert str(app.extensions["furiwake"].engine.url).endswith("env.db")


def test_blueprints_are_registered(app: Flask) -> None:
    assert {"tickets", "web", "health", "api-docs"} <= set(app.blueprints)


def test_request_session_is_shared_then_closed(app: Flask) -> None:
    engine = app.extensions["furiwake"].engine
    with app.test_request_context():
        session = get_session()
        assert get_session() is session
        session.execute(text("SELECT 1"))
        assert engine.pool.checkedout() == 1
    assert engine.pool.checkedout() == 0
    with app.app_context():
        assert "db_session" not in g


def test_healthz_answers(client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_openapi_cli_prints_the_document(runner) -> None:
    result = runner.invoke(args=["openapi", "print"])
    assert result.exit_code == 0, result.output
    assert "/api/v1/tickets" in json.loads(result.output)["paths"]


def test_api_never_imports_tensorflow(tmp_path: Path) -> None:
    """In a fresh interpreter: neither create_app nor the gunicorn entry point pulls in the ML stack."""
    code = (
        "import sys\n"
        "from api import create_app\n"
        "create_app()\n"
        "import api.wsgi\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in {'tensorflow', 'keras', 'training', 'worker'})\n"
        "assert not heavy, heavy\n"
        "print('clean')\n"
    )
    env = {**os.environ, "FURIWAKE_HOME": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    env.pop("BROKER_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "clean"
