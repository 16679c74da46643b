"""Times on the agents' pages are in DISPLAY_TIMEZONE (Asia/Tokyo unless set), with the exact instant in
<time datetime>; a zone name that does not exist stops the start with the variable's name."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient

from core.config import ConfigError, Settings
from tests.support.agents import make_agent, post_form, sign_in

_TIME = re.compile(r'<time datetime="([^"]+)" title="[^"]+">([^<]+)</time>')


def _times(html: str) -> list[tuple[datetime, str]]:
    return [(datetime.fromisoformat(exact), shown) for exact, shown in _TIME.findall(html)]


def test_the_ticket_page_shows_japan_time_with_the_exact_instant_kept(signed_in: FlaskClient, add_ticket) -> None:
    ticket = add_ticket()
    page = f"/agent/tickets/{ticket.id}"
    post_form(signed_in, f"{page}/assign", page)
    html = signed_in.get(page).get_data(as_text=True)
    times = _times(html)
    assert len(times) >= 2  # received, and the history's entries
    for instant, shown in times:
        assert instant.tzinfo is not None and instant.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
        assert shown == instant.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%Y-%m-%d %H:%M JST")
    assert any(abs((instant - ticket.created_at).total_seconds()) < 1 for instant, _ in times)  # "received"
    assert " UTC" not in html


def test_the_queue_says_when_it_was_updated_in_local_time(signed_in: FlaskClient, add_ticket) -> None:
    add_ticket()
    html = signed_in.get("/agent/queue?queue=all").get_data(as_text=True)
    assert re.search(r"Updated <time [^>]+>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d JST</time>", html)
    assert re.search(r'title="Received \d{4}-\d\d-\d\d \d\d:\d\d JST"', html)


def test_another_zone_when_configured(make_app) -> None:
    app = make_app(display_timezone="Europe/Berlin")
    client = app.test_client()
    sign_in(client, make_agent(app).email)
    html = client.get("/agent/agents").get_data(as_text=True)
    assert re.search(r"<time [^>]+>\d{4}-\d\d-\d\d \d\d:\d\d CES?T</time>", html), html


@pytest.mark.parametrize("name", ["Mars/Olympus", "../../etc/passwd", "JST+9"])
def test_an_unknown_zone_is_refused_by_name(name: str) -> None:
    with pytest.raises(ConfigError, match="DISPLAY_TIMEZONE"):
        Settings.from_env({"DISPLAY_TIMEZONE": name})


def test_the_default_is_japan() -> None:
    assert Settings.from_env({}).display_timezone == "Asia/Tokyo"
