"""RFC 9457 problem details: every error under /api/ (and the probes) is `application/problem+json`.

One handler for every HTTPException; Flask turns an unhandled exception into InternalServerError (logging the
traceback server-side first), so it comes through here too and the client sees no traceback. Browser pages get
a small HTML error page instead.

A database that cannot be reached is not a bug in the request: it answers 503 with Retry-After (problem+json, or
the error page for a browser), one log line instead of a traceback, so clients, the web form's customers and mail
providers' webhook retries all know to come back.
"""

from __future__ import annotations

import logging
import sqlite3
from http import HTTPStatus
from typing import Any, NoReturn

import marshmallow as ma
from flask import Flask, Response, abort, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from api.i18n import pick_language

PROBLEM_MIMETYPE = "application/problem+json"
ABOUT_BLANK = "about:blank"
# Problem types that say more than the status code; URNs because the service has no public documentation site.
VALIDATION = "urn:furiwake:problem:validation"
INVALID_JSON = "urn:furiwake:problem:invalid-json"
INVALID_ENCODING = "urn:furiwake:problem:invalid-encoding"
UNSUPPORTED_MEDIA_TYPE = "urn:furiwake:problem:unsupported-media-type"
NOT_READY = "urn:furiwake:problem:not-ready"
DATABASE_UNAVAILABLE = "urn:furiwake:problem:database-unavailable"
IDEMPOTENCY_KEY_REUSED = "urn:furiwake:problem:idempotency-key-reused"

# Seconds a client is asked to wait when the database is unreachable: long enough not to hammer a database that is
# restarting, short enough that a retrying client (or a mail provider) sees the recovery soon after it happens.
DATABASE_RETRY_AFTER = 5

_PROBLEM_PATHS = ("/api/", "/webhooks/", "/healthz", "/readyz")
# SQLite's own "try again later" errors; its other OperationalErrors (no such table, syntax) are bugs, not outages.
_SQLITE_UNAVAILABLE = ("database is locked", "database is busy", "unable to open database file", "disk i/o error")

log = logging.getLogger(__name__)


class ProblemSchema(ma.Schema):
    """The error body, for the OpenAPI document (responses are built by problem_response, not dumped)."""

    type = ma.fields.String(
        metadata={"description": "URI naming the kind of problem; about:blank when the status says it all"}
    )
    title = ma.fields.String(metadata={"description": "Short summary of the kind of problem"})
    status = ma.fields.Integer(metadata={"description": "HTTP status code"})
    detail = ma.fields.String(metadata={"description": "What went wrong with this request"})
    errors = ma.fields.Dict(
        keys=ma.fields.String(),
        metadata={
            "description": "Validation problems only: messages per field (body field, query parameter or header)"
        },
    )


def raise_problem(
    status: int, detail: str, *, type: str = ABOUT_BLANK, title: str | None = None, **extra: Any
) -> NoReturn:
    """Abort the request with a problem; extension members (e.g. `errors`) go into the body as they are."""
    try:
        abort(status)
    except HTTPException as error:
        error.problem = {"type": type, "title": title, "detail": detail, **extra}  # type: ignore[attr-defined]
        raise


def problem_response(
    status: int,
    *,
    detail: str | None = None,
    type: str = ABOUT_BLANK,
    title: str | None = None,
    headers: list[tuple[str, str]] | None = None,
    **extra: Any,
) -> Response:
    payload: dict[str, Any] = {"type": type, "title": title or HTTPStatus(status).phrase, "status": status}
    if detail:
        payload["detail"] = detail
    payload.update(extra)
    response = jsonify(payload)
    response.status_code = status
    response.mimetype = PROBLEM_MIMETYPE
    for name, value in headers or ():
        response.headers[name] = value
    return response


def wants_problem() -> bool:
    return request.path.startswith(_PROBLEM_PATHS)


def handle_http_exception(error: HTTPException) -> ResponseReturnValue:
    if error.response is not None:
        return error.response
    status = error.code or 500
    # Keep what the exception says beyond its body, e.g. `Allow` on a 405.
    headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]
    if not wants_problem():
        lang = pick_language(read_form=False)
        page = render_template("error.html", status=status, title=HTTPStatus(status).phrase, lang=lang)
        return page, status, headers
    problem: dict[str, Any] = dict(getattr(error, "problem", {}))
    problem.setdefault("detail", error.description)
    # flask_smorest.abort / webargs.flaskparser.abort put their extras in `data`.
    data = getattr(error, "data", None) or {}
    if "message" in data:
        problem["detail"] = data["message"]
    if "errors" in data:
        problem["errors"] = data["errors"]
    return problem_response(status, headers=headers, **problem)


def database_unreachable(error: BaseException) -> bool:
    """Whether a database error says "cannot reach or use the database right now" rather than "this is a bug".

    - a connection the pool found dead (SQLAlchemy marks it connection_invalidated), or no pooled connection free
      in time;
    - on PostgreSQL, psycopg's OperationalError (refused, reset, server shutting down, too many clients), which
      SQLAlchemy wraps as its OperationalError;
    - on SQLite, the lock still held when the busy timeout ran out, or a file that cannot be opened.
    """
    if isinstance(error, PoolTimeout):
        return True
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    if isinstance(error.orig, sqlite3.Error):
        return isinstance(error.orig, sqlite3.OperationalError) and str(error.orig).lower().startswith(
            _SQLITE_UNAVAILABLE
        )
    return isinstance(error, OperationalError)


def handle_database_error(error: DBAPIError | PoolTimeout) -> ResponseReturnValue:
    """503 + Retry-After for an unreachable database; any other database error stays the bug it is (a 500)."""
    if not database_unreachable(error):
        raise error
    cause = getattr(error, "orig", None) or error
    first_line = next(iter(str(cause).strip().splitlines()), "")
    log.warning(
        "database unreachable, answered 503 to %s %s: %s: %s",
        request.method,
        request.path,
        type(cause).__name__,
        first_line,
    )
    headers = [("Retry-After", str(DATABASE_RETRY_AFTER))]
    if not wants_problem():
        lang = pick_language(read_form=False)
        page = render_template("error.html", status=503, title=HTTPStatus(503).phrase, lang=lang)
        return page, 503, headers
    return problem_response(
        503,
        detail=(
            f"The database cannot be reached just now. Retry in {DATABASE_RETRY_AFTER} s; a retry with the same"
            " Idempotency-Key never makes a second ticket."
        ),
        type=DATABASE_UNAVAILABLE,
        title="Database unavailable",
        headers=headers,
    )


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(DBAPIError, handle_database_error)
    app.register_error_handler(PoolTimeout, handle_database_error)
