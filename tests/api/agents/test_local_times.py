"""Times on the agents' pages read "2 hours ago" / "2 時間前" in the page's language, with the local time in
DISPLAY_TIMEZONE (Asia/Tokyo unless set) as the tooltip and the exact instant, in that zone, in <time datetime>; a
zone name that does not exist stops the start with the variable's name."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient

from api.agents.times import relative_time
from core.config import ConfigError, Settings
from tests.support.agents import make_agent, post_form, sign_in

_TIME = re.compile(r'<time datetime="([^"]+)" title="([^"]+)" data-relative>([^<]+)</time>')


def _times(html: str) -> list[tuple[datetime, str, str]]:
    return [(datetime.fromisoformat(exact), local, shown) for exact, local, shown in _TIME.findall(html)]


def test_the_ticket_page_shows_japan_time_with_the_exact_instant_kept(signed_in: FlaskClient, add_ticket) -> None:
    ticket = add_ticket()
    page = f"/agent/tickets/{ticket.id}"
    post_form(signed_in, f"{page}/assign", page)
    html = signed_in.get(page).get_data(as_text=True)
    times = _times(html)
    assert len(times) >= 2  # received, and the history's entries
    for instant, local, shown in times:
        assert instant.utcoffset() == timedelta(hours=9)  # the local time, with its offset: still the exact instant
        assert local == instant.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%Y-%m-%d %H:%M JST")
        assert shown in ("just now", "2 hours ago"), shown
    received = [shown for instant, _, shown in times if abs((instant - ticket.created_at).total_seconds()) < 1]
    assert received and set(received) == {"2 hours ago"}  # add_ticket's tickets arrived two hours ago
    assert " UTC" not in html


def test_relative_times_in_the_agents_language(signed_in: FlaskClient, add_ticket) -> None:
    ticket = add_ticket()
    post_form(signed_in, "/agent/language", "/agent/", language="ja")
    shown = [shown for _, _, shown in _times(signed_in.get(f"/agent/tickets/{ticket.id}").get_data(as_text=True))]
    assert "2 時間前" in shown and all("ago" not in text for text in shown), shown


def test_relative_time_both_ways(app) -> None:
    now = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    with app.test_request_context("/agent/", headers={"Accept-Language": "en"}):
        assert relative_time(now - timedelta(seconds=20), now) == "just now"
        assert relative_time(now + timedelta(seconds=20), now) == "just now"  # a clock a little ahead
        assert relative_time(now - timedelta(minutes=3), now) == "3 minutes ago"
        assert relative_time(now + timedelta(hours=3), now) == "in 3 hours"  # a deadline
        assert relative_time(now - timedelta(minutes=50), now) == "50 minutes ago"
        assert relative_time(now - timedelta(minutes=52), now) == "1 hour ago"  # Babel's 0.85, as agent.js rounds
        assert relative_time(None, now) == "—"
    with app.test_request_context("/agent/", headers={"Accept-Language": "ja"}):
        assert relative_time(now - timedelta(minutes=3), now) == "3 分前"
        assert relative_time(now + timedelta(hours=3), now) == "3 時間後"
        assert relative_time(now, now) == "たった今"


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
    assert re.search(r'<time datetime="[^"]+\+01:00" title="\d{4}-\d\d-\d\d \d\d:\d\d CES?T"', html), html


@pytest.mark.parametrize("name", ["Mars/Olympus", "../../etc/passwd", "JST+9"])
def test_an_unknown_zone_is_refused_by_name(name: str) -> None:
    with pytest.raises(ConfigError, match="DISPLAY_TIMEZONE"):
        Settings.from_env({"DISPLAY_TIMEZONE": name})


def test_the_default_is_japan() -> None:
    assert Settings.from_env({}).display_timezone == "Asia/Tokyo"
