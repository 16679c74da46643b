"""Logging for every furiwake process: one stderr handler, structlog's processors, settings from LOG_LEVEL/LOG_FORMAT.

Every line, whether it comes from `logging.getLogger(__name__)`, `structlog.get_logger()`, Celery or a library,
goes through the same chain: context variables (a `ticket_id` bound with `structlog.contextvars.bound_contextvars`
lands on every line logged while it is bound), logger name, level, an ISO UTC timestamp, then the redaction of
personal data, then the renderer: readable key=value text for a terminal (`LOG_FORMAT=text`) or one JSON object per
line for a log collector (`LOG_FORMAT=json`).

Each entry point calls `configure_logging(settings)` once it has its Settings (api/wsgi.py, the Celery apps through
`install_celery_logging`, cli/main.py). Calling it again replaces its own handler, so tests and a CLI that
reconfigures never print a line twice.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from core.config import Settings

EMAIL_REDACTION = "<email>"
REDACTED = "<redacted>"
# Good enough to catch what a careless log line would carry (`a.b+tag@example.co.jp`); not a validator.
_ADDRESS = r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+"
# `"Taro Yamada" <taro@example.jp>` loses its quoted display name too; an unquoted name cannot be told from the
# words around it, which is why log calls carry ids and never a From header.
_EMAIL = re.compile(rf'(?:"[^"\n]*"\s*)?<{_ADDRESS}>|{_ADDRESS}', re.UNICODE)
# Values under these keys are customer content or identity whatever they look like: a name has no pattern to match.
SENSITIVE_KEYS = frozenset({
    "body", "customer", "customer_email", "customer_name", "display_name", "email", "from_addr", "from_name",
    "name", "recipient", "reply_to", "sender", "subject",
})
# Attributes a stdlib call may pass as `extra=` that belong on the line (ids only, never content).
EXTRA_KEYS = ("ticket_id", "ticket_ids", "agent_id", "batch_size", "route", "model_version")

_HANDLER_MARK = "_furiwake_handler"
_CELERY_RECEIVER = "furiwake.core.logs"


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is when the line is logged, not when logging was configured: pytest, click\x27s
    CliRunner and daemonising code swap sys.stderr, and a handler left holding a closed stream would fail."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def redact_email_addresses(text: str) -> str:
    if "@" not in text:  # every match has one; most values (levels, names, ids, times) have none: skip the regex
        return text
    return _EMAIL.sub(EMAIL_REDACTION, text)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact_email_addresses(value)
    if isinstance(value, dict):
        return {k: REDACTED if k in SENSITIVE_KEYS else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return type(value)(_scrub(v) for v in value)
    return value


def redact_personal_data(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """The last line of defence, not the policy: log lines carry ids, and this catches the line that forgot.

    E-mail addresses anywhere in the event text or a string value become `<email>` (tracebacks included: this
    runs after they are formatted); values under a key that names personal data (SENSITIVE_KEYS) are dropped.
    """
    return {key: REDACTED if key in SENSITIVE_KEYS else _scrub(value) for key, value in event_dict.items()}


def _shared_processors() -> list[Processor]:
    """What both a structlog call and a stdlib record get before rendering."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def _renderer(log_format: str, stream: TextIO) -> Processor:
    if log_format == "json":
        return structlog.processors.JSONRenderer(ensure_ascii=False)
    is_tty = bool(getattr(stream, "isatty", lambda: False)())
    # plain_traceback: a rich traceback would print local variables, which may hold a ticket's body.
    return structlog.dev.ConsoleRenderer(colors=is_tty, exception_formatter=structlog.dev.plain_traceback)


def make_formatter(settings: Settings, stream: TextIO) -> structlog.stdlib.ProcessorFormatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared_processors(), structlog.stdlib.ExtraAdder(allow=EXTRA_KEYS)],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            redact_personal_data,
            _renderer(settings.log_format, stream),
        ],
    )


def configure_logging(settings: Settings, *, stream: TextIO | None = None) -> None:
    """Route the root logger and structlog through one handler on `stream` (default: stderr) at settings.log_level.

    Idempotent: a handler this function installed earlier is replaced, other handlers on the root are left alone.
    """
    handler: logging.Handler = _StderrHandler() if stream is None else logging.StreamHandler(stream)
    handler.setFormatter(make_formatter(settings, sys.stderr if stream is None else stream))
    setattr(handler, _HANDLER_MARK, True)

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    logging.captureWarnings(True)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # No caching: a logger first used before configure_logging would otherwise keep the defaults for good.
        cache_logger_on_first_use=False,
    )


def adopt_library_loggers(names: Iterable[str]) -> None:
    """Let libraries that install their own handler (gunicorn's error log) log through ours instead: their
    handlers go, their lines propagate to the root, and LOG_LEVEL decides what is shown."""
    for name in names:
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)


def install_celery_logging(settings: Settings) -> None:
    """Configure logging now, and answer Celery's `setup_logging` signal so the worker, beat and trainer (parent
    and pool children) keep this configuration instead of Celery's own handlers and task-prefixed format.

    LOG_LEVEL wins over the `-l` option: Settings are the one source of configuration.
    """
    from celery import signals

    def _keep_ours(**_kwargs: Any) -> None:
        configure_logging(settings)

    configure_logging(settings)
    # weak=False: the receiver is a closure that would otherwise be collected as soon as this function returns.
    signals.setup_logging.disconnect(dispatch_uid=_CELERY_RECEIVER)  # called again: the newest settings win
    signals.setup_logging.connect(_keep_ours, weak=False, dispatch_uid=_CELERY_RECEIVER)
