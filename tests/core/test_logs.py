"""Logging from Settings: JSON or text, LOG_LEVEL, the bound ticket id on stdlib lines, no e-mail addresses."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog

from core.config import Settings
from core.logs import configure_logging

ROOT = Path(__file__).resolve().parents[2]


def _settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"FURIWAKE_HOME": str(tmp_path), **env})


@pytest.fixture
def configured(tmp_path: Path) -> Iterator[Callable[..., io.StringIO]]:
    """configure_logging onto a StringIO; the root logger and structlog are put back as they were afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    def configure(**env: str) -> io.StringIO:
        stream = io.StringIO()
        configure_logging(_settings(tmp_path, **env), stream=stream)
        return stream

    yield configure
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def _json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_stdlib_line_carries_the_bound_ticket_id_as_json(configured: Callable[..., io.StringIO]) -> None:
    stream = configured(LOG_FORMAT="json", LOG_LEVEL="INFO")
    ticket_id = str(uuid.uuid4())
    with structlog.contextvars.bound_contextvars(ticket_id=ticket_id):
        logging.getLogger("api.intake.tickets").info("ticket %s", "accepted")
    logging.getLogger("api.intake.tickets").info("after the ticket")

    inside, after = _json_lines(stream)
    assert inside["event"] == "ticket accepted"
    assert inside["ticket_id"] == ticket_id
    assert inside["level"] == "info"
    assert inside["logger"] == "api.intake.tickets"
    assert str(inside["timestamp"]).endswith("Z")  # ISO 8601, UTC
    assert "ticket_id" not in after


def test_structlog_loggers_go_through_the_same_handler(configured: Callable[..., io.StringIO]) -> None:
    stream = configured(LOG_FORMAT="json")
    structlog.get_logger("worker.routing").info("routed", route="Account", ticket_id="t-1")

    (line,) = _json_lines(stream)
    assert line == {**line, "event": "routed", "route": "Account", "ticket_id": "t-1", "logger": "worker.routing",
                    "level": "info"}


def test_log_level_warning_drops_info(configured: Callable[..., io.StringIO]) -> None:
    stream = configured(LOG_FORMAT="json", LOG_LEVEL="WARNING")
    log = logging.getLogger("api.agents.web")
    log.info("agent 3 signed in")
    structlog.get_logger("api").info("also dropped")
    log.warning("failed sign-in")

    assert [line["event"] for line in _json_lines(stream)] == ["failed sign-in"]


def test_email_addresses_are_redacted(configured: Callable[..., io.StringIO]) -> None:
    stream = configured(LOG_FORMAT="json")
    logging.getLogger("api.email").info("mail from %s", '"Yamada Taro" <taro.yamada+support@example.co.jp>')
    structlog.get_logger("api").warning("bounced", note="reply to hanako@example.com", customer_email="a@b.jp",
                                        customer_name="Yamada Hanako")
    try:
        raise ValueError("no account for jiro@example.org")
    except ValueError:
        logging.getLogger("api").exception("lookup failed")

    text = stream.getvalue()
    for personal in ("taro.yamada", "Yamada Taro", "hanako@", "a@b.jp", "Yamada Hanako", "jiro@"):
        assert personal not in text
    first, second, third = _json_lines(stream)
    assert first["event"] == "mail from <email>"
    assert second["note"] == "reply to <email>"
    assert second["customer_email"] == second["customer_name"] == "<redacted>"
    assert "ValueError: no account for <email>" in str(third["exception"])


def test_configuring_twice_prints_each_line_once(configured: Callable[..., io.StringIO]) -> None:
    configured(LOG_FORMAT="json")
    stream = configured(LOG_FORMAT="json")
    logging.getLogger("cli").info("once")

    assert stream.getvalue().count("once") == 1
    ours = [h for h in logging.getLogger().handlers if isinstance(h.formatter, structlog.stdlib.ProcessorFormatter)]
    assert len(ours) == 1


def test_text_format_is_one_readable_line(configured: Callable[..., io.StringIO]) -> None:
    stream = configured(LOG_FORMAT="text")
    with structlog.contextvars.bound_contextvars(ticket_id="abc"):
        logging.getLogger("worker.tasks").warning("sweep re-enqueued %d stale tickets", 3)

    (line,) = stream.getvalue().splitlines()
    assert "\x1b[" not in line  # no colour codes when the stream is not a terminal
    assert "[warning" in line and "sweep re-enqueued 3 stale tickets" in line
    assert "ticket_id=abc" in line and "worker.tasks" in line
    assert not line.lstrip().startswith("{")


def _run(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "FURIWAKE_HOME": str(tmp_path), **env}
    full_env.pop("BROKER_URL", None)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=full_env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_celery_keeps_our_configuration(tmp_path: Path) -> None:
    """In a fresh interpreter, as a worker starts: Celery's logging set-up leaves our single handler in place."""
    code = (
        "import logging\n"
        "from celery import Celery\n"
        "from celery.utils.log import get_task_logger\n"
        "from core.config import Settings\n"
        "from core.logs import install_celery_logging\n"
        "settings = Settings.from_env()\n"
        "install_celery_logging(settings)\n"
        "app = Celery('t', broker='memory://')\n"
        "app.log.setup(loglevel='DEBUG', redirect_stdouts=True)\n"
        "assert len(logging.getLogger().handlers) == 1, logging.getLogger().handlers\n"
        "get_task_logger('worker.tasks').info('routed %d', 2)\n"
        "logging.getLogger('worker.tasks').debug('not shown at INFO')\n"
        "print('done')\n"
    )
    result = _run(code, tmp_path, LOG_FORMAT="json", LOG_LEVEL="INFO")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"  # stdout not redirected into the log by Celery
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert [(line["event"], line["level"], line["logger"]) for line in lines] == [("routed 2", "info", "worker.tasks")]


def test_the_wsgi_entry_logs_an_intake_at_info_with_its_ticket_id(tmp_path: Path) -> None:
    """The gunicorn entry point, not create_app: INFO lines are kept, carry the ticket id, not the customer."""
    from core.migrate import upgrade

    database_url = f"sqlite:///{tmp_path / 'furiwake.db'}"
    upgrade(database_url)
    code = (
        "import api.wsgi\n"
        "client = api.wsgi.app.test_client()\n"
        "response = client.post('/api/v1/tickets', json={'body': 'パスワードを忘れました',"
        " 'customer_email': 'taro@example.jp', 'customer_name': 'Yamada Taro'})\n"
        "assert response.status_code == 202, response.get_data(as_text=True)\n"
        "print(response.get_json()['id'])\n"
    )
    result = _run(code, tmp_path, LOG_FORMAT="json", LOG_LEVEL="INFO", DATABASE_URL=database_url)
    assert result.returncode == 0, result.stderr
    ticket_id = result.stdout.strip()
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    intake = [line for line in lines if line.get("ticket_id") == ticket_id]
    assert intake, result.stderr
    assert intake[0]["level"] == "info" and intake[0]["logger"] == "api.intake.tickets"
    assert "taro@example.jp" not in result.stderr and "Yamada Taro" not in result.stderr
