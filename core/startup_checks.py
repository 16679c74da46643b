"""The settings checks made before anything starts: by the API's app factory (api.security) and by `furiwake run`
(cli.supervisor), which imports no Flask for them: it stays a small process for as long as the router runs."""

from __future__ import annotations

from urllib.parse import urlsplit

from core.config import DEV_SECRET_KEY, ConfigError, Settings

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
