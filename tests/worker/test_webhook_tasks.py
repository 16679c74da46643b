"""worker.webhook_tasks run for real against a real HTTP receiver on loopback (http.server in a thread): a receiver
that is down or answers 500 delays the delivery, 410 fails it, and a 2xx is reached once, signed and with the
event's stable id."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from core import webhooks
from core.config import Settings
from core.orm import WebhookDelivery, utcnow
from core.outbox import RetryPolicy
from core.runtime import Runtime
from core.tickets import NewTicket, store_queued
from core.webhook_queue import publish_through
from tests.support.backends import BACKENDS
from tests.support.processes import Processes, service_env, wait_until
from tests.support.webhook_receiver import (
    WebhookReceiver,
    webhook_receiver,  # noqa: F401  (fixture)
)
from worker import context, webhook_tasks

# Seconds, not minutes: the real schedule's shape (doubling, capped), fast enough for a test.
FAST = RetryPolicy(first=0.2, cap=0.4, give_up_after=3600)
SECRET = "receiver-secret-0123456789"
DEAD_BROKER_URL = "redis://127.0.0.1:6390/0"  # nothing listens: publishing fails at once, the sweep's case


@pytest.fixture(params=BACKENDS)
def runtime(request: pytest.FixtureRequest, make_settings: Callable[..., Settings]) -> Iterator[Runtime]:
    url = str(request.getfixturevalue(f"{request.param}_url"))
    built = Runtime.build(make_settings(database_url=url, broker_url=DEAD_BROKER_URL))
    yield built
    built.dispose()


def _event(runtime: Runtime, url: str, event: str = webhooks.TICKET_CREATED) -> int:
    """A subscription to `event` at `url`, a ticket, and the event emitted: the one delivery's id."""
    with runtime.unit_of_work() as session:  # before the subscription, so its own ticket.created goes nowhere
        ticket, _created = store_queued(session, NewTicket(channel="web", body="ログインできません",
                                                           subject="ログイン"))
    with runtime.unit_of_work() as session:
        webhooks.add_subscription(session, url, [event], secret=SECRET)
    with runtime.unit_of_work() as session:
        [delivery_id] = webhooks.emit(session, event, ticket)
    return delivery_id


def _delivery(runtime: Runtime, delivery_id: int) -> WebhookDelivery:
    with runtime.sessions() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        assert delivery is not None
        return delivery


def _deliver_when_due(runtime: Runtime, delivery_id: int) -> webhook_tasks.Attempt:
    time.sleep(FAST.cap + 0.1)
    return webhook_tasks.deliver(runtime, delivery_id, FAST, timeout=5)


def test_the_receiver_gets_the_event_signed_with_its_headers(runtime: Runtime,
                                                               webhook_receiver: WebhookReceiver) -> None:  # noqa: F811
    delivery_id = _event(runtime, webhook_receiver.url)
    attempt = webhook_tasks.deliver(runtime, delivery_id, FAST, timeout=5)
    assert (attempt.outcome, attempt.status_code) == ("delivered", 200)
    [received] = webhook_receiver.received
    stored = _delivery(runtime, delivery_id)
    assert received.path == "/hooks/furiwake"
    assert received.body == stored.payload.encode()  # the stored bytes, exactly
    assert received.headers["Content-Type"] == "application/json; charset=utf-8"
    assert received.headers["Furiwake-Event"] == "ticket.created"
    assert received.headers["Furiwake-Event-Id"] == str(stored.event_id) == json.loads(received.body)["id"]
    assert webhooks.verify_signature(SECRET, received.headers["Furiwake-Signature"], received.body, time.time())
    assert not webhooks.verify_signature("not-the-secret-at-all", received.headers["Furiwake-Signature"],
                                         received.body, time.time())
    assert (stored.status, stored.attempts, stored.last_status_code) == ("delivered", 1, 200)
    assert stored.delivered_at is not None
    assert webhook_tasks.deliver(runtime, delivery_id, FAST, timeout=5).outcome == "skipped"  # a duplicate message
    assert len(webhook_receiver.received) == 1


