"""Re-routing with a fine category (core.agents.reroute): what a Correction keeps, what the ticket becomes, and
the categories refused, on a real SQLite database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core import agents
from core.categories import Catalog
from core.db import make_engine, make_session_factory
from core.orm import Correction, Ticket, TicketEvent

KNOWN = Catalog({"Account - Password": "Account", "Account - Login": "Account", "Payment - Refund": "Payment",
                 "Payment - Billing": "Payment", "Spam": "Other"})


@pytest.fixture
def session(sqlite_url: str) -> Iterator[Session]:
    engine = make_engine(sqlite_url)
    with make_session_factory(engine)() as session:
        yield session
    engine.dispose()


def _ticket(session: Session, route: str = "Account", category: str | None = "Account - Password",
            status: str = "routed") -> Ticket:
    ticket = Ticket(channel="web", body="パスワードを忘れました", status=status, route=route,
                    score_account=0.8, score_payment=0.15, score_other=0.05, model_version="m1",
                    fine_category=category, fine_confidence=0.7 if category else None)
    session.add(ticket)
    session.flush()
    return ticket


def _corrections(session: Session, ticket: Ticket) -> list[tuple[str | None, str, str | None, str | None]]:
    rows = session.scalars(select(Correction).where(Correction.ticket_id == ticket.id).order_by(Correction.id))
    return [(c.predicted_route, c.corrected_route, c.predicted_category, c.corrected_category) for c in rows]


def test_a_route_and_category_correction_keeps_both_predictions(session: Session) -> None:
    ticket = _ticket(session)
    _, changed = agents.reroute(session, ticket.id, "Payment", None, "Payment - Refund", known=KNOWN)
    assert changed
    assert _corrections(session, ticket) == [("Account", "Payment", "Account - Password", "Payment - Refund")]
    assert (ticket.route, ticket.fine_category, ticket.fine_confidence) == ("Payment", "Payment - Refund", None)
    kinds = [e.kind for e in session.scalars(select(TicketEvent).order_by(TicketEvent.id))]
    assert kinds == ["rerouted", "recategorised"]


def test_a_category_correction_alone_is_a_correction(session: Session) -> None:
    ticket = _ticket(session)
    _, changed = agents.reroute(session, ticket.id, "Account", None, "Account - Login", known=KNOWN)
    assert changed
    assert _corrections(session, ticket) == [("Account", "Account", "Account - Password", "Account - Login")]
    assert ticket.fine_category == "Account - Login"
    [event] = session.scalars(select(TicketEvent))
    assert (event.kind, event.detail) == ("recategorised", "Account - Password → Account - Login")
    # The same again changes nothing.
    assert agents.reroute(session, ticket.id, "Account", None, "Account - Login", known=KNOWN)[1] is False


def test_a_second_correction_keeps_the_models_category(session: Session) -> None:
    ticket = _ticket(session)
    agents.reroute(session, ticket.id, "Account", None, "Account - Login", known=KNOWN)
    agents.reroute(session, ticket.id, "Payment", None, "Payment - Billing", known=KNOWN)
    assert [c[2] for c in _corrections(session, ticket)] == ["Account - Password", "Account - Password"]
    assert agents.model_category(session, ticket) == "Account - Password"


def test_a_route_change_alone_drops_a_category_of_the_old_route(session: Session) -> None:
    ticket = _ticket(session)
    agents.reroute(session, ticket.id, "Payment", None, known=KNOWN)
    assert _corrections(session, ticket) == [("Account", "Payment", "Account - Password", None)]
    assert (ticket.fine_category, ticket.fine_confidence) == (None, None)
    assert agents.model_category(session, ticket) == "Account - Password"  # still known through the correction


def test_confirming_a_review_keeps_a_category_of_the_same_route(session: Session) -> None:
    ticket = _ticket(session, status="needs_review")
    agents.reroute(session, ticket.id, "Account", None, known=KNOWN)
    assert (ticket.status, ticket.fine_category, ticket.fine_confidence) == ("routed", "Account - Password", 0.7)
    assert _corrections(session, ticket) == [("Account", "Account", "Account - Password", None)]


@pytest.mark.parametrize(("route", "category", "message"), [
    ("Account", "Account - Pasword", "unknown category 'Account - Pasword'; one of Account - Password"),
    ("Account", "Payment - Refund", "category 'Payment - Refund' belongs to the Payment route, not Account"),
])
def test_unknown_categories_and_those_of_another_route_are_refused(session: Session, route: str, category: str,
                                                                   message: str) -> None:
    ticket = _ticket(session)
    with pytest.raises(agents.AgentError, match=message):
        agents.reroute(session, ticket.id, route, None, category, known=KNOWN)
    assert _corrections(session, ticket) == [] and ticket.fine_category == "Account - Password"
