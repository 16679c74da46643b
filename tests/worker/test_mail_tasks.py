"""worker.mail_tasks run for real against a real SMTP server (aiosmtpd on loopback): a server that is down or
refusing delays the mail, a 5xx fails it, and whatever happens it is delivered exactly once."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from core import outbox
from core.config import MailSettings, Settings, SmtpServer
from core.mail_queue import publish_mail
from core.orm import Message, utcnow
from core.runtime import Runtime
from core.tickets import NewTicket, store_queued, submit_ticket
from tests.support.backends import BACKENDS
from tests.support.processes import Processes, service_env, wait_until
from tests.support.smtp import SmtpServer as LoopbackSmtp
from tests.support.smtp import smtp_server  # noqa: F401  (fixture)
from worker import context, mail_tasks

# Seconds, not minutes: the real schedule's shape (doubling, capped), fast enough for a test.
FAST = outbox.RetryPolicy(first=0.2, cap=0.4, give_up_after=3600)
# For a test that asserts an attempt came before its retry was due: 0.2 s can pass between writing a mail and its
# first attempt on a loaded 2-core machine (the retry was then due at once, and CI failed once on it).
PATIENT = outbox.RetryPolicy(first=1.0, cap=1.0, give_up_after=3600)
DEAD_BROKER_URL = "redis://127.0.0.1:6390/0"  # nothing listens: publishing fails at once, the sweep's case


@pytest.fixture(params=BACKENDS)
def runtime(request: pytest.FixtureRequest, make_settings: Callable[..., Settings],
            smtp_server: LoopbackSmtp) -> Iterator[Runtime]:  # noqa: F811
    url = str(request.getfixturevalue(f"{request.param}_url"))
    mail = MailSettings(smtp=SmtpServer.parse(smtp_server.url), mail_from="Support <support@example.jp>",
                        smtp_timeout_seconds=5)
    built = Runtime.build(make_settings(database_url=url, broker_url=DEAD_BROKER_URL, mail=mail))
    yield built
    built.dispose()


def _reply(runtime: Runtime, body: str = "再設定しました。") -> int:
    with runtime.unit_of_work() as session:
        ticket, _created = store_queued(session, NewTicket(channel="email", body="ログインできません",
                                                           subject="ログイン", customer_email="hanako@example.com"))
        return outbox.queue_reply(session, ticket, None, body, runtime.settings.mail).id


def _message(runtime: Runtime, message_id: int) -> Message:
    with runtime.sessions() as session:
        message = session.get(Message, message_id)
        assert message is not None
        return message


def _deliver_when_due(runtime: Runtime, message_id: int, policy: outbox.RetryPolicy = FAST) -> mail_tasks.Attempt:
    time.sleep(policy.cap + 0.1)
    return mail_tasks.deliver(runtime, message_id, policy)


def test_a_server_that_is_down_delays_the_mail_which_is_then_sent_once(runtime: Runtime,
                                                                        smtp_server: LoopbackSmtp) -> None:  # noqa: F811
    smtp_server.stop()  # first: stopping takes a while, which would eat the time the first retry waits
    message_id = _reply(runtime)
    first = mail_tasks.deliver(runtime, message_id, PATIENT)
    assert first.outcome == "retry" and first.retry_in is not None and 0 < first.retry_in <= PATIENT.first
    assert mail_tasks.deliver(runtime, message_id, PATIENT).outcome == "skipped"  # not due yet: no extra attempt
    second = _deliver_when_due(runtime, message_id, PATIENT)
    assert second.outcome == "retry"
    stored = _message(runtime, message_id)
    assert (stored.delivery, stored.attempts) == ("pending", 2)
    assert stored.last_error is not None and "attempt 2" in stored.last_error

    smtp_server.start()
    assert _deliver_when_due(runtime, message_id, PATIENT).outcome == "sent"
    assert _deliver_when_due(runtime, message_id, PATIENT).outcome == "skipped"  # a duplicate changes nothing
    [received] = smtp_server.received
    stored = _message(runtime, message_id)
    assert (stored.delivery, stored.attempts, stored.last_error) == ("sent", 3, None)
    assert stored.sent_at is not None
    assert received.message["Message-ID"] == stored.message_id  # made before the first attempt, kept
    assert received.message.get_content() == "再設定しました。\n"


def test_a_451_is_retried_and_a_550_fails_at_once(runtime: Runtime, smtp_server: LoopbackSmtp) -> None:  # noqa: F811
    later, never = _reply(runtime, "one"), _reply(runtime, "two")
    smtp_server.refuse("451 4.3.0 try again later")
    assert mail_tasks.deliver(runtime, later, FAST).outcome == "retry"
    smtp_server.refuse("550 5.7.1 relaying denied")
    assert mail_tasks.deliver(runtime, never, FAST).outcome == "failed"
    smtp_server.refuse(None)
    assert _deliver_when_due(runtime, later).outcome == "sent"
    assert mail_tasks.deliver(runtime, never, FAST).outcome == "skipped"
    assert [r.message.get_content().strip() for r in smtp_server.received] == ["one"]
    failed = _message(runtime, never)
    assert failed.delivery == "failed" and failed.last_error is not None and "550" in failed.last_error


def test_after_a_day_of_failures_the_mail_is_failed(runtime: Runtime, smtp_server: LoopbackSmtp) -> None:  # noqa: F811
    message_id = _reply(runtime)
    smtp_server.stop()
    assert mail_tasks.deliver(runtime, message_id, outbox.RetryPolicy(give_up_after=0)).outcome == "failed"
    assert _message(runtime, message_id).delivery == "failed"


def test_racing_attempts_send_once(runtime: Runtime, smtp_server: LoopbackSmtp) -> None:  # noqa: F811
    """A retry and the sweep's re-publish of the same mail running at the same moment: one claims the attempt."""
    message_id = _reply(runtime)
    outcomes: list[str] = []
    start = threading.Barrier(4)

    def attempt() -> None:
        start.wait()
        outcomes.append(mail_tasks.deliver(runtime, message_id, FAST).outcome)

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # On SQLite a loser may also fail to take the write lock (raises: the task errors, the sweep re-publishes).
    assert outcomes.count("sent") == 1
    assert len(smtp_server.received) == 1