def test_a_500_is_retried_and_the_event_delivered_once(runtime: Runtime,
                                                        webhook_receiver: WebhookReceiver) -> None:  # noqa: F811
    delivery_id = _event(runtime, webhook_receiver.url)
    webhook_receiver.answer(500)
    first = webhook_tasks.deliver(runtime, delivery_id, FAST, timeout=5)
    assert (first.outcome, first.status_code) == ("retry", 500)
    assert first.retry_in is not None and 0 < first.retry_in <= FAST.first
    assert webhook_tasks.deliver(runtime, delivery_id, FAST, timeout=5).outcome == "skipped"  # not due yet
    pending = _delivery(runtime, delivery_id)
    assert (pending.status, pending.attempts, pending.last_status_code) == ("pending", 1, 500)
    assert pending.last_error == "attempt 1: HTTP 500"
    assert _deliver_when_due(runtime, delivery_id).outcome == "delivered"
    assert _deliver_when_due(runtime, delivery_id).outcome == "skipped"
    stored = _delivery(runtime, delivery_id)
    assert (stored.status, stored.attempts, stored.last_status_code, stored.last_error) == ("delivered", 2, 200, None)
    assert [r.answered for r in webhook_receiver.received] == [500, 200]
    [first_try, second_try] = webhook_receiver.received
    assert first_try.body == second_try.body  # the same event, the same id
    assert first_try.headers["Furiwake-Event-Id"] == second_try.headers["Furiwake-Event-Id"]


def test_a_receiver_that_is_down_gets_the_event_once_it_is_back(runtime: Runtime,
                                                                 webhook_receiver: WebhookReceiver) -> None:  # noqa: F811
    delivery_id = _event(runtime, webhook_receiver.url)
    webhook_receiver.stop()  # the port is closed: connection refused
    first = webhook_tasks.deliver(runtime, delivery_id, FAST, timeout=5)
    assert first.outcome == "retry" and first.status_code is None
    assert _deliver_when_due(runtime, delivery_id).outcome == "retry"
    pending = _delivery(runtime, delivery_id)
    assert (pending.status, pending.attempts) == ("pending", 2)
    assert pending.last_error is not None and pending.last_error.startswith("attempt 2: ConnectionError")
    webhook_receiver.start()  # the same port again
    assert _deliver_when_due(runtime, delivery_id).outcome == "delivered"
    assert len(webhook_receiver.delivered) == 1
    assert _delivery(runtime, delivery_id).attempts == 3


def test_410_gone_fails_the_delivery_for_good(runtime: Runtime, webhook_receiver: WebhookReceiver) -> None:  # noqa: F811
    delivery_id = _event(runtime, webhook_receiver.url)
    webhook_receiver.answer(410)
    attempt = webhook_tasks.deliver(runtime, delivery_id, FAST, timeout=5)
    assert (attempt.outcome, attempt.retry_in, attempt.status_code) == ("failed", None, 410)
    assert _deliver_when_due(runtime, delivery_id).outcome == "skipped"
    stored = _delivery(runtime, delivery_id)
    assert (stored.status, stored.attempts, stored.last_status_code) == ("failed", 1, 410)
    assert len(webhook_receiver.received) == 1


def test_the_policy_gives_up_after_its_time(runtime: Runtime, webhook_receiver: WebhookReceiver) -> None:  # noqa: F811
    delivery_id = _event(runtime, webhook_receiver.url)
    webhook_receiver.answer(503)
    attempt = webhook_tasks.deliver(runtime, delivery_id, RetryPolicy(give_up_after=0), timeout=5)
    assert attempt.outcome == "failed"
    assert _delivery(runtime, delivery_id).status == "failed"


def test_a_redirect_is_not_followed_but_retried(runtime: Runtime, webhook_receiver: WebhookReceiver) -> None:  # noqa: F811
    delivery_id = _event(runtime, webhook_receiver.url)
    webhook_receiver.answer(302)
    assert webhook_tasks.deliver(runtime, delivery_id, FAST, timeout=5).outcome == "retry"
    assert _delivery(runtime, delivery_id).last_error == "attempt 1: HTTP 302"


def test_racing_attempts_deliver_once(runtime: Runtime, webhook_receiver: WebhookReceiver) -> None:  # noqa: F811
    """A retry and the sweep's re-publish of the same delivery running at the same moment: one claims it."""
    delivery_id = _event(runtime, webhook_receiver.url)
    outcomes: list[str] = []
    start = threading.Barrier(4)

    def attempt() -> None:
        start.wait()
        outcomes.append(webhook_tasks.deliver(runtime, delivery_id, FAST, timeout=5).outcome)

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # On SQLite a loser may also fail to take the write lock (raises: the task errors, the sweep re-publishes).
    assert outcomes.count("delivered") == 1
    assert len(webhook_receiver.received) == 1


