"""Past the oldest 100: a queue pages by keyset ("Newer →" / "← Older"), and its refresh stays on the page shown."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient

from api.agents.web import QUEUE_PAGE
from core.orm import Ticket, utcnow
from tests.support.backends import both_backends


def _row_ids(page: str) -> list[str]:
    return re.findall(r'<tr data-ticket-id="([0-9a-f-]+)"', page)


def _link(page: str, label: str) -> str | None:
    match = re.search(rf'<a href="([^"]+)" rel="(?:prev|next)">{re.escape(label)}</a>', page)
    return match.group(1).replace("&amp;", "&") if match else None


def _add_payment_tickets(app: Flask, n: int) -> list[str]:
    start = utcnow() - timedelta(days=1)
    tickets = [Ticket(channel="api", body=f"請求 {i}", status="routed", route="Payment", attempts=1,
                      created_at=start + timedelta(seconds=i)) for i in range(n)]
    with app.extensions["furiwake"].unit_of_work() as session:
        session.add_all(tickets)
    return [str(t.id) for t in tickets]  # oldest first


@both_backends
def test_newer_and_older_walk_the_whole_queue(app: Flask, signed_in: FlaskClient) -> None:
    ids = _add_payment_tickets(app, 2 * QUEUE_PAGE + 5)
    first = signed_in.get("/agent/?queue=payment").get_data(as_text=True)
    assert _row_ids(first) == ids[:QUEUE_PAGE]
    assert _link(first, "← Older") is None and f"{QUEUE_PAGE} of {len(ids)}, oldest first" in first

    second = signed_in.get(_link(first, "Newer →")).get_data(as_text=True)
    assert _row_ids(second) == ids[QUEUE_PAGE:2 * QUEUE_PAGE]
    third = signed_in.get(_link(second, "Newer →")).get_data(as_text=True)
    assert _row_ids(third) == ids[2 * QUEUE_PAGE:] and _link(third, "Newer →") is None

    back = signed_in.get(_link(third, "← Older")).get_data(as_text=True)
    assert _row_ids(back) == ids[QUEUE_PAGE:2 * QUEUE_PAGE]
    assert _row_ids(signed_in.get(_link(back, "← Older")).get_data(as_text=True)) == ids[:QUEUE_PAGE]


def test_the_refresh_keeps_the_page_and_a_bad_cursor_shows_the_first(app: Flask, signed_in: FlaskClient) -> None:
    ids = _add_payment_tickets(app, QUEUE_PAGE + 3)
    first = signed_in.get("/agent/?queue=payment").get_data(as_text=True)
    second_url = _link(first, "Newer →")
    second = signed_in.get(second_url).get_data(as_text=True)
    refresh = re.search(r'data-refresh-url="([^"]+)"', second).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    assert "after=" in refresh
    assert _row_ids(signed_in.get(refresh).get_data(as_text=True)) == ids[QUEUE_PAGE:]
    for cursor in ("after=nonsense", "before=%00", "after=" + "A" * 500):
        page = signed_in.get(f"/agent/?queue=payment&{cursor}")
        assert page.status_code == 200 and _row_ids(page.get_data(as_text=True)) == ids[:QUEUE_PAGE], cursor


def test_a_short_queue_has_no_paging_links(signed_in: FlaskClient, add_ticket) -> None:
    add_ticket()
    page = signed_in.get("/agent/?queue=all").get_data(as_text=True)
    assert "Newer →" not in page and "← Older" not in page
