"""Scale-out on one machine: 1, 2 and 4 classify worker processes spread over two "hosts", one gunicorn API, one
PostgreSQL and one Redis: routed tickets per second for each, and which component's CPU per ticket dominates.

    python bench/scaleout.py [--workers 1,2,4] [--tickets 1500] [--concurrency 16] [--api-workers 2]
                             [--model-dir DIR] [--json]

A host is one Celery worker (`-Q classify`) with a FURIWAKE_HOME and a MODEL_DIR of its own, both empty at start:
it fetches the champion model from the database, as a worker on another machine does (docs/operations.md,
"Several machines"). N worker processes (pool children) are spread 1 → host A only, 2 → 1 + 1, 4 → 2 + 2 (each
host's --concurrency). The model is the current one in --model-dir (default: MODEL_DIR, or Settings' model_dir;
train it first: `furiwake train`); a copy of it is published as the champion into each configuration's database.

Each configuration gets a fresh database (dropped afterwards, also on failure), an emptied Redis database, fresh
hosts and a fresh API; once every worker process serves the model and the hosts are idle (their XLA shapes
compile in the background after the first), it measures:

1. noop_per_s: Celery no-op round trips (send, run, result back) through the same Redis and workers;
2. --warmup tickets routed, then deleted: first requests pay for lazy set-up once, which is not a cost per ticket;
3. routed_per_s: --tickets tickets POSTed over HTTP by --concurrency client threads, until every one is routed;
   submit_per_s: the rate the API accepted them; routed_vs_noop; routed_p50/p99_ms: created_at → routed_at per
   ticket, from the database; lost: never routed; tickets_per_batch: the workers' mean batch (celery-batches fills
   a batch only from a backlog, and each batch has a fixed cost);
4. cpu_ms_per_ticket: CPU time per ticket of the API, each host, PostgreSQL, Redis and the load generator during
   the burst (/proc); cpu_busy_share: the share of the machine's cores those kept busy; machine_busy_share: the
   share kept busy by everything (/proc/stat), other jobs on the machine included; largest: the component
   (the hosts counted together as `workers`) with the most CPU per ticket.

The load average (/proc/loadavg) is printed at the start and at the end: on a shared machine it says what else ran.
Reading it: when machine_busy_share is near 1.0, the cores are the limit and more worker processes cannot add
routed/s; the component with the largest CPU per ticket is then the one that limits the next machine. Linux only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.e2e import (  # noqa: E402
    cpu_seconds,
    noop_rate,
    percentile,
    post_ticket,
    routed_count,
    routed_delays_ms,
    wait_until_idle,
)
from bench.memory import wait_until  # noqa: E402
from bench.processes import free_port, stop  # noqa: E402

if TYPE_CHECKING:
    from sqlalchemy import Engine

HOSTS = ("host-a", "host-b")
COMPONENTS = ("api", "workers", "postgres", "redis", "load_generator")  # what `largest` chooses among
START_LIMIT_S = 300.0  # four children loading TensorFlow and a model at once on a loaded 2-core machine take a while


def spread(workers: int, hosts: int = len(HOSTS)) -> list[int]:
    """Worker processes per host, host A first, as even as they go; a host with none is left out (1 → [1])."""
    shares = [workers // hosts + (1 if index < workers % hosts else 0) for index in range(hosts)]
    return [share for share in shares if share > 0]


def worker_counts(text: str) -> list[int]:
    """--workers: a comma-separated list of positive counts ("1,2,4")."""
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected counts like 1,2,4, got {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected positive counts like 1,2,4, got {text!r}")
    return counts


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [float(value) for value in Path("/proc/loadavg").read_text().split()[:3]]


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU ticks of the whole machine since boot, from /proc/stat's first line: whoever used them."""
    user, nice, system, idle, iowait, irq, softirq, steal = (
        float(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:9])
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def champion_copy(model_dir: Path, into: Path) -> Path:
    """A models directory holding only model_dir's current version, for publishing: the registry writes into the
    directory it publishes from, and the one given may be another's (or read-only)."""
    from core.artifacts import current_version, set_current

    version = current_version(model_dir)
    if version is None or not (model_dir / version / "model.keras").is_file():
        raise SystemExit(f"{model_dir} holds no current model: train one first (`furiwake train`), or pass "
                         "--model-dir")
    shutil.copytree(model_dir / version, into / version)
    set_current(into, version)
    return into


def publish_champion(database_url: str, model_dir: Path) -> str:
    """Register model_dir's current version as the champion and store its files in the database, as a trainer's
    machine does; the hosts then fetch it from there."""
    from core import registry
    from core.db import make_engine, make_session_factory

    engine = make_engine(database_url)
    try:
        with make_session_factory(engine).begin() as session:
            version = registry.sync(session, model_dir)
    finally:
        engine.dispose()
    if version is None:
        raise SystemExit(f"could not publish the model in {model_dir} as the champion")
    return version


def serving_processes(engine: Engine) -> int:
    """Worker processes that have a model loaded (their heartbeat rows, core/heartbeats.py)."""
    from core import heartbeats
    from core.db import make_session_factory

    with make_session_factory(engine)() as session:
        return heartbeats.live(session).serving


