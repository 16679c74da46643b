"""Real furiwake installations that send and receive mail, for the conversation and mail-loop end-to-end tests.

One installation is a gunicorn (its webhooks) and a Celery worker consuming `mail` (with `classify` when the test
needs tickets routed), configured with SMTP_URL and MAIL_FROM, on its own database and broker. Several can run
side by side (the mail-loop test's two routers): each process is named after its installation in the logs.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
import requests
from sqlalchemy import func, select

from core import agents
from core.db import make_engine, make_session_factory
from core.orm import Message, Ticket, TicketEvent
from tests.support.email_webhooks import PASSWORD, USER
from tests.support.processes import Processes, free_port, service_env, wait_until

T = TypeVar("T")
AGENT_EMAIL, AGENT_PASSWORD = "hana@example.jp", "correct horse battery staple"


def embedded_database(home: Path) -> str:
    """The SQLite database `furiwake run` keeps under FURIWAKE_HOME, migrated."""
    from core.migrate import upgrade

    (home / "var").mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{home / 'var' / 'furiwake.db'}"
    upgrade(url)
    return url


def mail_env(database_url: str, broker_url: str, model_dir: Path, home: Path, smtp_url: str, mail_from: str,
             **extra: str) -> dict[str, str]:
    return service_env(database_url, broker_url, model_dir, home, SMTP_URL=smtp_url, MAIL_FROM=mail_from,
                       EMAIL_WEBHOOK_USER=USER, EMAIL_WEBHOOK_PASSWORD=PASSWORD,
                       PUBLIC_URL="https://support.furiwake.example", **extra)  # fmt: skip


def start_named_api(processes: Processes, name: str, env: dict[str, str], workers: int = 1) -> str:
    port = free_port()
    processes.start(f"api-{name}", [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers",
                                    str(workers), "api.wsgi:app"], env)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(f"{base}/healthz", timeout=1).ok, 60, processes, f"{name}'s API /healthz")
    return base


def start_mail_worker(processes: Processes, name: str, env: dict[str, str], embedded: bool) -> None:
    """The real mail tasks (worker.mail_tasks) without TensorFlow (tests.support.mail_worker_app), `mail` only:
    for tests about mail alone, where nobody waits for a route."""
    flags = ["--without-mingle", "--without-gossip", "--without-heartbeat"] if embedded else []
    processes.start(f"mail-worker-{name}", [
        sys.executable, "-m", "celery", "-A", "tests.support.mail_worker_app", "worker", "-Q", "mail", "--pool",
        "solo", "-n", f"mail-{name}@%h", "--loglevel", "INFO", *flags,
    ], env)  # fmt: skip


def agent_token(database_url: str, email: str = AGENT_EMAIL, name: str = "Hana Sato") -> str:
    """Create an agent in the installation's database (what `furiwake create-agent` does) and issue a token."""
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine).begin() as session:
            agent = agents.create_agent(session, email, AGENT_PASSWORD, name=name)
            return agents.issue_token(session, agent)
    finally:
        engine.dispose()


class Store:
    """Read an installation's tickets and messages as stored (not through the code under test)."""

    def __init__(self, database_url: str) -> None:
        self.engine = make_engine(database_url)
        self.sessions = make_session_factory(self.engine)

    def tickets(self) -> list[Ticket]:
        with self.sessions() as session:
            return list(session.scalars(select(Ticket).order_by(Ticket.created_at)))

    def ticket(self, ticket_id: object) -> Ticket:
        with self.sessions() as session:
            ticket = session.get(Ticket, ticket_id)
            assert ticket is not None
            return ticket

    def messages(self, **where: object) -> list[Message]:
        with self.sessions() as session:
            return list(session.scalars(select(Message).filter_by(**where).order_by(Message.created_at, Message.id)))

    def events(self, ticket_id: object) -> list[str]:
        with self.sessions() as session:
            query = select(TicketEvent.kind).where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.id)
            return list(session.scalars(query))

    def counts(self) -> dict[str, int]:
        """Tickets, and messages per kind; `unsent`: outbound mail still pending (a mail in flight)."""
        with self.sessions() as session:
            counts = {str(kind): int(n) for kind, n in
                      session.execute(select(Message.kind, func.count()).group_by(Message.kind))}
            counts["tickets"] = int(session.scalar(select(func.count()).select_from(Ticket)) or 0)
            counts["unsent"] = int(session.scalar(select(func.count()).select_from(Message)
                                                  .where(Message.delivery == "pending")) or 0)
        return counts

    def dispose(self) -> None:
        self.engine.dispose()


def settle(read: Callable[[], T], busy: Callable[[T], bool], processes: Processes, quiet: float, limit: float) -> T:
    """What `read` returns once it has stopped changing: the same for `quiet` seconds, with nothing in flight
    (`busy` false); fails when it is still changing after `limit` seconds (a mail loop)."""
    deadline = time.monotonic() + limit
    last, since = read(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = read()
        if now != last or busy(now):
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
    pytest.fail(f"the mail exchange did not stop within {limit} s; last state {last}\n{processes.logs()}")
