"""App-wide protections: security headers on every response, the session cookie's flags, trusted proxies, and the
start-up checks (core/startup_checks.py: `furiwake run` makes them too, without importing Flask).

Ticket text is the customers' and untrusted: templates print it through Jinja's autoescape only, and the
Content-Security-Policy below allows no inline script or style, so even a missed escape could not run a script.
A blueprint may send a stricter header of its own (the agents' pages add `Cache-Control: no-store`); headers it
already set are left as they are.
"""

from __future__ import annotations

import logging

from flask import Flask, Response
from werkzeug.middleware.proxy_fix import ProxyFix

from core.config import Settings
from core.startup_checks import plain_http_warning, require_secret_key

log = logging.getLogger(__name__)

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}

def _add_security_headers(response: Response) -> Response:
    """Add each header the response does not have yet. One pass over its headers, not Headers.setdefault: that
    searches them once per name we add, which cost a plain API response about four times as much."""
    headers = response.headers
    present = {name.lower() for name, _value in headers}
    for name, value in SECURITY_HEADERS.items():
        if name.lower() not in present:
            headers.add(name, value)
    return response


def init_app(app: Flask, settings: Settings) -> None:
    """Registered by create_app before the blueprints, so the agents' blueprint's own cookie settings (which are
    the same) are applied last."""
    require_secret_key(settings)
    warning = plain_http_warning(settings)
    if warning and not settings.testing:
        log.warning(warning)
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,  # no script reads the session, so no injected one can steal it
        SESSION_COOKIE_SAMESITE="Lax",  # another site's form posts arrive without the cookie
    )
    if settings.trusted_proxies:
        # Behind N proxies the client's address, the scheme (https) and the host come from the last N hops'
        # X-Forwarded-* headers. Never by default: a client could claim any address and dodge the per-IP limits.
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n)  # type: ignore[method-assign]
    app.after_request(_add_security_headers)