def tickets_per_batch(engine: Engine) -> float:
    """Mean tickets per routing write: a worker writes a batch's routes with one routed_at (worker/routing.py), so
    the distinct values count the batches. Each batch has a fixed cost (a transaction, a model call), so smaller
    batches mean more worker and database CPU per ticket."""
    import sqlalchemy as sa

    with engine.connect() as conn:
        tickets, batches = conn.execute(sa.text(
            "SELECT count(*), count(DISTINCT routed_at) FROM tickets WHERE routed_at IS NOT NULL")).one()
    return float(tickets) / batches if batches else float("nan")


def answers(url: str) -> bool:
    import requests

    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:
        return False


@dataclass
class Started:
    """The processes of one configuration: the API, then one Celery worker per host; their logs and model caches."""

    port: int
    children: dict[str, subprocess.Popen[bytes]]
    logs: list[Path]
    caches: dict[str, Path]


def start_configuration(shares: list[int], base_env: dict[str, str], api_workers: int, root: Path) -> Started:
    def start(name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = root / f"{name}.log"
        started.logs.append(log)
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                                start_new_session=True)

    def host_env(name: str) -> dict[str, str]:
        (root / name / "home").mkdir(parents=True)
        return {**base_env, "FURIWAKE_HOME": str(root / name / "home"), "MODEL_DIR": str(root / name / "models")}

    started = Started(port=free_port(), children={}, logs=[], caches={})
    started.children["api"] = start("api", [
        sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{started.port}", "--workers", str(api_workers),
        "api.wsgi:app"], host_env("api"))
    for name, share in zip(HOSTS, shares, strict=False):
        started.caches[name] = root / name / "models"
        started.children[name] = start(name, [
            sys.executable, "-m", "celery", "-A", "worker.classify_app", "worker", "-Q", "classify",
            "-n", f"{name}-{uuid.uuid4().hex[:6]}@%h", "--concurrency", str(share), "--loglevel", "WARNING"],
            host_env(name))
    return started


def burst(port: int, engine: Engine, tickets: int, concurrency: int, timeout: float,
          groups: dict[str, int]) -> dict[str, Any]:
    """Post `tickets` tickets from `concurrency` threads, wait until all are routed; rate, latency and CPU."""
    cpu_before, machine_before = cpu_seconds(groups), machine_cpu()
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(partial(post_ticket, port), range(tickets)))
    submitted = time.perf_counter() - started
    deadline = time.monotonic() + timeout
    while routed_count(engine) < tickets and time.monotonic() < deadline:
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    cpu_after, machine_after = cpu_seconds(groups), machine_cpu()
    routed = routed_count(engine)
    used = {name: cpu_after[name] - cpu_before[name] for name in cpu_after}
    delays = routed_delays_ms(engine)
    ms_per_ticket = {name: round(seconds * 1000 / tickets, 3) for name, seconds in used.items()}
    by_component = {"workers": sum(ms_per_ticket.get(host, 0.0) for host in HOSTS),
                    **{name: ms_per_ticket[name] for name in COMPONENTS if name != "workers"}}
    return {
        "submit_per_s": round(tickets / submitted, 1),
        "routed_per_s": round(routed / elapsed, 1),
        "routed_p50_ms": round(percentile(delays, 50), 1),
        "routed_p99_ms": round(percentile(delays, 99), 1),
        "lost": tickets - routed,
        "tickets_per_batch": round(tickets_per_batch(engine), 1),
        "cpu_ms_per_ticket": ms_per_ticket,
        "cpu_busy_share": round(sum(used.values()) / (elapsed * (os.cpu_count() or 1)), 2),
        "machine_busy_share": round((machine_after[0] - machine_before[0]) / (machine_after[1] - machine_before[1]),
                                    2),
        "largest": max(by_component, key=lambda name: by_component[name]),
    }


def warm_up(port: int, engine: Engine, tickets: int, concurrency: int, timeout: float) -> None:
    """Route a few tickets first, then delete them: each API process's and worker child's first tickets pay for
    lazy set-up (imports, connections) once, which is not the cost per ticket being measured."""
    import sqlalchemy as sa

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(partial(post_ticket, port), range(tickets)))
    deadline = time.monotonic() + timeout
    while routed_count(engine) < tickets and time.monotonic() < deadline:
        time.sleep(0.1)
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE tickets CASCADE"))