def test_the_task_delivers_and_the_sweep_finds_lost_deliveries(runtime: Runtime,
                                                               webhook_receiver: WebhookReceiver) -> None:  # noqa: F811
    lost = _event(runtime, webhook_receiver.url)
    with runtime.unit_of_work() as session:  # its publish was lost two minutes ago
        delivery = session.get(WebhookDelivery, lost)
        assert delivery is not None
        delivery.created_at = utcnow().replace(microsecond=0) - timedelta(minutes=2)
    fresh = _event(runtime, webhook_receiver.url, webhooks.TICKET_RESOLVED)
    before = context._installed
    context.install(context.WorkerContext(runtime))  # what worker.classify_app does at start-up
    try:
        assert webhook_tasks.overdue_deliveries(runtime) == [lost]  # the fresh one's publish is still on its way
        assert webhook_tasks.deliver_webhook.apply(args=[lost]).get() == "delivered"
        assert webhook_tasks.deliver_webhook.apply(args=[fresh]).get() == "delivered"
        assert webhook_tasks.overdue_deliveries(runtime) == []
    finally:
        context._installed = before
    assert sorted(r.headers["Furiwake-Event"] for r in webhook_receiver.received) == ["ticket.created",
                                                                                       "ticket.resolved"]


def test_a_real_worker_retries_through_the_broker_and_delivers_once(processes: Processes, redis_url: str,
                                                                    sqlite_url: str, tmp_path: Path,
                                                                    make_settings: Callable[..., Settings],
                                                                    webhook_receiver: WebhookReceiver) -> None:  # noqa: F811
    """A Celery worker process on the `mail` queue: the receiver answers 500, the task publishes its retry with a
    countdown, and the retry delivers the event, once. The delivery is published by the commit that emitted it."""
    env = service_env(sqlite_url, redis_url, tmp_path / "models", tmp_path, WEBHOOK_TEST_RETRY_SECONDS="1")
    processes.start("webhook-worker", [sys.executable, "-m", "celery", "-A", "tests.support.webhook_worker_app",
                                       "worker", "-Q", "mail", "--pool", "solo", "--loglevel", "INFO"], env)
    runtime = Runtime.build(make_settings(database_url=sqlite_url, broker_url=redis_url))
    try:
        publish_through(runtime)  # what the API's create_app does (api.agents.webhooks.init_app)
        webhook_receiver.answer(500)
        delivery_id = _event(runtime, webhook_receiver.url)
        wait_until(lambda: _delivery(runtime, delivery_id).status == "delivered", 60, processes, "the retry")
        time.sleep(2)  # a second delivery would have happened by now
        assert [r.answered for r in webhook_receiver.received] == [500, 200]
        assert _delivery(runtime, delivery_id).attempts == 2
    finally:
        runtime.dispose()


def test_routing_a_batch_emits_ticket_routed_once_per_ticket(runtime: Runtime) -> None:
    """worker.routing.write_routes stores ticket.routed with the routes it writes; a duplicate message's write, which
    changes nothing, emits nothing."""
    from worker import routing

    with runtime.unit_of_work() as session:
        webhooks.add_subscription(session, "https://chat.example.com/hook", [webhooks.TICKET_ROUTED], secret=SECRET)
        ticket, _created = store_queued(session, NewTicket(channel="web", body="返金してください"))

    def plan() -> routing.RoutingPlan:
        return routing.RoutingPlan(routing.RoutingOutcome(routed=[str(ticket.id)]), "20261203-000000-test", params=[{
            "b_id": ticket.id, "b_status": "routed", "b_route": "Payment", "b_confidence": 0.9, "b_account": 0.05,
            "b_payment": 0.9, "b_other": 0.05}], received_at=[None])

    for _ in range(2):
        with runtime.unit_of_work() as session:
            routing.write_routes(session, plan())
    with runtime.sessions() as session:
        [delivery] = session.scalars(select(WebhookDelivery)).all()
    assert (delivery.event, delivery.ticket_id) == ("ticket.routed", ticket.id)
    routed = json.loads(delivery.payload)["data"]["ticket"]
    assert (routed["status"], routed["route"], routed["model_version"]) == ("routed", "Payment", "20261203-000000-test")


def test_a_worker_publishes_the_deliveries_its_tasks_emit(runtime: Runtime) -> None:
    """At worker_init (in the worker's parent, before the fork) the entry module's Runtime gets the publisher, so a
    routing unit of work publishes its ticket.routed deliveries once it commits."""
    from celery.signals import worker_init

    assert webhooks.PUBLISHER not in runtime.sessions().info
    before = context._installed
    context.install(context.WorkerContext(runtime))
    try:
        worker_init.send(sender=None)
    finally:
        context._installed = before
    with runtime.sessions() as session:
        assert session.info[webhooks.PUBLISHER].args == (runtime,)
