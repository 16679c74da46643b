"""What the API tests read back: the stored tickets, the classify messages waiting in Redis, problem responses."""

from __future__ import annotations

import base64
import json

import redis
from flask import Flask
from sqlalchemy import func, select

from core.messaging import CLASSIFY_QUEUE
from core.orm import Ticket
from tests.support.services import DEAD_BROKER_URL

__all__ = ["DEAD_BROKER_URL", "assert_problem", "count_tickets", "queued_ticket_ids", "stored_tickets"]


def queued_ticket_ids(broker: redis.Redis) -> list[str]:
    """The ticket ids of the classify messages waiting in Redis (kombu keeps a queue as a list of JSON envelopes)."""
    ids = []
    for raw in broker.lrange(CLASSIFY_QUEUE, 0, -1):
        envelope = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        ids.append(args[0])
    return ids


def stored_tickets(app: Flask) -> list[Ticket]:
    with app.extensions["furiwake"].sessions() as session:
        return list(session.scalars(select(Ticket).order_by(Ticket.created_at, Ticket.id)))


def count_tickets(app: Flask) -> int:
    with app.extensions["furiwake"].sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Ticket)) or 0)


def assert_problem(response, status: int, field: str | None = None) -> dict:
    """An RFC 9457 problem with the given status; `field`, when given, must be named in `errors`."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    problem = response.get_json(force=True)
    assert problem["status"] == status
    assert problem["type"] and problem["title"] and problem["detail"]
    assert "Traceback" not in response.get_data(as_text=True)
    if field is not None:
        assert field in problem["errors"], problem
    return problem
