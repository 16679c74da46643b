"""api.services.after_commit: what tells a worker about a row runs after the request's outermost commit, so the
worker can see the row (a reply's mail published inside agents_only's unit of work was dropped as not pending)."""

from __future__ import annotations

import pytest
from flask import Flask

from api.services import after_commit, unit_of_work
from core.orm import Ticket
from core.tickets import NewTicket, store_queued


def _visible(app: Flask, ticket_id: object) -> bool:
    """Whether another connection (a worker's) sees the ticket."""
    with app.extensions["furiwake"].sessions() as other:
        return other.get(Ticket, ticket_id) is not None


def test_an_action_runs_after_the_outermost_commit_and_sees_the_row(app: Flask) -> None:
    seen: list[bool] = []
    with app.test_request_context():
        with unit_of_work():  # the decorator's (agents_only, login_required)
            with unit_of_work() as session:  # the view's, joining it
                ticket, _ = store_queued(session, NewTicket(channel="email", body="ログインできません"))
                ticket_id = ticket.id
                after_commit(lambda: seen.append(_visible(app, ticket_id)))
            assert seen == []  # the inner block's end commits nothing
        assert seen == [True]


def test_an_action_is_dropped_when_the_unit_of_work_rolls_back(app: Flask) -> None:
    seen: list[str] = []
    with app.test_request_context():
        with pytest.raises(RuntimeError), unit_of_work():
            after_commit(lambda: seen.append("published"))
            raise RuntimeError("the view failed")
        with unit_of_work():
            pass  # a later unit of work in the same request does not run the dropped action
    assert seen == []
