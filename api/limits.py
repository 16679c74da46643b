"""Rate limits (flask-limiter): per client IP on public intake, per IP + account on the agents' sign-in.

The counters live in the broker's Redis when there is one, so every gunicorn worker (and every API machine) shares
them; in the embedded mode they live in each worker's memory (with `make run`'s two workers a client gets up to
twice the limit, which is still a limit). When Redis is down the limits fail open: a customer's ticket matters
more than a counter, and the broker outage is reported elsewhere.

Limits are attached here, by endpoint name, after the blueprints are registered, so the views' modules stay free of
rate-limit code; `RATE_LIMIT_INTAKE` / `RATE_LIMIT_SIGNIN` set them (`off` disables one).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from functools import partial
from typing import Any

from flask import Flask, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address
from redis.backoff import NoBackoff
from redis.retry import Retry
from werkzeug.exceptions import HTTPException

from api.i18n import pick_language
from api.problems import handle_http_exception
from core import metrics
from core.config import RATE_LIMIT_OFF, Settings

log = logging.getLogger(__name__)

EXTENSION = "furiwake_limiter"
# A batch of tickets counts one per ticket, against the same counter as the single-ticket endpoint.
BATCH_ENDPOINT = "tickets.TicketBatch"
API_INTAKE_SCOPE = "api-intake"
SIGNIN_ENDPOINT = "agents.login"
# A dead Redis must cost a request a few milliseconds, not redis-py's default retries with back-off.
_STORAGE_OPTIONS: dict[str, Any] = {"socket_connect_timeout": 0.25, "socket_timeout": 0.5,
                                    "retry": Retry(NoBackoff(), 0)}
_STORAGE_WARNING_EVERY_S = 30.0


def storage_uri(settings: Settings) -> str:
    """The broker's Redis (the same server and database), else this process's memory."""
    if settings.broker_url.startswith(("redis://", "rediss://", "redis+unix://")):
        return settings.broker_url
    return "memory://"


def signin_key() -> str:
    """Client IP + the account typed: one address guessing one agent's password is stopped without locking that
    agent out everywhere. The e-mail is hashed to keep keys short whatever was typed."""
    account = request.form.get("email", "").strip().lower()
    return f"{get_remote_address()}:{hashlib.sha256(account.encode('utf-8', 'replace')).hexdigest()[:32]}"


class _StorageOutageLog(logging.Filter):
    """flask-limiter logs a traceback for every request while its storage is unreachable (that is how it fails
    open); one warning line every half minute says the same."""

    def __init__(self) -> None:
        super().__init__()
        self._last = -math.inf

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info is None:
            return True
        now = time.monotonic()
        if now - self._last < _STORAGE_WARNING_EVERY_S:
            return False
        self._last = now
        error = record.exc_info[1]
        record.msg, record.args = "rate-limit storage unreachable, requests are not limited meanwhile: %s", (error,)
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info, record.exc_text = None, None
        return True


_outage_log = _StorageOutageLog()


def init_app(app: Flask, settings: Settings) -> Limiter:
    """Call after every blueprint is registered: the limits wrap `app.view_functions` by endpoint name."""
    limiter = Limiter(
        get_remote_address,
        storage_uri=storage_uri(settings),
        storage_options=_STORAGE_OPTIONS if storage_uri(settings) != "memory://" else {},
        swallow_errors=True,  # fail open: an unreachable Redis must not turn intake into 500s
        headers_enabled=False,  # Retry-After on refusals only (retry_after below), no X-RateLimit-* everywhere
        key_prefix="furiwake-limits",
    )
    limiter.init_app(app)
    _drop_app_wide_hooks(app, limiter)
    logging.getLogger("flask-limiter").addFilter(_outage_log)
    if settings.rate_limit_intake != RATE_LIMIT_OFF:
        _limit(app, limiter, "web.submit", settings.rate_limit_intake, get_remote_address)
        _limit(app, limiter, "tickets.TicketCollection", settings.rate_limit_intake, get_remote_address,
               scope=API_INTAKE_SCOPE)
        _limit(app, limiter, BATCH_ENDPOINT, settings.rate_limit_intake, get_remote_address, scope=API_INTAKE_SCOPE,
               cost=tickets_in_batch)
    if settings.rate_limit_signin != RATE_LIMIT_OFF and SIGNIN_ENDPOINT in app.view_functions:
        _limit(app, limiter, SIGNIN_ENDPOINT, settings.rate_limit_signin, signin_key)
    app.register_error_handler(RateLimitExceeded, _refused)
    app.extensions[EXTENSION] = limiter
    return limiter


def _drop_app_wide_hooks(app: Flask, limiter: Limiter) -> None:
    """Remove the hooks flask-limiter runs around every request of the app (before, after, teardown).

    They serve what furiwake never configures: default, application and meta limits, X-RateLimit-* headers
    (headers_enabled=False), deductions on a response (deduct_when) and the in-memory fallback. The limits it does
    set wrap their views (_limit), and each such wrapper checks its limit itself; a refusal's Retry-After reads
    the limit the wrapper recorded on the request. Left in, the hooks cost every request, intake included, about a
    tenth of its CPU to conclude that nothing applies.
    """
    if limiter.limit_manager.default_limits or limiter.limit_manager.application_limits or limiter._meta_limits:
        raise RuntimeError("app-wide rate limits need flask-limiter's request hooks")

    def registered_by_limiter(hook: Any) -> bool:
        return getattr(hook, "__self__", None) is limiter or (isinstance(hook, partial) and limiter in hook.args)

    hook_lists: list[dict[Any, list[Any]]] = [app.before_request_funcs, app.after_request_funcs,
                                              app.teardown_request_funcs]
    for hooks in hook_lists:
        app_wide = hooks.get(None, [])
        kept = [hook for hook in app_wide if not registered_by_limiter(hook)]
        if len(kept) != len(app_wide) - 1:
            raise RuntimeError("flask-limiter's request hooks are not the ones this module knows how to remove")
        hooks[None] = kept


def _limit(app: Flask, limiter: Limiter, endpoint: str, value: str, key: Any, scope: str | None = None,
           cost: Any = 1) -> None:
    """Limit `endpoint`'s POSTs; endpoints given the same `scope` draw on one counter per key."""
    view: Any = app.view_functions[endpoint]
    if scope is None:
        wrap = limiter.limit(value, key_func=key, methods=["POST"], cost=cost)
    else:
        wrap = limiter.shared_limit(value, scope, key_func=key, methods=["POST"], cost=cost)
    app.view_functions[endpoint] = wrap(view)


