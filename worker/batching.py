"""celery-batches' Batches with the two things a long-running worker needs from it: a flush timer that survives a
broker reconnect, and a batch whose child process died that is sent again instead of forgotten.

The timer. Batches arms its time-based flush (`flush_interval`) on the consumer's timer when the first message
arrives, and keeps the handle in `self._tref` until the buffers run empty. When the broker connection is lost,
Celery's event loop clears that timer (celery.worker.loops.asynloop: `hub.timer.clear()`) and the consumer restarts,
calling Strategy() again; the old handle is dead but not None, so Batches never arms the flush again and only the
size-based flush (`flush_every`) is left: after a Redis restart a lone ticket waited for 63 more. Strategy() here
forgets the stale handle, and arms a new one at once if messages are still buffered.

A dead child. Batches hands a batch to the pool with a success callback only, which acknowledges the batch's
acks_late messages. When the child running it dies (SIGKILL, the OOM killer, a hard time limit), Celery's prefork
pool calls the job's error callback at once (celery.concurrency.asynpool on_job_process_lost, without billiard's own
10 s grace) with a WorkerLostError, wrapped in an ExceptionInfo and an ExceptionWithTraceback, and nothing else (seen
in tests/faults/test_worker_kill.py): without an error callback the messages stay unacknowledged on this worker until
it restarts, and then until Redis's visibility timeout (an hour). Here the error callback hands the batch to
`on_batch_lost`, then acknowledges the messages.

Why send again and acknowledge, not reject with requeue: a rejected message comes back unchanged, so a ticket that
kills its child every time (a pathological text, a model that runs out of memory on it) would loop for ever, each
time taking a child down and the next one seconds to load its model. The subclass's `on_batch_lost` sends each ticket
through its retry policy instead (worker.retry: attempt+1 after a back-off, `failed` once the policy gives up),
which bounds that loop; the originals are acknowledged only once the new messages are sent, so a failure there
leaves them unacknowledged for the broker's visibility timeout and the sweep, never lost. A ticket the dead child
had already written is sent again too: routing writes only tickets still pending, so the second try skips it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from typing import Any, cast

from celery import Celery
from celery.worker.consumer import Consumer
from celery.worker.request import Request
from celery_batches import Batches, SimpleRequest
from celery_batches.trace import apply_batches_task

log = logging.getLogger(__name__)


class RearmingBatches(Batches):
    """Batches whose flush timer is re-armed after a consumer restart and whose lost batches go to on_batch_lost."""

    abstract = True

    def Strategy(self, task: Batches, app: Celery, consumer: Consumer) -> Callable[..., None]:  # noqa: N802 (Celery's)
        handler: Callable[..., None] = super().Strategy(task, app, consumer)
        # Called on every consumer (re)start: after a connection loss the consumer's timer has been cleared, so the
        # handle armed before it never fires again.
        stale = cast(Any, self)._tref  # set in Batches.__init__ (mypy cannot see its type through Celery's Task)
        if stale is not None:
            stale.cancel()
            self._tref = None
        if not (self._buffer.empty() and self._pending.empty()):
            # Messages buffered before the connection dropped are flushed on the new timer, not only when the next
            # message arrives; their route is written as usual (their acks may fail: the broker's copies are then
            # redelivered later and skipped, since routing writes only pending tickets).
            self._tref = consumer.timer.call_repeatedly(self.flush_interval, self._do_flush)
        return handler

    def flush(self, requests: Collection[Request]) -> Any:
        """Batches.flush, plus an error callback: what to do when the pool reports the batch lost."""
        requests = list(requests)
        acks_late = [request for request in requests if request.task.acks_late]
        acks_early = [request for request in requests if not request.task.acks_late]
        batch = ([SimpleRequest.from_request(request) for request in requests],)

        def on_accepted(pid: int, time_accepted: float) -> None:
            for request in acks_early:
                request.acknowledge()

        def on_return(result: object) -> None:
            for request in acks_late:
                request.acknowledge()

        def on_error(error: object) -> None:
            # billiard passes an ExceptionInfo around an ExceptionWithTraceback around the WorkerLostError.
            exception = getattr(error, "exception", error)
            exception = getattr(exception, "exc", exception)
            self._lost(acks_late, f"{type(exception).__name__}: {exception}")

        return self._pool.apply_async(apply_batches_task, (self, batch, 0, None), accept_callback=on_accepted,
                                      callback=on_return, error_callback=on_error)  # fmt: skip

    def _lost(self, requests: Sequence[Request], reason: str) -> None:
        ids = [request.id for request in requests]
        log.warning("a batch of %d messages was lost (%s); sending them again", len(requests), reason,
                    extra={"task_ids": ids})  # fmt: skip
        try:
            self.on_batch_lost([SimpleRequest.from_request(request) for request in requests], reason)
        except Exception:  # noqa: BLE001 - in the worker's event loop: log, and leave the messages to the broker
            log.exception("could not send a lost batch of %d again; its messages stay unacknowledged (the broker's "
                          "visibility timeout and the sweep bring them back)", len(requests))  # fmt: skip
            return
        for request in requests:
            request.acknowledge()

    def on_batch_lost(self, requests: Sequence[SimpleRequest], reason: str) -> None:
        """Send these requests again (in the worker's parent process); raise if they could not be sent.

        Each task says how (worker.classify_tasks: its retry policy); the module docstring says why not a requeue.
        """
        raise NotImplementedError("a RearmingBatches task says how to send a lost batch again")
