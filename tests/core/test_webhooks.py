"""core.webhooks and core.webhook_outbox on SQLite and PostgreSQL: subscriptions, emitting in the caller's
transaction, publishing after the commit, the signature as a receiver checks it, claiming an attempt."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import func, select

from core import webhook_outbox, webhooks
from core.config import Settings
from core.orm import JobLease, Ticket, WebhookDelivery, WebhookSubscription, utcnow
from core.runtime import Runtime
from core.tickets import NewTicket, store_queued
from core.webhook_queue import DELIVER_WEBHOOK_TASK, WEBHOOK_QUEUE, publish_through
from tests.support.backends import BACKENDS

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cret-s3cret-s3cret"
DEAD_BROKER_URL = "redis://127.0.0.1:6390/0"  # nothing listens: a publish fails at once


@pytest.fixture(params=BACKENDS)
def runtime(request: pytest.FixtureRequest, make_settings: Callable[..., Settings]) -> Iterator[Runtime]:
    url = str(request.getfixturevalue(f"{request.param}_url"))
    built = Runtime.build(make_settings(database_url=url, broker_url=DEAD_BROKER_URL))
    yield built
    built.dispose()


def _subscribe(runtime: Runtime, *events: str, url: str = "https://hooks.example.com/furiwake") -> int:
    with runtime.unit_of_work() as session:
        return webhooks.add_subscription(session, url, events, secret=SECRET).id


def _ticket(runtime: Runtime) -> Ticket:
    with runtime.unit_of_work() as session:
        ticket, _created = store_queued(session, NewTicket(channel="web", body="ログインできません", subject="ログイン",
                                                           customer_email="hanako@example.com"))
    return ticket


def _deliveries(runtime: Runtime) -> list[WebhookDelivery]:
    with runtime.sessions() as session:
        return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


# --- the signature, checked the way docs/webhooks.md tells a receiver to ---------------------------------------

def _documented_verify(secret: str, header: str, body: bytes, seen: set[str], event_id: str) -> bool:
    """docs/webhooks.md's recipe, run as written (a receiver copies it from there)."""
    text = (ROOT / "docs" / "webhooks.md").read_text(encoding="utf-8")
    match = re.search(r"```python\n(.*?)```", text, re.S)
    assert match, "docs/webhooks.md has no Python verification example"
    namespace: dict[str, Any] = {}
    exec(compile(match.group(1), "docs/webhooks.md", "exec"), namespace)  # noqa: S102 - our own documentation
    return bool(namespace["verify"](secret, header, body, seen, event_id))


def test_the_signature_verifies_with_the_documented_recipe_and_not_otherwise() -> None:
    body = b'{"id":"e1","type":"ticket.created"}'
    header = webhooks.signature(SECRET, int(time.time()), body)
    assert _documented_verify(SECRET, header, body, set(), "e1")
    assert webhooks.verify_signature(SECRET, header, body, time.time())
    assert not _documented_verify("another-secret-entirely", header, body, set(), "e1")
    assert not webhooks.verify_signature("another-secret-entirely", header, body, time.time())
    assert not _documented_verify(SECRET, header, body + b" ", set(), "e1")  # the body was changed
    assert not _documented_verify(SECRET, header, body, {"e1"}, "e1")  # an event id seen before: a replay
    old = webhooks.signature(SECRET, int(time.time()) - 301, body)
    assert not _documented_verify(SECRET, old, body, set(), "e1")  # older than five minutes
    assert not webhooks.verify_signature(SECRET, old, body, time.time())
    assert not webhooks.verify_signature(SECRET, "v1=deadbeef", body, time.time())  # no timestamp


# --- subscriptions ------------------------------------------------------------------------------------------------

def test_a_subscription_refuses_a_bad_url_an_unknown_event_or_a_short_secret(runtime: Runtime) -> None:
    with runtime.unit_of_work() as session:
        for url, events, secret in [("ftp://example.com/x", ["ticket.created"], None),
                                    ("hooks.example.com", ["ticket.created"], None),
                                    ("https://hooks.example.com", ["ticket.closed"], None),
                                    ("https://hooks.example.com", [], None),
                                    ("https://hooks.example.com", ["ticket.created"], "short")]:
            with pytest.raises(webhooks.WebhookError):
                webhooks.add_subscription(session, url, events, secret=secret)
        made = webhooks.add_subscription(session, " https://hooks.example.com/x ", ["ticket.resolved",
                                                                                    "ticket.created"])
        assert made.url == "https://hooks.example.com/x"
        assert made.events == "ticket.created,ticket.resolved"  # in EVENTS' order
        assert len(made.secret) == 64  # made, since none was given


