"""App-wide protections: security headers on every response, the session cookie's flags, trusted proxies, and the
start-up checks (a real SECRET_KEY outside the embedded mode; a warning when served over plain HTTP to a network).

Ticket text is the customers' and untrusted: templates print it through Jinja's autoescape only, and the
Content-Security-Policy below allows no inline script or style, so even a missed escape could not run a script.
A blueprint may send a stricter header of its own (the agents' pages add `Cache-Control: no-store`); headers it
already set are left as they are.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Flask, Response
from werkzeug.middleware.proxy_fix import ProxyFix

from core.config import DEV_SECRET_KEY, ConfigError, Settings

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
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def require_secret_key(settings: Settings) -> None:
    """Sessions and CSRF tokens are signed with SECRET_KEY: the public default would let anyone forge a signed-in
    agent's cookie. Only the embedded mode (one machine, `make run`) may start without one."""
    if settings.secret_key == DEV_SECRET_KEY and not settings.embedded:
        raise ConfigError(
            "SECRET_KEY: must be set to a long random value outside the embedded SQLite mode "
            "(e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
        )


def plain_http_warning(settings: Settings) -> str | None:
    """A line to show at start-up when browsers on other machines will reach this API over plain HTTP.

    The session cookie is Secure for any host but this machine's loopback (api.agents.auth), so such a browser
    drops it and every form fails its CSRF check ("this page had expired"). Declaring a TLS terminator in front
    (TRUSTED_PROXIES) silences the line."""
    host = urlsplit("//" + settings.host).hostname or settings.host
    if host in _LOOPBACK or settings.trusted_proxies > 0:
        return None
    return (
        f"HOST={settings.host}: furiwake serves plain HTTP to the network, and browsers there drop its Secure "
        "session cookie, so forms and agents' sign-in will fail. Put a TLS terminator (Caddy, nginx, a load "
        "balancer) in front and set TRUSTED_PROXIES=1 (the number of proxies in front)."
    )


def _add_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
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
