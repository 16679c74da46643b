"""core.queue against a real Redis: what a classify message carries, and the Redis channel's one client."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import redis
from celery import Celery

from core.config import Settings
from core.queue import CLASSIFY_QUEUE, CLASSIFY_TASK, RedisTransport, enqueue_classification, make_celery


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
    assert "broker_transport" not in make_celery(make_settings()).conf.changes  # filesystem://, embedded mode
