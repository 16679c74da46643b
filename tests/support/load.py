"""Clients posting tickets while a test breaks something, and the database check of what became of them.

The clients behave as a careful integration does: every ticket carries its own Idempotency-Key, and a 503, a 429
or a refused connection is retried with the same key (after Retry-After, capped) until the ticket is accepted or
the test's deadline passes. Every HTTP answer is counted, so a test can assert that no client ever saw a 500.
"""

from __future__ import annotations

import csv
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import requests
from sqlalchemy import create_engine, func, select

from core.orm import PENDING_STATUSES, Ticket
from tests.support.paths import CORPUS

RETRYABLE = frozenset({429, 502, 503, 504})  # what a proxy or the router answers while something is down
DECIDED = ("routed", "needs_review")
MAX_BACKOFF = 1.0  # seconds: a test's clients retry sooner than Retry-After asks, to keep the test short


def corpus_texts(count: int) -> list[str]:
    """`count` real ticket texts from the bundled corpus, cycled, each made unique by a numbered suffix."""
    with CORPUS.open(encoding="utf-8") as handle:
        questions = [row["question"] for row in csv.DictReader(handle, delimiter="\t")]
    return [f"{questions[i % len(questions)]} (#{i})" for i in range(count)]


@dataclass
class IntakeReport:
    """What the clients saw: every status code answered, connection errors, and the accepted tickets by key."""

    statuses: Counter[int] = field(default_factory=Counter)
    connection_errors: int = 0
    accepted: dict[str, str] = field(default_factory=dict)  # Idempotency-Key -> ticket id
    given_up: list[str] = field(default_factory=list)  # keys never accepted before the deadline
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + self.connection_errors

    @property
    def server_errors(self) -> int:
        """5xx answers other than 503 (503 with Retry-After is the promised answer while a dependency is down)."""
        return sum(count for status, count in self.statuses.items() if status >= 500 and status != 503)


def post_ticket(base_url: str, key: str, text: str, report: IntakeReport, deadline: float) -> None:
    """POST one ticket, retrying with the same Idempotency-Key until it is accepted or `deadline` passes."""
    while time.monotonic() < deadline:
        try:
            response = requests.post(f"{base_url}/api/v1/tickets", json={"body": text},
                                     headers={"Idempotency-Key": key}, timeout=30)  # fmt: skip
        except requests.RequestException:
            with report.lock:
                report.connection_errors += 1
            time.sleep(0.2)
            continue
        with report.lock:
            report.statuses[response.status_code] += 1
        if response.status_code in (200, 201, 202):
            with report.lock:
                report.accepted[key] = response.json()["id"]
            return
        if response.status_code not in RETRYABLE:
            raise AssertionError(f"{response.status_code} for {key}: {response.text[:500]}")
        time.sleep(min(MAX_BACKOFF, float(response.headers.get("Retry-After", "1"))))
    with report.lock:
        report.given_up.append(key)


def post_tickets(base_url: str, texts: list[str], rate: float, clients: int = 8, deadline_s: float = 300,
                 prefix: str = "fault") -> IntakeReport:  # fmt: skip
    """Post `texts` at about `rate` tickets/s from `clients` threads; return when every ticket is accepted or the
    deadline passed. Ticket i is due at i/rate seconds, so an outage delays tickets but does not thin the load."""
    report = IntakeReport()
    started = time.monotonic()
    deadline = started + deadline_s
    next_index = iter(range(len(texts)))
    index_lock = threading.Lock()

    def client() -> None:
        while True:
            with index_lock:
                index = next(next_index, None)
            if index is None:
                return
            delay = started + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            post_ticket(base_url, f"{prefix}-{index}", texts[index], report, deadline)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return report


class BackgroundIntake:
    """post_tickets in a thread, so the test breaks and heals a component while the clients post."""

    def __init__(self, base_url: str, texts: list[str], rate: float, **options: object) -> None:
        self.report: IntakeReport | None = None
        self._thread = threading.Thread(target=self._run, args=(base_url, texts, rate), kwargs=options, daemon=True)

    def _run(self, base_url: str, texts: list[str], rate: float, **options: object) -> None:
        self.report = post_tickets(base_url, texts, rate, **options)  # type: ignore[arg-type]

    def __enter__(self) -> BackgroundIntake:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.join()

    def join(self, timeout: float = 600) -> IntakeReport:
        self._thread.join(timeout)
        assert self.report is not None, "the intake clients did not finish"
        return self.report


@dataclass(frozen=True)
class Outcome:
    """The database's side of a fault test: one row in the table the closing note asks for."""

    requests: int
    accepted: int
    routed: int  # routed or needs_review: a decision was written
    pending: int  # still received/queued
    failed: int
    lost: int  # accepted keys with no stored ticket
    duplicated: int  # stored rows beyond one per key
    written_twice: int  # decided tickets whose route was written more than once
    server_errors: int  # 5xx other than 503

    def row(self, fault: str) -> str:
        return (f"| {fault} | {self.requests} | {self.accepted} | {self.routed} | {self.lost} | {self.duplicated} "
                f"| {self.server_errors} |")  # fmt: skip


def outcome(database_url: str, report: IntakeReport, prefix: str = "fault") -> Outcome:
    """Count, in the database, what became of the tickets the clients posted (keys starting with `prefix`)."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(Ticket.idempotency_key, Ticket.id, Ticket.status, Ticket.attempts)
                .where(Ticket.idempotency_key.like(f"{prefix}-%"))
            ).all()
            total = connection.scalar(select(func.count()).select_from(Ticket)) or 0
    finally:
        engine.dispose()
    by_key = {key: (str(ticket_id), status) for key, ticket_id, status, _attempts in rows}
    statuses = Counter(status for _key, _id, status, _attempts in rows)
    stored = {str(ticket_id) for _key, ticket_id, _status, _attempts in rows}
    lost = sum(1 for key, ticket_id in report.accepted.items() if by_key.get(key, (None,))[0] != ticket_id)
    return Outcome(
        requests=report.requests,
        accepted=len(report.accepted),
        routed=sum(statuses[status] for status in DECIDED),
        pending=sum(statuses[status] for status in PENDING_STATUSES),
        failed=statuses["failed"],
        lost=lost,
        duplicated=(total - len(stored)) + (len(rows) - len(by_key)),
        # The route is written WHERE the ticket is still pending and the write counts an attempt, so a decided
        # ticket with more than one attempt was written twice (a retried database error writes nothing).
        written_twice=sum(1 for _key, _id, status, attempts in rows if status in DECIDED and attempts > 1),
        server_errors=report.server_errors,
    )


def wait_until_decided(database_url: str, timeout: float) -> int:
    """Seconds waited until no ticket is pending any more (received/queued); fails after `timeout`."""
    engine = create_engine(database_url)
    started = time.monotonic()
    try:
        while True:
            with engine.connect() as connection:
                pending = connection.scalar(
                    select(func.count()).select_from(Ticket).where(Ticket.status.in_(PENDING_STATUSES))
                )
            if not pending:
                return int(time.monotonic() - started)
            if time.monotonic() - started > timeout:
                raise AssertionError(f"{pending} tickets still pending after {timeout} s")
            time.sleep(0.5)
    finally:
        engine.dispose()


def record(fault: str, result: Outcome) -> None:
    """Append the test's row to the file FAULTS_TABLE names (the closing note's table), and print it (`-s`)."""
    import os

    line = result.row(fault)
    print(line)
    if os.environ.get("FAULTS_TABLE"):
        with open(os.environ["FAULTS_TABLE"], "a", encoding="utf-8") as table:
            table.write(line + "\n")
