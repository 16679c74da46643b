"""Timestamps on the agents' pages: how long ago, in the page's language ("3 分前", "3 minutes ago"), with the
local time in the helpdesk's own time zone (DISPLAY_TIMEZONE, Asia/Tokyo by default) as the tooltip.

The database keeps UTC; an agent scans "3 minutes ago" and hovers for "2026-12-03 19:04 JST", never an ISO
string. The exact instant stays in the page as <time datetime="…"> (in the same zone, with its offset), so nothing
is lost by rounding; static/agent.js moves the relative words on while a page stays open. An "updated at" line
(seconds=True) stays absolute: relative, it would always say "just now".
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel.dates import format_timedelta
from flask import Flask
from flask_babel import get_locale
from flask_babel import gettext as _
from markupsafe import Markup, escape

from api.services import current_runtime

FORMAT = "%Y-%m-%d %H:%M %Z"
FORMAT_SECONDS = "%Y-%m-%d %H:%M:%S %Z"  # for "updated at" lines that change every few seconds
JUST_NOW_SECONDS = 60  # below a minute, "just now": "in 0 seconds" or "12 seconds ago" would only flicker
THRESHOLD = 0.85  # Babel's own: 50 minutes reads "1 hour ago"; static/agent.js rounds the same way


@lru_cache(maxsize=8)
def _zone(name: str) -> tzinfo:
    return ZoneInfo(name)


def display_zone() -> tzinfo:
    return _zone(current_runtime().settings.display_timezone)


def _instant(when: datetime | str | None) -> datetime | None:
    """A datetime, or the ISO string the registry's JSON rows carry; a naive value is UTC (how the database keeps
    it)."""
    if when is None or when == "":
        return None
    value = datetime.fromisoformat(when) if isinstance(when, str) else when
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def local_time(when: datetime | str | None, seconds: bool = False, zone: tzinfo | None = None) -> str:
    """"2026-12-03 19:04 JST" (an em dash for no time at all)."""
    instant = _instant(when)
    if instant is None:
        return "—"
    return instant.astimezone(zone or display_zone()).strftime(FORMAT_SECONDS if seconds else FORMAT)


def relative_time(when: datetime | str | None, now: datetime | None = None) -> str:
    """"3 分前" / "3 minutes ago" in the page's language; ahead of now, "in 3 minutes" (a deadline, say)."""
    instant = _instant(when)
    if instant is None:
        return "—"
    elapsed = (now or datetime.now(UTC)) - instant
    if abs(elapsed.total_seconds()) < JUST_NOW_SECONDS:
        return _("just now")
    return format_timedelta(-elapsed, granularity="minute", threshold=THRESHOLD, add_direction=True,
                            locale=get_locale() or "en")


def time_tag(when: datetime | str | None, seconds: bool = False) -> Markup:
    """<time datetime="ISO, local" title="local time">3 minutes ago</time>: scannable, with the local time in the
    tooltip and the exact instant kept. With seconds=True, the local time itself (an "updated at" line)."""
    instant = _instant(when)
    if instant is None:
        return Markup("—")
    zone = display_zone()
    exact = escape(instant.astimezone(zone).isoformat())
    local = escape(local_time(instant, seconds, zone))
    if seconds:
        return Markup(f'<time datetime="{exact}" title="{local}">{local}</time>')
    return Markup(f'<time datetime="{exact}" title="{local}" data-relative>{escape(relative_time(instant))}</time>')


def init_app(app: Flask) -> None:
    app.add_template_filter(local_time, "local_time")
    app.add_template_filter(time_tag, "time_tag")
    app.add_template_filter(relative_time, "relative_time")
    app.add_template_global(display_zone, "display_zone")