def test_the_task_sends_and_the_sweep_finds_lost_mail(runtime: Runtime, smtp_server: LoopbackSmtp) -> None:  # noqa: F811
    lost = _reply(runtime)
    with runtime.unit_of_work() as session:  # its publish was lost two minutes ago
        session.get(Message, lost).created_at = utcnow().replace(microsecond=0) - timedelta(minutes=2)
    fresh = _reply(runtime)
    before = context._installed
    context.install(context.WorkerContext(runtime))  # what worker.classify_app does at start-up
    try:
        _run_tasks(runtime, lost, fresh)
    finally:
        context._installed = before
    assert len(smtp_server.received) == 2


def _run_tasks(runtime: Runtime, lost: int, fresh: int) -> None:
    assert mail_tasks.overdue_mail(runtime) == [lost]  # the fresh one's own publish is still on its way
    assert mail_tasks.send_mail.apply(args=[lost]).get() == "sent"
    assert mail_tasks.send_mail.apply(args=[fresh]).get() == "sent"
    assert mail_tasks.overdue_mail(runtime) == []


def test_a_new_web_ticket_is_acknowledged_once(runtime: Runtime, smtp_server: LoopbackSmtp) -> None:  # noqa: F811
    new = NewTicket(channel="web", body="How do I change my plan?", customer_email="ann@example.com",
                    idempotency_key="same-request")
    ticket, created = submit_ticket(runtime, new)  # the broker is down: the ticket waits for the sweep, the ack too
    assert created
    assert submit_ticket(runtime, new)[1] is False  # a client's retry
    with runtime.sessions() as session:
        [ack] = session.scalars(select(Message).where(Message.ticket_id == ticket.id)).all()
    assert (ack.kind, ack.delivery, ack.language) == ("acknowledgement", "pending", "en")
    assert mail_tasks.deliver(runtime, ack.id, FAST).outcome == "sent"
    [received] = smtp_server.received
    mail = received.message
    assert mail["Auto-Submitted"] == "auto-replied"
    assert mail["Subject"] == f"We have received your question [{ticket.reference}]"
    assert f"/tickets/{ticket.id}?lang=en" in mail.get_content()


def test_a_real_worker_retries_through_the_broker_and_sends_once(processes: Processes, redis_url: str,
                                                                 sqlite_url: str, tmp_path: Path,
                                                                 make_settings: Callable[..., Settings],
                                                                 smtp_server: LoopbackSmtp) -> None:  # noqa: F811
    """A Celery worker process on the `mail` queue: the server answers 451, the task publishes its retry with a
    countdown, the retry (after the server is back) delivers the mail, once."""
    env = service_env(sqlite_url, redis_url, tmp_path / "models", tmp_path, SMTP_URL=smtp_server.url,
                      MAIL_FROM="Support <support@example.jp>", MAIL_TEST_RETRY_SECONDS="2")
    processes.start("mail-worker", [sys.executable, "-m", "celery", "-A", "tests.support.mail_worker_app", "worker",
                                    "-Q", "mail", "--pool", "solo", "--loglevel", "INFO"], env)
    runtime = Runtime.build(make_settings(database_url=sqlite_url, broker_url=redis_url,
                                          mail=MailSettings(smtp=SmtpServer.parse(smtp_server.url),
                                                            mail_from="Support <support@example.jp>")))
    try:
        smtp_server.refuse("451 4.3.0 try again later")
        message_id = _reply(runtime)
        publish_mail(runtime, [message_id])
        # attempts counts when an attempt is claimed, before it talks to the server: wait for the refusal itself
        wait_until(lambda: _message(runtime, message_id).last_error is not None, 60, processes, "the first refusal")
        assert _message(runtime, message_id).delivery == "pending"
        smtp_server.refuse(None)
        wait_until(lambda: _message(runtime, message_id).delivery == "sent", 60, processes, "the retry")
        time.sleep(3)  # a second send would have happened by now
        assert len(smtp_server.received) == 1
        assert _message(runtime, message_id).attempts >= 2  # one refused (or more, by timing), one accepted
    finally:
        runtime.dispose()