def test_emit_writes_one_delivery_per_subscription_to_that_event_only(runtime: Runtime) -> None:
    ticket = _ticket(runtime)  # before the subscriptions: its own ticket.created is tested below
    created_and_routed = _subscribe(runtime, "ticket.created", "ticket.routed")
    resolved_only = _subscribe(runtime, "ticket.resolved")
    also_created = _subscribe(runtime, "ticket.created")
    with runtime.unit_of_work() as session:
        ids = webhooks.emit(session, webhooks.TICKET_CREATED, ticket)
        assert webhooks.emit(session, webhooks.TICKET_ASSIGNED, ticket) == []  # nobody subscribes
    deliveries = _deliveries(runtime)
    assert [d.id for d in deliveries] == ids
    assert sorted(d.subscription_id for d in deliveries) == [created_and_routed, also_created]
    assert resolved_only not in {d.subscription_id for d in deliveries}
    assert {(d.event, d.status, d.attempts, d.ticket_id) for d in deliveries} == {
        ("ticket.created", "pending", 0, ticket.id)}
    # One event: the same id and the same bytes for every subscription.
    assert len({d.event_id for d in deliveries}) == 1 and len({d.payload for d in deliveries}) == 1
    payload = json.loads(deliveries[0].payload)
    assert payload["id"] == str(deliveries[0].event_id) and payload["type"] == "ticket.created"
    assert payload["data"]["ticket"]["reference"] == ticket.reference
    assert payload["data"]["ticket"]["body"] == "ログインできません"
    assert payload["data"]["ticket"]["customer"]["email"] == "hanako@example.com"
    with pytest.raises(ValueError):
        with runtime.unit_of_work() as session:
            webhooks.emit(session, "ticket.closed", ticket)


def test_a_rolled_back_change_emits_nothing(runtime: Runtime) -> None:
    _subscribe(runtime, "ticket.resolved")
    ticket = _ticket(runtime)
    with pytest.raises(RuntimeError), runtime.unit_of_work() as session:
        webhooks.emit(session, webhooks.TICKET_RESOLVED, ticket)
        raise RuntimeError("the change failed")
    assert _deliveries(runtime) == []


def test_emit_routed_emits_only_for_the_tickets_that_write_routed(runtime: Runtime) -> None:
    _subscribe(runtime, "ticket.routed")
    routed, earlier = _ticket(runtime), _ticket(runtime)
    now = utcnow()
    with runtime.unit_of_work() as session:
        by_model, by_agent = session.get(Ticket, routed.id), session.get(Ticket, earlier.id)
        assert by_model is not None and by_agent is not None
        by_model.status, by_model.routed_at, by_model.review_reason = "needs_review", now, "unfamiliar_text"
        by_agent.status, by_agent.routed_at = "routed", now - timedelta(seconds=5)  # an agent routed it first
    with runtime.unit_of_work() as session:
        webhooks.emit_routed(session, [routed.id, earlier.id], now)
    [delivery] = _deliveries(runtime)
    assert delivery.ticket_id == routed.id
    ticket = json.loads(delivery.payload)["data"]["ticket"]
    assert (ticket["status"], ticket["review_reason"]) == ("needs_review", "unfamiliar_text")


def test_removing_a_subscription_removes_its_deliveries(runtime: Runtime) -> None:
    ticket = _ticket(runtime)
    keep, drop = _subscribe(runtime, "ticket.created"), _subscribe(runtime, "ticket.created")
    with runtime.unit_of_work() as session:
        webhooks.emit(session, webhooks.TICKET_CREATED, ticket)
    with runtime.unit_of_work() as session:
        assert webhooks.remove_subscription(session, drop)
        assert not webhooks.remove_subscription(session, drop)
    assert [d.subscription_id for d in _deliveries(runtime)] == [keep]
    with runtime.sessions() as session:
        [summary] = webhooks.list_subscriptions(session)
        assert (summary.id, summary.events, summary.pending) == (keep, ["ticket.created"], 1)
        assert session.scalar(select(func.count()).select_from(WebhookSubscription)) == 1


