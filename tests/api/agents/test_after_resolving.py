"""A resolved ticket offers no routing, and Resolve moves on to the next ticket of the queue the agent works."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.support.agents import post_form, ticket_row, visible_text
from tests.support.backends import both_backends


def _page(ticket) -> str:
    return f"/agent/tickets/{ticket.id}"


def test_a_resolved_ticket_offers_no_route_buttons(app, signed_in: FlaskClient, add_ticket) -> None:
    ticket = add_ticket(route="Other", scores=(0.1, 0.1, 0.8))
    assert 'class="route-buttons"' in signed_in.get(_page(ticket)).get_data(as_text=True)
    post_form(signed_in, f"{_page(ticket)}/resolve", _page(ticket))
    html = signed_in.get(_page(ticket)).get_data(as_text=True)
    assert ticket_row(app, ticket.id).status == "resolved"
    assert "route-button" not in html and "Route to" not in html and "/route" not in html
    assert "Resolved" in visible_text(html)


@both_backends
def test_resolve_goes_on_to_the_oldest_open_ticket_of_the_same_queue(signed_in: FlaskClient, add_ticket) -> None:
    first = add_ticket("一件目", route="Payment", scores=(0.05, 0.9, 0.05))
    add_ticket("別の窓口", route="Account")  # older than `second`, but not in the Payment queue
    second = add_ticket("二件目", route="Payment", scores=(0.05, 0.9, 0.05))
    third = add_ticket("三件目", route="Payment", scores=(0.05, 0.9, 0.05))

    response = post_form(signed_in, f"{_page(third)}/resolve?queue=payment", f"{_page(third)}?queue=payment")
    assert response.status_code == 303
    assert response.headers["Location"] == f"{_page(first)}?queue=payment"  # the oldest still open, not the next
    response = post_form(signed_in, f"{_page(first)}/resolve?queue=payment", f"{_page(first)}?queue=payment")
    assert response.headers["Location"] == f"{_page(second)}?queue=payment"
    page = visible_text(signed_in.get(response.headers["Location"]).get_data(as_text=True))
    assert f"Resolved. Next: {second.reference}" in page

    response = post_form(signed_in, f"{_page(second)}/resolve?queue=payment", f"{_page(second)}?queue=payment")
    assert response.headers["Location"] == "/agent/?queue=payment"  # the queue is empty: back to it
    assert "Nothing else is waiting in this queue" in signed_in.get(response.headers["Location"]).get_data(
        as_text=True)


def test_resolving_twice_stays_on_the_ticket(signed_in: FlaskClient, add_ticket) -> None:
    ticket = add_ticket()
    add_ticket()  # still open: a double click must not jump to it
    post_form(signed_in, f"{_page(ticket)}/resolve", _page(ticket))
    response = post_form(signed_in, f"{_page(ticket)}/resolve", _page(ticket))  # the second click
    assert response.headers["Location"] == f"{_page(ticket)}?queue=all"
