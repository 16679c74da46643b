"""Timestamps on the agents' pages, in the helpdesk's own time zone (DISPLAY_TIMEZONE, Asia/Tokyo by default).

The database keeps UTC; an agent reads "2026-12-03 19:04 JST", not an ISO string. The exact instant stays in the
page as <time datetime="…"> (machine-readable, and the tooltip shows it), so nothing is lost by rounding to the
minute.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

from flask import Flask
from markupsafe import Markup, escape

from api.services import current_runtime

FORMAT = "%Y-%m-%d %H:%M %Z"
FORMAT_SECONDS = "%Y-%m-%d %H:%M:%S %Z"  # for "updated at" lines that change every few seconds


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


def time_tag(when: datetime | str | None, seconds: bool = False) -> Markup:
    """<time datetime="ISO in UTC" title="same">local time</time>: readable, with the exact instant kept."""
    instant = _instant(when)
    if instant is None:
        return Markup("—")
    exact = escape(instant.astimezone(UTC).isoformat())
    return Markup(f'<time datetime="{exact}" title="{exact}">{escape(local_time(instant, seconds))}</time>')


def init_app(app: Flask) -> None:
    app.add_template_filter(local_time, "local_time")
    app.add_template_filter(time_tag, "time_tag")
    app.add_template_global(display_zone, "display_zone")
