"""Paging through a queue on the agents' pages, by keyset.

A queue shows QUEUE_PAGE tickets, oldest first, so the first page holds the oldest and "Newer →" goes on to the
tickets after them, "← Older" back. The links carry the opaque cursor the JSON API uses (an encoded
(created_at, id), api.schemas), as `after` (the page after that ticket) or `before` (the page before it). Keyset
rather than an offset: a page costs the same however deep the queue, and tickets resolved meanwhile do not shift
the rows under the agent. A cursor that cannot be read, or that no longer leads anywhere, shows the first page
instead of an error: it came from a link this app made, perhaps long ago.
"""

from __future__ import annotations

from typing import cast

from flask import request
from marshmallow import ValidationError
from sqlalchemy.orm import Session

from api.schemas import CursorField, encode_cursor
from core import agents as actions
from core.orm import Ticket
from core.tickets import Position

_CURSOR = CursorField()


def _cursor(name: str) -> Position | None:
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        return cast(Position, _CURSOR.deserialize(raw))
    except ValidationError:
        return None


def page(db: Session, queue: str, agent_id: int | None, limit: int) -> dict[str, object]:
    """The tickets of this page; `older` and `newer`, the cursors of the pages before and after it (None at either
    end); and `page_args`, the query arguments that show this same page again (the refresh keeps the agent there)."""
    after, before = _cursor("after"), _cursor("before")
    here: dict[str, str] = {}
    tickets: list[Ticket] = []
    if before is not None:
        tickets = actions.queue_tickets(db, queue, agent_id, limit, before=before)
        here = {"before": encode_cursor(before)}
    elif after is not None:
        tickets = actions.queue_tickets(db, queue, agent_id, limit, after=after)
        here = {"after": encode_cursor(after)}
    if not tickets:
        tickets, here = actions.queue_tickets(db, queue, agent_id, limit), {}
    older = newer = None
    if tickets:
        first, last = Position.of(tickets[0]), Position.of(tickets[-1])
        if actions.queue_tickets(db, queue, agent_id, 1, before=first):
            older = encode_cursor(first)
        if actions.queue_tickets(db, queue, agent_id, 1, after=last):
            newer = encode_cursor(last)
    return {"tickets": tickets, "older": older, "newer": newer, "page_args": here}