# --- publishing after the commit -------------------------------------------------------------------------------

def test_deliveries_are_published_once_committed(sqlite_url: str, redis_url: str,
                                                 make_settings: Callable[..., Settings]) -> None:
    """Through the real broker: nothing is published for a transaction that rolls back, or before the commit."""
    runtime = Runtime.build(make_settings(database_url=sqlite_url, broker_url=redis_url))
    broker = redis.Redis.from_url(redis_url)
    try:
        publish_through(runtime)
        ticket = _ticket(runtime)
        _subscribe(runtime, "ticket.created")
        with pytest.raises(RuntimeError), runtime.unit_of_work() as session:
            webhooks.emit(session, webhooks.TICKET_CREATED, ticket)
            raise RuntimeError("rolled back")
        with runtime.unit_of_work() as session:
            [delivery_id] = webhooks.emit(session, webhooks.TICKET_CREATED, ticket)
            assert broker.llen(WEBHOOK_QUEUE) == 0  # not before the commit
        [message] = broker.lrange(WEBHOOK_QUEUE, 0, -1)
        sent = json.loads(message)
        assert sent["headers"]["task"] == DELIVER_WEBHOOK_TASK
        assert json.loads(base64.b64decode(sent["body"]))[0] == [delivery_id]
    finally:
        broker.close()
        runtime.dispose()


def test_a_broker_that_is_down_leaves_the_delivery_to_the_sweep(runtime: Runtime) -> None:
    publish_through(runtime)  # DEAD_BROKER_URL: the publish fails, the commit stands
    ticket = _ticket(runtime)
    _subscribe(runtime, "ticket.created")
    with runtime.unit_of_work() as session:
        [delivery_id] = webhooks.emit(session, webhooks.TICKET_CREATED, ticket)
    now = utcnow()
    with runtime.unit_of_work() as session:
        assert webhook_outbox.pending_ids(session, now, webhook_outbox.DEFAULT_POLICY, now) == [delivery_id]
        assert webhook_outbox.pending_ids(session, now - timedelta(seconds=30), webhook_outbox.DEFAULT_POLICY,
                                          now) == []  # not overdue yet: its own publish may still be on its way


# --- claiming an attempt -----------------------------------------------------------------------------------------

def test_an_attempt_is_claimed_once_and_the_next_one_only_when_due(runtime: Runtime) -> None:
    ticket = _ticket(runtime)
    _subscribe(runtime, "ticket.created")
    with runtime.unit_of_work() as session:
        [delivery_id] = webhooks.emit(session, webhooks.TICKET_CREATED, ticket)
    policy = webhook_outbox.DEFAULT_POLICY
    now = utcnow()
    with runtime.unit_of_work() as session:
        claimed = webhook_outbox.claim(session, delivery_id, policy, now, 60)
        assert claimed is not None and claimed.attempts == 1 and claimed.secret == SECRET
        assert json.loads(claimed.payload)["id"] == str(claimed.event_id)
    with runtime.unit_of_work() as session:  # due (30 s), but the lease (60 s) keeps a second attempt out
        assert webhook_outbox.claim(session, delivery_id, policy, now + timedelta(seconds=40), 60) is None
    with runtime.unit_of_work() as session:
        webhook_outbox.note_error(session, delivery_id, "attempt 1: HTTP 500", 500)
        assert session.get(JobLease, f"webhook:{delivery_id}") is None
    with runtime.unit_of_work() as session:
        assert webhook_outbox.claim(session, delivery_id, policy, now + timedelta(seconds=29), 60) is None
        assert webhook_outbox.claim(session, delivery_id, policy, now + timedelta(seconds=31), 60) is not None
    with runtime.unit_of_work() as session:
        assert webhook_outbox.mark_delivered(session, delivery_id, 204)
        assert not webhook_outbox.mark_failed(session, delivery_id, "late", None)  # delivered stays delivered
    [delivery] = _deliveries(runtime)
    assert (delivery.status, delivery.attempts, delivery.last_status_code, delivery.last_error) == (
        "delivered", 2, 204, None)
    with runtime.unit_of_work() as session:
        assert webhook_outbox.claim(session, delivery_id, policy, now + timedelta(days=1), 60) is None
    assert uuid.UUID(str(delivery.event_id))


