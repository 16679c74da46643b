"""End-to-end throughput and latency against PostgreSQL + Redis, with real gunicorn and Celery processes.

    python bench/e2e.py --tickets 3000 --concurrency 16 [--workers 2] [--batch 1] [--json]

1. noop_per_s: Celery no-op round trips (send, run, result back) on the same Redis, same worker;
2. routed_per_s: N tickets POSTed over HTTP by C client threads, until every one is routed (sustained rate);
   with --batch B > 1, the burst's tickets go B to a request, to POST /api/v1/tickets/batch;
   routed_p50/p99_ms: created_at → routed_at per ticket, from the database;
3. intake_p50/p99_ms: POST latency at a steady 50 tickets/s (open loop);
lost: tickets never routed within the time limit.
cpu_ms_per_ticket: CPU time of the API, the worker, PostgreSQL, Redis and the load generator per ticket during
   the burst (from /proc), and cpu_busy_share: how much of the machine's cores they kept busy.
pss_mib_per_process / pss_mib_total: each part's processes' PSS right after the burst (/proc/PID/smaps_rollup).
The model is the current one in MODEL_DIR (train it first: `furiwake train`).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.processes import free_port, smaps_rollup, stop  # noqa: E402

if TYPE_CHECKING:
    from celery import Celery
    from sqlalchemy import Engine

SAMPLES = [
    "パスワードを忘れてログインできません。再設定の方法を教えてください。",
    "二重に請求されています。確認をお願いします。",
    "注文した商品がまだ届きません。",
    "I was charged twice for my subscription this month.",
    "アプリが起動直後に落ちます。version: 3.2.1 iPhone 15",
    "退会したいのですが手続きを教えてください",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def components(groups: dict[str, int]) -> list[tuple[str, int, str]]:
    """(component, pid, stat line) of every process that is part of the system, from /proc (Linux): the process
    groups of the API and the worker (started with start_new_session), PostgreSQL's processes, Redis, and this
    load generator."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # the process ended meanwhile
        pid = int(text.split(" ", 1)[0])
        command = text[text.index("(") + 1 : text.rindex(")")]
        process_group = int(text[text.rindex(")") + 2 :].split()[2])
        group = next((name for name, pgid in groups.items() if process_group == pgid), None)
        if group is None:
            group = ("postgres" if command == "postgres" else "redis" if command.startswith("redis-server")
                     else "load_generator" if pid == os.getpid() else None)
        if group is not None:
            found.append((group, pid, text))
    return found


