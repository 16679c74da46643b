"""kombu transports with two fixes furiwake needs, each a small subclass of kombu's own (pinned in pyproject.toml).

- Redis: one redis-py client per channel instead of one per command (CPU on every publish and ack).
- Filesystem (the embedded broker of `make run`): atomic message files. kombu writes a message straight into its
  final name, so a consumer polling the folder can move and read a file the producer has created but not yet
  written: an empty payload, a JSONDecodeError that stops the worker's consumer, and the message gone (seen in CI
  under load). Here a message is written under a name the consumer ignores and renamed into place when complete.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from time import monotonic
from typing import Any

from kombu.transport import filesystem as kombu_filesystem
from kombu.transport import redis as kombu_redis
from kombu.utils.json import dumps


class RedisChannel(kombu_redis.Channel):
    """kombu's Redis channel, reusing one redis-py client for the commands it sends outside the consumer's loop.

    kombu builds a new `redis.Redis` for each such command: every publish (LPUSH), every ack. redis-py's constructor
    rebuilds its table of ~170 response callbacks each time, about 45 us of CPU: more than the LPUSH it is made
    for, and a fifth of what the API spent publishing a ticket. The client is only a thread-safe handle on the
    channel's connection pool (pipelines are made per use from it), so one per channel does the same job.
    """

    @cached_property
    def _shared_client(self) -> Any:
        return self._create_client()

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        yield client or self._shared_client


class RedisTransport(kombu_redis.Transport):
    Channel = RedisChannel


class FilesystemChannel(kombu_filesystem.Channel):
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]  # kombu's bases disagree
        """Put a message on `queue` atomically: consumers only list `<stamp>_<uuid>.<queue>.msg` names, so the
        file is written as `….msg.part` and renamed (atomic within one folder) once its last byte is on disk."""
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + ".part"
        try:
            with open(partial, "wb") as handle:
                handle.write(dumps(payload).encode("utf-8"))
            os.replace(partial, final)
        except OSError as exc:
            raise kombu_filesystem.ChannelError(f"Cannot add file {final!r} to directory") from exc


class FilesystemTransport(kombu_filesystem.Transport):
    Channel = FilesystemChannel
