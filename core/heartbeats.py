"""Which classify worker processes are alive and which model each serves: one `worker_heartbeats` row per process.

Each worker child writes its row as soon as its model is loaded, then every BEAT_EVERY_S (Heartbeat below), and
deletes it when it exits cleanly. /readyz (api/health.py) and `furiwake run`'s banner read the rows seen within
STALE_AFTER_S: a worker killed with SIGKILL or cut off from the database stops counting after that long.

A table rather than Redis because both deployments have the database (the embedded one has no Redis) and every API
process on every machine reads it already. The functions take a Session and never commit (docs/architecture.md).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.orm import WorkerHeartbeat, utcnow

BEAT_EVERY_S = 10.0
STALE_AFTER_S = 3 * BEAT_EVERY_S  # three missed beats: the process is gone (or cannot reach the database)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Serving:
    """What the live worker processes serve: how many have a model loaded, and which versions."""

    workers: int  # live worker processes, with or without a model
    serving: int  # of those, the ones with a model loaded
    models: tuple[str, ...]  # the versions they serve, sorted


def this_process() -> tuple[str, int]:
    return socket.gethostname()[:255], os.getpid()


def beat(session: Session, host: str, pid: int, model_version: str | None) -> None:
    """Insert or refresh this process's row (only this process writes it, so get-then-write does not race)."""
    row = session.get(WorkerHeartbeat, (host, pid))
    if row is None:
        session.add(WorkerHeartbeat(host=host, pid=pid, model_version=model_version))
    else:
        row.model_version = model_version
        row.seen_at = utcnow()


def forget(session: Session, host: str, pid: int) -> None:
    session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.host == host, WorkerHeartbeat.pid == pid))


def live(session: Session, now: datetime | None = None) -> Serving:
    """The worker processes seen within STALE_AFTER_S of now."""
    cutoff = (now or utcnow()) - timedelta(seconds=STALE_AFTER_S)
    rows = session.scalars(select(WorkerHeartbeat).where(WorkerHeartbeat.seen_at >= cutoff)).all()
    with_model = [row for row in rows if row.model_version]
    return Serving(
        workers=len(rows),
        serving=len(with_model),
        models=tuple(sorted({str(row.model_version) for row in with_model})),
    )


def forget_dead_here(session: Session, host: str, alive: Callable[[int], bool]) -> int:
    """Delete this host's rows whose process is gone (a previous run killed before it could say so), so that a
    fresh `furiwake run` does not call itself ready on the strength of a dead worker. A live process whose row is
    deleted by mistake (another pid namespace with the same host name) writes it again at its next beat."""
    rows = session.scalars(select(WorkerHeartbeat).where(WorkerHeartbeat.host == host)).all()
    dead = [row for row in rows if not alive(row.pid)]
    for row in dead:
        session.delete(row)
    return len(dead)


class Heartbeat:
    """A daemon thread that writes this process's row now and then every BEAT_EVERY_S, and deletes it on stop().

    `version` returns the model the process serves right now (None before one is loaded); `unit_of_work` is the
    process's Runtime.unit_of_work. A failed write is logged and retried at the next beat: a database that is
    briefly down must not take the worker with it.
    """

    def __init__(self, unit_of_work: Callable[[], AbstractContextManager[Session]],
                 version: Callable[[], str | None], every_s: float = BEAT_EVERY_S) -> None:
        self._unit_of_work = unit_of_work
        self._version = version
        self._every_s = every_s
        self._stopped = threading.Event()
        self._woken = threading.Event()  # set by wake(): beat now instead of at the next interval
        self._thread: threading.Thread | None = None
        self.host, self.pid = this_process()

    def beat_now(self) -> bool:
        try:
            with self._unit_of_work() as session:
                beat(session, self.host, self.pid, self._version())
        except Exception as exc:  # noqa: BLE001 - the next beat tries again; the worker keeps routing
            log.warning("worker heartbeat not written: %s: %s", type(exc).__name__, exc)
            return False
        return True

    def start(self) -> None:
        self.beat_now()
        self._thread = threading.Thread(target=self._run, name="worker-heartbeat", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Beat now, on the heartbeat's own thread (the caller does not wait for the database): a hot-swapped
        model shows in /readyz and on the Status page at once, not up to BEAT_EVERY_S later."""
        self._woken.set()

    def _run(self) -> None:
        while True:
            self._woken.wait(self._every_s)
            if self._stopped.is_set():
                return
            self._woken.clear()
            self.beat_now()

    def stop(self) -> None:
        """Stop beating and delete the row: a worker that stops cleanly stops counting at once."""
        self._stopped.set()
        self._woken.set()
        try:
            with self._unit_of_work() as session:
                forget(session, self.host, self.pid)
        except Exception as exc:  # noqa: BLE001 - the row goes stale after STALE_AFTER_S anyway
            log.warning("worker heartbeat not removed: %s: %s", type(exc).__name__, exc)