def cpu_seconds(groups: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each part of the system (components())."""
    ticks = os.sysconf("SC_CLK_TCK")
    totals = dict.fromkeys([*groups, "postgres", "redis", "load_generator"], 0.0)
    for group, _pid, text in components(groups):
        fields = text[text.rindex(")") + 2 :].split()  # state ppid pgrp ... utime (field 14) stime (15)
        totals[group] += (int(fields[11]) + int(fields[12])) / ticks
    return totals


def pss_mib(groups: dict[str, int]) -> dict[str, list[float]]:
    """Each part's processes' PSS in MiB (/proc/PID/smaps_rollup), largest first; PostgreSQL's are every server
    process on the machine, this benchmark's database among others."""
    found: dict[str, list[float]] = {name: [] for name in [*groups, "postgres", "redis"]}
    for group, pid, _text in components(groups):
        if group == "load_generator":
            continue
        try:
            found[group].append(round(smaps_rollup(pid)["Pss"] / 1024, 1))
        except (OSError, KeyError):
            continue  # ended meanwhile, or not ours to read
    return {name: sorted(values, reverse=True) for name, values in found.items()}


def wait_until_idle(groups: dict[str, int], limit_s: float = 120.0) -> None:
    """Until these process groups use under 5 % of a core for a whole second: a worker child serves as soon as its
    first XLA shape is compiled and compiles the rest in the background, which must not count as routing's CPU."""
    deadline = time.monotonic() + limit_s
    before = sum(cpu_seconds(groups)[name] for name in groups)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = sum(cpu_seconds(groups)[name] for name in groups)
        if now - before < 0.05:
            return
        before = now


def noop_rate(client: Celery, count: int) -> float:
    """Celery no-op round trips per second (send, run, result back) on the classify queue: the ceiling the
    broker and the workers' task plumbing put on routing, with no database and no model."""
    from core.messaging import NOOP_TASK

    started = time.perf_counter()
    pending = [client.send_task(NOOP_TASK, queue="classify") for _ in range(count)]
    for handle in pending:
        handle.get(timeout=60)
    return count / (time.perf_counter() - started)


def post_ticket(port: int, i: int) -> float:
    """One ticket over HTTP with the standard library's client, its latency in ms: the load generator shares the
    2 cores with the system under test, so it is kept as light as it can be (requests costs ~1 ms CPU a call)."""
    return post_json(port, "/api/v1/tickets", {"body": SAMPLES[i % len(SAMPLES)] + f" #{i}"})


def post_batch(port: int, size: int, i: int) -> float:
    """Tickets i·size … i·size + size − 1 in one request to the batch endpoint, its latency in ms."""
    tickets = [{"body": SAMPLES[n % len(SAMPLES)] + f" #{n}"} for n in range(i * size, (i + 1) * size)]
    return post_json(port, "/api/v1/tickets/batch", {"tickets": tickets})


def post_json(port: int, path: str, payload: object) -> float:
    """POST `payload` as JSON on a new connection; the latency in ms, or an error unless the answer is 202."""
    body = json.dumps(payload).encode()
    t0 = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("POST", path, body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    answer = response.read()
    connection.close()
    if response.status != 202:
        raise RuntimeError(f"{path} answered {response.status}: {answer[:200]!r}")
    return (time.perf_counter() - t0) * 1000


def routed_count(engine: Engine) -> int:
    """Tickets with a route (routed, or routed and left for review)."""
    import sqlalchemy as sa

    with engine.connect() as conn:
        return int(conn.execute(sa.text(
            "SELECT count(*) FROM tickets WHERE status IN ('routed', 'needs_review')")).scalar_one())


def routed_delays_ms(engine: Engine) -> list[float]:
    """created_at → routed_at of every routed ticket, in ms."""
    import sqlalchemy as sa

    with engine.connect() as conn:
        return [float(r[0]) * 1000 for r in conn.execute(sa.text(
            "SELECT EXTRACT(EPOCH FROM routed_at - created_at) FROM tickets WHERE routed_at IS NOT NULL"))]


def main() -> int:
    import redis
    import requests
    import sqlalchemy as sa
    from celery import Celery

    from core.config import Settings
    from core.messaging import NOOP_TASK
    from core.migrate import upgrade

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes")
    parser.add_argument("--api-workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--batch", type=int, default=1, help="tickets per request in the burst (>1: the batch "
                        "endpoint; --tickets is rounded down to a multiple)")
    parser.add_argument("--noops", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=50.0, help="steady intake rate for the latency phase")
    parser.add_argument("--rate-seconds", type=float, default=10.0)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.batch < 1 or args.tickets < args.batch:
        parser.error("--batch must be at least 1 and at most --tickets")
    args.tickets -= args.tickets % args.batch

    settings = Settings.from_env()
    name = f"furiwake_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(args.postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    database_url = args.postgres.rsplit("/", 1)[0] + "/" + name
    upgrade(database_url)
    redis.Redis.from_url(args.redis).flushdb()
    env = {**os.environ, "DATABASE_URL": database_url, "BROKER_URL": args.redis, "RESULT_BACKEND": args.redis,
           "MODEL_DIR": str(settings.model_dir), "FURIWAKE_HOME": str(settings.home), "PYTHONUNBUFFERED": "1",
           "SECRET_KEY": os.environ.get("SECRET_KEY", "bench"), "RATE_LIMIT_INTAKE": "off"}  # one client, many tickets
    port = free_port()
    logs = Path(os.environ.get("BENCH_LOG_DIR", "/tmp"))
    children = [
        subprocess.Popen([sys.executable, "-m", "celery", "-A", "worker.classify_app", "worker", "-Q", "classify",
                          "--concurrency", str(args.workers), "--loglevel", "WARNING"], cwd=ROOT, env=env,
                         stdout=(logs / "bench-worker.log").open("wb"), stderr=subprocess.STDOUT,
                         start_new_session=True),
        subprocess.Popen([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers",
                          str(args.api_workers), "api.wsgi:app"], cwd=ROOT, env=env,
                         stdout=(logs / "bench-api.log").open("wb"), stderr=subprocess.STDOUT,
                         start_new_session=True),
    ]
    base = f"http://127.0.0.1:{port}"
    engine = sa.create_engine(database_url)
    result: dict[str, object] = {"tickets": args.tickets, "batch": args.batch, "concurrency": args.concurrency,
                                 "celery_workers": args.workers, "api_workers": args.api_workers}
    try:
        client = Celery(broker=args.redis, backend=args.redis)
        deadline = time.monotonic() + 120
        while True:  # the worker is up when a no-op comes back
            try:
                client.send_task(NOOP_TASK, queue="classify").get(timeout=5)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.2)

        wait_until_idle({"worker": children[0].pid})  # its children compile their XLA shapes in the background
        noop_per_s = noop_rate(client, args.noops)
        result["noop_per_s"] = round(noop_per_s, 1)
        post = partial(post_ticket, port)
        done_count = partial(routed_count, engine)

        groups = {"api": children[1].pid, "worker": children[0].pid}
        cpu_before = cpu_seconds(groups)
        started = time.perf_counter()
        burst_post = post if args.batch == 1 else partial(post_batch, port, args.batch)
        with ThreadPoolExecutor(args.concurrency) as pool:
            burst_latencies = list(pool.map(burst_post, range(args.tickets // args.batch)))
        submitted = time.perf_counter() - started
        deadline = time.monotonic() + args.timeout
        while done_count() < args.tickets and time.monotonic() < deadline:
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        routed = done_count()
        cpu_after = cpu_seconds(groups)
        # Where the time goes: CPU milliseconds per ticket of each part, over the burst until all were routed.
        result["cpu_ms_per_ticket"] = {name: round((cpu_after[name] - cpu_before[name]) * 1000 / args.tickets, 3)
                                       for name in cpu_after}
        result["cpu_busy_share"] = round(sum(cpu_after.values()) - sum(cpu_before.values()), 2) / round(
            elapsed * (os.cpu_count() or 1), 2)
        memory = pss_mib(groups)  # right after the burst, every process still holding what it used for it
        result["pss_mib_per_process"] = memory
        result["pss_mib_total"] = {name: round(sum(values), 1) for name, values in memory.items()}
        result["submit_per_s"] = round(args.tickets / submitted, 1)
        result["routed_per_s"] = round(routed / elapsed, 1)
        result["routed_vs_noop"] = round((routed / elapsed) / noop_per_s, 3)
        delays = routed_delays_ms(engine)
        result["routed_p50_ms"] = round(percentile(delays, 50), 1)
        result["routed_p99_ms"] = round(percentile(delays, 99), 1)
        result["burst_intake_p50_ms"] = round(percentile(burst_latencies, 50), 1)
        result["burst_intake_p99_ms"] = round(percentile(burst_latencies, 99), 1)

        # Steady 50 tickets/s, open loop: each request starts at its scheduled time whatever the others do.
        count = int(args.rate * args.rate_seconds)
        steady: list[float] = []
        lock = threading.Lock()

        def scheduled(i: int, at: float) -> None:
            time.sleep(max(0.0, at - time.perf_counter()))
            latency = post(args.tickets + i)
            with lock:
                steady.append(latency)

        t0 = time.perf_counter() + 0.2
        with ThreadPoolExecutor(32) as pool:
            for i in range(count):
                pool.submit(scheduled, i, t0 + i / args.rate)
        total = args.tickets + count
        deadline = time.monotonic() + args.timeout
        while done_count() < total and time.monotonic() < deadline:
            time.sleep(0.05)
        result["intake_rate_per_s"] = args.rate
        result["intake_p50_ms"] = round(percentile(steady, 50), 1)
        result["intake_p99_ms"] = round(percentile(steady, 99), 1)
        result["lost"] = total - done_count()
    finally:
        stop(children, timeout=20)
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:22s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
