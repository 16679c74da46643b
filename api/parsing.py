"""Request parsing for the JSON API: webargs' Flask parser, strict about what it accepts and answering in problems.

webargs on its own would treat a non-JSON Content-Type as "no body" and invalid UTF-8 as invalid JSON; a client
deserves to be told which of its mistakes it made (415, 400 encoding, 400 JSON, 422/400 fields).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NoReturn

import flask
import marshmallow as ma
from webargs.flaskparser import FlaskParser, is_json_request

from api.problems import INVALID_ENCODING, INVALID_JSON, UNSUPPORTED_MEDIA_TYPE, VALIDATION, raise_problem


def _flatten(messages: Any) -> dict[str, Any]:
    """webargs nests field errors under their location ({"json": {"body": [...]}}); the client wants the fields."""
    if not isinstance(messages, Mapping):
        return {"_schema": messages}
    flat: dict[str, Any] = {}
    for location_messages in messages.values():
        flat.update(location_messages if isinstance(location_messages, Mapping) else {"_schema": location_messages})
    return flat


def _summary(errors: Mapping[Any, Any], prefix: str = "") -> str:
    """One line: `field: message` for each field; a nested schema's fields (a batch's tickets) as `tickets.0.body`."""
    def text(value: Any) -> str:
        return " ".join(map(str, value)) if isinstance(value, list) else str(value)

    return "; ".join(_summary(messages, f"{prefix}{field}.") if isinstance(messages, Mapping)
                     else f"{prefix}{field}: {text(messages)}" for field, messages in errors.items())


def read_body(req: flask.Request, cache: bool = True) -> bytes:
    """The whole request body, or a 413 when it is larger than MAX_CONTENT_LENGTH.

    With a Content-Length over the limit werkzeug refuses before reading anything. A body without one (chunked;
    gunicorn marks such input terminated) is read only up to the limit, and werkzeug then stops there without an
    error, so a larger body would arrive silently cut short: a body that fills the limit is refused instead."""
    raw = req.get_data(cache=cache)
    limit = req.max_content_length
    if req.content_length is None and limit is not None and len(raw) >= limit:
        flask.abort(413)
    return raw


# Where json_body keeps a request's parsed body, so that what reads it before the view (the batch endpoint's rate
# limit counts its tickets) and the view's parser parse it once between them.
_PARSED = "furiwake.json_body"


def json_body(req: flask.Request) -> Any:
    """The request's JSON body, parsed once per request; a problem (415, 400) when it is not JSON."""
    if _PARSED not in req.environ:
        req.environ[_PARSED] = _parse_json(req)
    return req.environ[_PARSED]


def _parse_json(req: flask.Request) -> Any:
    if not is_json_request(req):
        raise_problem(
            415,
            f"Send the request body as application/json, not {req.mimetype or 'no Content-Type'}.",
            type=UNSUPPORTED_MEDIA_TYPE,
        )
    raw = read_body(req)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise_problem(400, f"The request body is not valid UTF-8 (byte {exc.start}).", type=INVALID_ENCODING)
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        detail = str(exc) if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        raise_problem(400, f"The request body is not valid JSON: {detail}.", type=INVALID_JSON)


class ProblemParser(FlaskParser):
    def _raw_load_json(self, req: flask.Request) -> Any:
        return json_body(req)

    def handle_error(
        self,
        error: ma.ValidationError,
        req: flask.Request,
        schema: ma.Schema,
        *,
        error_status_code: int | None,
        error_headers: Mapping[str, str] | None,
    ) -> NoReturn:
        errors = _flatten(error.messages)
        raise_problem(
            error_status_code or self.DEFAULT_VALIDATION_STATUS,
            _summary(errors),
            type=VALIDATION,
            title="Invalid request",
            errors=errors,
        )