def run_configuration(workers: int, args: argparse.Namespace, model_dir: Path, root: Path) -> dict[str, Any]:
    """One configuration, from an empty database and empty model caches to its measured row."""
    import redis
    import sqlalchemy as sa
    from celery import Celery

    from core.migrate import upgrade

    shares = spread(workers)
    name = f"furiwake_scaleout_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(args.postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    database_url = args.postgres.rsplit("/", 1)[0] + "/" + name
    started: Started | None = None
    engine = sa.create_engine(database_url)
    client = Celery(broker=args.redis, backend=args.redis)
    try:
        upgrade(database_url)
        version = publish_champion(database_url, champion_copy(model_dir, root / "trainer"))
        redis.Redis.from_url(args.redis).flushdb()
        env = {**os.environ, "DATABASE_URL": database_url, "BROKER_URL": args.redis, "RESULT_BACKEND": args.redis,
               "PYTHONUNBUFFERED": "1", "SECRET_KEY": os.environ.get("SECRET_KEY", "bench"),
               "RATE_LIMIT_INTAKE": "off"}  # one client posts every ticket
        started = start_configuration(shares, env, args.api_workers, root)
        wait_until(lambda: serving_processes(engine) >= workers, START_LIMIT_S,
                   f"{workers} worker processes serving {version}", started.logs)
        wait_until(partial(answers, f"http://127.0.0.1:{started.port}/healthz"), 60, "the API", started.logs)
        hosts = {host: started.children[host].pid for host in started.caches}
        wait_until_idle(hosts, limit_s=START_LIMIT_S)
        fetched = all((cache / version / "model.keras").is_file() for cache in started.caches.values())
        row: dict[str, Any] = {"workers": workers, "per_host": shares, "model": version,
                               "fetched_from_database": fetched}
        noop_per_s = noop_rate(client, args.noops)
        row["noop_per_s"] = round(noop_per_s, 1)
        warm_up(started.port, engine, args.warmup, args.concurrency, args.timeout)
        row.update(burst(started.port, engine, args.tickets, args.concurrency, args.timeout,
                         {"api": started.children["api"].pid, **hosts}))
        row["routed_vs_noop"] = round(row["routed_per_s"] / noop_per_s, 3)
        return row
    finally:
        if started is not None:
            stop(list(started.children.values()), timeout=20)
        client.close()
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def table(rows: list[dict[str, Any]]) -> str:
    """One line per configuration; the CPU columns are ms per ticket ("-": no such host in that configuration)."""
    cpu_columns = {"api": "api", "host-a": "host-a", "host-b": "host-b", "postgres": "pg", "redis": "redis",
                   "load_generator": "load"}
    lines = [f"{'workers':>7} {'per host':>8} {'noop/s':>6} {'routed/s':>8} {'/noop':>5} {'p50 ms':>6} "
             f"{'p99 ms':>6} {'lost':>4} {'batch':>5} | cpu ms/ticket "
             + " ".join(f"{label:>6}" for label in cpu_columns.values()) + " | busy machine | largest"]
    for row in rows:
        cpu = row["cpu_ms_per_ticket"]
        figures = " ".join(f"{cpu[name]:>6.2f}" if name in cpu else f"{'-':>6}" for name in cpu_columns)
        per_host = "+".join(str(share) for share in row["per_host"])
        lines.append(f"{row['workers']:>7} {per_host:>8} {row['noop_per_s']:>6.0f} {row['routed_per_s']:>8.0f} "
                     f"{row['routed_vs_noop']:>5.2f} {row['routed_p50_ms']:>6.0f} {row['routed_p99_ms']:>6.0f} "
                     f"{row['lost']:>4} {row['tickets_per_batch']:>5.1f} | {'':13} {figures} | "
                     f"{row['cpu_busy_share']:>4.2f} {row['machine_busy_share']:>7.2f} | {row['largest']}")
    return "\n".join(lines)


def main() -> int:
    from core.config import Settings

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=worker_counts, default=[1, 2, 4],
                        help="worker processes in all, per configuration (default 1,2,4)")
    parser.add_argument("--tickets", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=16, help="client threads posting tickets")
    parser.add_argument("--api-workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--noops", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=100, help="tickets routed and deleted before the burst")
    parser.add_argument("--model-dir", type=Path, default=None, help="default: MODEL_DIR, or Settings' model_dir")
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13",
                        help="a Redis database of its own: it is emptied before each configuration")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for the burst to be routed")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    model_dir = (args.model_dir or Settings.from_env().model_dir).resolve()
    report: dict[str, Any] = {"machine": cpu_model(), "cores": os.cpu_count(), "loadavg_start": load_average(),
                              "tickets": args.tickets, "concurrency": args.concurrency,
                              "api_workers": args.api_workers}
    rows = []
    for workers in args.workers:
        with tempfile.TemporaryDirectory(prefix="furiwake-scaleout-") as tmp:
            rows.append(run_configuration(workers, args, model_dir, Path(tmp)))
    report["loadavg_end"] = load_average()
    report["configurations"] = rows
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{report['machine']}, {report['cores']} cores; load average at start "
              f"{' '.join(map(str, report['loadavg_start']))}; {args.tickets} tickets from {args.concurrency} "
              f"client threads, gunicorn x{args.api_workers}, model {rows[0]['model'] if rows else '-'}")
        print(table(rows))
        unfetched = [str(row["workers"]) for row in rows if not row["fetched_from_database"]]
        print("every host fetched the model from the database" if not unfetched else
              f"a host's model cache lacks the champion with {', '.join(unfetched)} workers")
        print(f"load average at end {' '.join(map(str, report['loadavg_end']))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
