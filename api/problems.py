"""RFC 9457 problem details: every error under /api/ (and the probes) is `application/problem+json`.

One handler for every HTTPException; Flask turns an unhandled exception into InternalServerError (logging the
traceback server-side first), so it comes through here too and the client sees no traceback. Browser pages get
a small HTML error page instead.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, NoReturn

import marshmallow as ma
from flask import Flask, Response, abort, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from api.i18n import pick_language, texts

PROBLEM_MIMETYPE = "application/problem+json"
ABOUT_BLANK = "about:blank"
# Problem types that say more than the status code; URNs because the service has no public documentation site.
VALIDATION = "urn:furiwake:problem:validation"
INVALID_JSON = "urn:furiwake:problem:invalid-json"
INVALID_ENCODING = "urn:furiwake:problem:invalid-encoding"
UNSUPPORTED_MEDIA_TYPE = "urn:furiwake:problem:unsupported-media-type"
NOT_READY = "urn:furiwake:problem:not-ready"

_PROBLEM_PATHS = ("/api/", "/healthz", "/readyz")


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
        page = render_template("error.html", status=status, title=HTTPStatus(status).phrase, lang=lang, t=texts(lang))
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


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http_exception)
