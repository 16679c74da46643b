"""Redis stops for 15 s in the middle of an intake and starts again, empty: nothing accepted is lost, and routing
keeps its latency afterwards.

The classify worker's consumer reconnects after the outage; celery-batches' time-based flush must be armed again on
the consumer's new timer (worker.batching), or a ticket sent afterwards waits until 63 more arrive. The messages
Redis held are gone (the test's Redis keeps nothing on disk), so the sweep (beat, short settings) sends the tickets
accepted meanwhile again.
"""

from __future__ import annotations

import sys
import time

import requests

from tests.support.load import BackgroundIntake, corpus_texts, outcome, record, wait_until_decided
from tests.support.processes import service_env, start_api, start_worker, wait_for_worker_model

TICKETS = 1000
RATE = 50.0  # tickets/s: the intake lasts ~20 s, the outage starts 4 s in
OUTAGE_S = 15
LONE_TICKET_ROUTED_WITHIN_S = 2.0


def _status(base: str, ticket_id: str) -> str:
    return str(requests.get(f"{base}/api/v1/tickets/{ticket_id}", timeout=5).json()["status"])


def test_redis_restart_mid_intake_loses_nothing_and_a_lone_ticket_is_routed_promptly(
    processes, postgres_url, own_redis, trained_model_dir, tmp_path
):
    env = service_env(postgres_url, own_redis.url, trained_model_dir, tmp_path,
                      SWEEP_AFTER_SECONDS="5", SWEEP_EVERY_SECONDS="3")  # fmt: skip
    start_worker(processes, env)
    processes.start("beat", [sys.executable, "-m", "celery", "-A", "worker.beat", "beat", "--loglevel", "INFO",
                             "--schedule", str(tmp_path / "celerybeat-schedule")], env)  # fmt: skip
    base = start_api(processes, env)
    wait_for_worker_model(processes)

    with BackgroundIntake(base, corpus_texts(TICKETS), RATE, clients=8, deadline_s=120) as intake:
        time.sleep(4)
        own_redis.stop()
        time.sleep(OUTAGE_S)
        own_redis.start()
    report = intake.join()
    try:
        waited = wait_until_decided(postgres_url, timeout=60)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{processes.logs()}") from exc
    result = outcome(postgres_url, report)
    record(f"Redis stopped {OUTAGE_S} s mid-intake ({TICKETS} at {RATE:g}/s), decided {waited} s after", result)
    assert not report.given_up, report.given_up[:5]
    assert result.accepted == TICKETS
    assert (result.lost, result.duplicated, result.written_twice, result.server_errors) == (0, 0, 0, 0), result
    assert result.routed == TICKETS, result

    # The case that stalled: one ticket alone after the reconnect is routed by the time-based flush, not by the
    # sweep (5 s) nor by 63 more tickets.
    response = requests.post(f"{base}/api/v1/tickets", json={"body": "パスワードを忘れてログインできません"},
                             headers={"Idempotency-Key": "lone-after-restart"}, timeout=10)  # fmt: skip
    assert response.status_code == 202, response.text
    ticket_id, sent = response.json()["id"], time.monotonic()
    while _status(base, ticket_id) not in ("routed", "needs_review"):
        elapsed = time.monotonic() - sent
        assert elapsed < LONE_TICKET_ROUTED_WITHIN_S, (
            f"a lone ticket after the broker restart is still {_status(base, ticket_id)!r} after {elapsed:.1f} s"
            f"\n{processes.logs()}"
        )
        time.sleep(0.05)