# --- where the events are emitted ------------------------------------------------------------------------------

def test_a_new_ticket_emits_ticket_created_once_with_its_own_transaction(runtime: Runtime) -> None:
    _subscribe(runtime, "ticket.created")
    fast = _ticket(runtime)  # the intake's hot path (no idempotency key)
    repeatable = NewTicket(channel="api", body="請求書が届きません", idempotency_key="client-retry-1")
    with runtime.unit_of_work() as session:
        first, created = store_queued(session, repeatable)
    with runtime.unit_of_work() as session:
        again, created_again = store_queued(session, repeatable)  # a client's retry: no new ticket, no event
    assert created and not created_again and again.id == first.id
    assert [(d.event, d.ticket_id) for d in _deliveries(runtime)] == [("ticket.created", fast.id),
                                                                      ("ticket.created", first.id)]


def test_the_intake_insert_finds_every_subscription_to_ticket_created_and_no_other(runtime: Runtime) -> None:
    """The hot path asks its INSERT for the subscriptions (core.webhooks.subscribers_column): it must find what
    subscriber_ids finds, in the same order, however many there are, and none at all before the first."""
    nobody = _ticket(runtime)
    routed_only = _subscribe(runtime, "ticket.routed")
    first = _subscribe(runtime, "ticket.routed", "ticket.created", "ticket.resolved", url="https://a.example.com/h")
    second = _subscribe(runtime, "ticket.created", url="https://b.example.com/h")
    ticket = _ticket(runtime)
    with runtime.sessions() as session:
        assert webhooks.subscriber_ids(session, webhooks.TICKET_CREATED) == [first, second]
    deliveries = _deliveries(runtime)
    assert sorted((d.subscription_id, d.ticket_id) for d in deliveries) == [(first, ticket.id), (second, ticket.id)]
    assert nobody.id not in {d.ticket_id for d in deliveries} and routed_only not in {d.subscription_id
                                                                                      for d in deliveries}
    assert webhooks.parse_subscribers(None) == [] and webhooks.parse_subscribers("12,3") == [3, 12]


def test_agents_actions_emit_rerouted_assigned_and_resolved_only_when_they_change_something(
        runtime: Runtime) -> None:
    from core import agents

    _subscribe(runtime, "ticket.rerouted", "ticket.assigned", "ticket.resolved")
    ticket = _ticket(runtime)
    with runtime.unit_of_work() as session:
        agent_id = agents.create_agent(session, "hana@example.jp", "a long enough password").id
        stored = session.get(Ticket, ticket.id)
        assert stored is not None
        stored.status, stored.route, stored.routed_at = "routed", "Account", utcnow()
    for action in (lambda s: agents.reroute(s, ticket.id, "Payment", agent_id),
                   lambda s: agents.reroute(s, ticket.id, "Payment", agent_id),  # the same route: no change
                   lambda s: agents.assign(s, ticket.id, agent_id),
                   lambda s: agents.assign(s, ticket.id, agent_id),
                   lambda s: agents.resolve(s, ticket.id, agent_id),
                   lambda s: agents.resolve(s, ticket.id, agent_id)):
        with runtime.unit_of_work() as session:
            action(session)
    deliveries = _deliveries(runtime)
    assert [d.event for d in deliveries] == ["ticket.rerouted", "ticket.assigned", "ticket.resolved"]
    rerouted, assigned, resolved = (json.loads(d.payload)["data"] for d in deliveries)
    assert (rerouted["previous_route"], rerouted["agent_id"], rerouted["ticket"]["route"]) == (
        "Account", agent_id, "Payment")
    assert (assigned["agent_id"], assigned["previous_agent_id"], assigned["reason"]) == (agent_id, None, "by hand")
    assert assigned["ticket"]["assigned_agent_id"] == agent_id
    assert resolved["agent_id"] == agent_id and resolved["ticket"]["status"] == "resolved"
    assert resolved["ticket"]["resolved_at"] is not None
