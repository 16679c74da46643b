"""Intake while the broker is down: the ticket is accepted at once and left `received` for the sweep.

The ticket is committed before it is published, so a publish that waits for a dead broker only holds the client
(and a gunicorn worker) for nothing. Each test breaks a broker of its own: a redis-server it starts and kills, a
loopback port nothing listens on, a socket that accepts connections and never answers.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import redis
from flask import Flask

from core.messaging import CLASSIFY_QUEUE
from tests.support.api import stored_tickets
from tests.support.own_services import OwnRedis
from tests.support.processes import free_port

# Well above what an accepted ticket takes here (milliseconds) and below kombu's 2 s reconnection back-off.
FAST = 1.5


def _timed_post(app: Flask, body: str) -> tuple[dict, float]:
    started = time.monotonic()
    response = app.test_client().post("/api/v1/tickets", json={"body": body})
    elapsed = time.monotonic() - started
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json(), elapsed


def test_a_broker_killed_mid_run_does_not_hold_intake(make_app: Callable[..., Flask], own_redis: OwnRedis) -> None:
    url = own_redis.url
    app = make_app(broker_url=url)
    before, _ = _timed_post(app, "届きますか")
    assert before["status"] == "queued"
    assert redis.Redis.from_url(url).llen(CLASSIFY_QUEUE) == 1

    own_redis.stop()
    # Several in a row: the first finds the pooled connection broken, the next ones must not wait to reconnect.
    for attempt in range(3):
        created, elapsed = _timed_post(app, f"停止中の問い合わせ {attempt}")
        assert created["status"] == "received"
        assert elapsed < FAST, f"request {attempt} waited {elapsed:.2f} s for a dead broker"
    assert [ticket.status for ticket in stored_tickets(app)].count("received") == 3


def test_a_closed_broker_port_does_not_hold_intake(make_app: Callable[..., Flask]) -> None:
    app = make_app(broker_url=f"redis://127.0.0.1:{free_port()}/0")
    for attempt in range(3):
        created, elapsed = _timed_post(app, f"問い合わせ {attempt}")
        assert created["status"] == "received" and elapsed < FAST, f"{elapsed:.2f} s"


def test_a_broker_that_never_answers_does_not_hold_intake(make_app: Callable[..., Flask]) -> None:
    """A host that accepts the connection and then stays silent (hung, or a half-open link): without a socket
    timeout the publish waits for ever."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes the handshakes; nothing ever reads or answers
        app = make_app(broker_url=f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
        created, elapsed = _timed_post(app, "応答のないブローカー")
    assert created["status"] == "received" and elapsed < 2 * FAST, f"{elapsed:.2f} s"
