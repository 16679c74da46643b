"""PostgreSQL stopped for 15 s while clients post tickets and the worker routes them.

gunicorn and one classify worker run on a PostgreSQL of the test's own (own_postgres: the shared one on 5432 is
never stopped) and this pytest process's Redis database. While the server is down the API must answer 503 with
Retry-After (never a 500, nothing half-stored) and the worker must keep the tickets it holds pending; once the
server is back, every accepted ticket is routed exactly once. No beat runs here: the worker's own retries
(worker/retry.py) must outlast the outage, without help from the sweep.
"""

from __future__ import annotations

import time
import uuid

import requests

from tests.support.load import BackgroundIntake, corpus_texts, outcome, record, wait_until_decided
from tests.support.processes import service_env, start_api, start_worker, wait_for_worker_model

TICKETS = 800
RATE = 40.0  # tickets/s: ~20 s of load without the outage, so the outage lands in the middle of it
OUTAGE_S = 15.0
BEFORE_OUTAGE_S = 6.0


def _probe_while_down(base: str) -> list[tuple[str, int, str | None]]:
    """What a client sees from the intake and the status page with the database down: (request, status,
    Retry-After). The POST carries a key of its own, so if it were stored anyway it would show as an extra ticket."""
    seen = []
    post = requests.post(f"{base}/api/v1/tickets", json={"body": "ログインできません"},
                         headers={"Idempotency-Key": f"probe-{uuid.uuid4()}"}, timeout=30)  # fmt: skip
    seen.append(("POST /api/v1/tickets", post.status_code, post.headers.get("Retry-After")))
    get = requests.get(f"{base}/api/v1/tickets/{uuid.uuid4()}", timeout=30)
    seen.append(("GET /api/v1/tickets/<id>", get.status_code, get.headers.get("Retry-After")))
    return seen


def test_postgres_stopped_for_15_s_during_intake_and_routing(own_postgres, redis_url, processes, trained_model_dir,
                                                             tmp_path):  # fmt: skip
    env = service_env(own_postgres.url, redis_url, trained_model_dir, tmp_path)
    start_worker(processes, env)
    base = start_api(processes, env)
    wait_for_worker_model(processes)

    with BackgroundIntake(base, corpus_texts(TICKETS), RATE, clients=8, deadline_s=150) as intake:
        time.sleep(BEFORE_OUTAGE_S)  # tickets accepted and being routed when the server goes
        own_postgres.stop()
        stopped_at = time.monotonic()
        time.sleep(2)  # let the pools find their connections dead
        probes = _probe_while_down(base)
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped_at)))
        own_postgres.start()
    report = intake.join()

    waited = wait_until_decided(own_postgres.url, timeout=120)
    result = outcome(own_postgres.url, report)
    record("PostgreSQL stopped 15 s", result)
    print(f"statuses {dict(report.statuses)}, connection errors {report.connection_errors}, "
          f"decided {waited} s after the clients finished; probes {probes}")
    logs = processes.logs()

    assert all(status == 503 and retry_after for _what, status, retry_after in probes), (probes, logs)
    assert report.statuses[503] > 0, f"no client saw the outage: {dict(report.statuses)}"
    assert report.server_errors == 0, (dict(report.statuses), logs)
    assert not report.given_up, f"{len(report.given_up)} tickets never accepted"
    assert result.accepted == TICKETS
    assert (result.lost, result.duplicated, result.written_twice) == (0, 0, 0), result
    assert result.failed == 0, (result, logs)
    assert result.routed == TICKETS, result
