"""core.messaging against a real Redis: what a classify message carries, and the Redis channel's one client."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis
from celery import Celery

from core.config import Settings
from core.messaging import CLASSIFY_QUEUE, CLASSIFY_TASK, enqueue_classification, make_celery
from core.transports import RedisTransport


def test_enqueue_publishes_one_classify_message_per_ticket(make_settings: Callable[..., Settings],
                                                          redis_url: str) -> None:
    enqueue_classification(make_celery(make_settings(broker_url=redis_url)), ["t-1", "t-2"])
    broker = redis.Redis.from_url(redis_url)
    envelopes = [json.loads(raw) for raw in reversed(broker.lrange(CLASSIFY_QUEUE, 0, -1))]  # LPUSH: newest first
    broker.close()
    assert [envelope["headers"]["task"] for envelope in envelopes] == [CLASSIFY_TASK, CLASSIFY_TASK]
    assert [envelope["headers"]["argsrepr"] for envelope in envelopes] == ["['t-1']", "['t-2']"]
    assert envelopes[0]["headers"]["id"] != envelopes[1]["headers"]["id"]
    for ticket_id, envelope in zip(["t-1", "t-2"], envelopes, strict=True):
        args, kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        assert (args, kwargs) == ([ticket_id], {})
        assert envelope["properties"]["delivery_info"]["routing_key"] == CLASSIFY_QUEUE


def test_the_redis_channel_reuses_one_client(make_settings: Callable[..., Settings], redis_url: str) -> None:
    app: Celery = make_celery(make_settings(broker_url=redis_url))
    with app.connection_for_write() as connection:
        assert isinstance(connection.transport, RedisTransport)
        assert connection.as_uri().endswith(redis_url.removeprefix("redis://"))  # same server and database
        channel = connection.default_channel
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second
            assert first.ping()
        given = redis.Redis.from_url(redis_url)
        with channel.conn_or_acquire(given) as passed:
            assert passed is given  # a client handed in is used as it is, as kombu's own channel does
        given.close()


def test_other_brokers_keep_their_own_transport(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(broker_url="amqp://guest:guest@127.0.0.1:5672//")
    assert "broker_transport" not in make_celery(settings).conf.changes


def _drain_while_publishing(transport: str, tmp_path: Path, count: int = 200) -> list[dict[str, object]]:
    """One thread publishes `count` large messages while this one consumes them as fast as it can."""
    from kombu import Connection
    from kombu.transport.virtual import Empty

    folder = tmp_path / "queue"
    folder.mkdir()
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder), "store_processed": False}
    payload = {"body": "x" * 400_000}
    received: list[dict[str, object]] = []
    with Connection(transport=transport, transport_options=options) as producer_connection, \
            Connection(transport=transport, transport_options=options) as consumer_connection:
        producer, consumer = producer_connection.default_channel, consumer_connection.default_channel

        def publish() -> None:
            for i in range(count):
                producer._put("q", {**payload, "i": i})

        thread = threading.Thread(target=publish)
        thread.start()
        deadline = time.monotonic() + 60
        while len(received) < count and time.monotonic() < deadline:
            try:
                received.append(consumer._get("q"))
            except Empty:
                time.sleep(0.0005)
        thread.join()
    return received


def test_the_embedded_broker_never_hands_out_a_half_written_message(tmp_path: Path) -> None:
    """kombu's own filesystem transport writes into the final name, so a consumer can read an empty file (a
    JSONDecodeError that stopped a worker in CI); core.transports writes aside and renames into place."""
    received = _drain_while_publishing("core.transports:FilesystemTransport", tmp_path)
    assert sorted(int(message["i"]) for message in received) == list(range(200))  # type: ignore[call-overload]
    assert not list((tmp_path / "queue").iterdir())  # nothing left over, no `.part` files


def test_embedded_mode_uses_the_atomic_filesystem_transport(make_settings: Callable[..., Settings]) -> None:
    assert make_celery(make_settings()).conf.broker_transport == "core.transports:FilesystemTransport"