def tickets_in_batch() -> int:
    """What a batch request costs against the intake limit: one per ticket it carries. A body that is not a batch
    costs 1 (it is refused by validation anyway); the count is capped at what a batch may hold."""
    from api.parsing import json_body
    from api.schemas import MAX_BATCH_TICKETS

    try:
        body = json_body(request)  # parsed once: the view's parser reads it from there
    except HTTPException:
        return 1  # not JSON: the parser answers it
    tickets = body.get("tickets") if isinstance(body, dict) else None
    return min(max(len(tickets), 1), MAX_BATCH_TICKETS) if isinstance(tickets, list) else 1


def retry_after(app: Flask, error: RateLimitExceeded) -> int:
    """Whole seconds until the refused limit's window resets (at least 1)."""
    limiter: Limiter = app.extensions[EXTENSION]
    try:
        current = limiter.current_limit
        if current is not None:
            return max(1, math.ceil(current.window[0] - time.time()))  # window[0]: when it resets
    except Exception:  # the storage went away between the refusal and now: the window's length will do
        log.warning("rate-limit window unavailable for Retry-After", exc_info=True)
    return max(1, int(error.limit.limit.get_expiry()))


def _refused(error: RateLimitExceeded) -> ResponseReturnValue:
    """429 with Retry-After: problem+json under /api/, the form again (nothing typed is lost) for a customer, a
    short page for the sign-in."""
    from flask import current_app

    metrics.rate_limited("signin" if request.endpoint == SIGNIN_ENDPOINT else "intake")
    seconds = retry_after(current_app, error)
    error.retry_after = seconds  # werkzeug's TooManyRequests turns this into the Retry-After header
    headers = {"Retry-After": str(seconds)}
    if request.endpoint == "web.submit":
        lang = pick_language()
        values = {name: request.form.get(name, "") for name in ("subject", "customer_email", "body")}
        errors = [_("Too many messages from your address in a short time. Please wait about %(seconds)s s and send "
                    "it again.", seconds=seconds)]
        return render_template("form.html", lang=lang, values=values, errors=errors), 429, headers
    if request.endpoint == SIGNIN_ENDPOINT:
        detail = _("Too many sign-in attempts for this account from your address. Wait %(seconds)s s and try "
                   "again.", seconds=seconds)
        page = render_template("agent/error.html", status=429, title=_("Too many attempts"), detail=detail)
        return page, 429, headers
    error.description = f"Too many requests from your address ({error.description}). Retry in {seconds} s."
    return handle_http_exception(error)
