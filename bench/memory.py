"""Memory of the Celery processes: a classify worker (--concurrency 2) and the trainer, parents and children, as
PSS (proportional set size, from /proc/PID/smaps_rollup: shared pages divided among the processes sharing them,
so the figures add up, unlike RSS).

    python bench/memory.py [--model-dir DIR] [--json]

Everything runs on a temporary home: the embedded SQLite database and filesystem broker, and a model trained there
with `furiwake train --epochs 2` (about a minute; or pass --model-dir to use a models directory that has CURRENT).
The figures are taken once every classify child has loaded the model and one ticket has been routed through; the
trainer is idle (it imports TensorFlow only when a retrain runs). Linux only.
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
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.processes import stop  # noqa: E402

EMBEDDED_FLAGS = ["--without-mingle", "--without-gossip", "--without-heartbeat"]
CLASSIFY_CONCURRENCY = 2


def smaps_rollup(pid: int) -> dict[str, int]:
    """The kB figures of /proc/PID/smaps_rollup (Pss, Rss, Pss_Anon, ...)."""
    figures = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[-1] == "kB":
            figures[name.strip()] = int(parts[0])
    return figures


def children_of(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def wait_until(check: Callable[[], bool], timeout: float, what: str, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    tails = "\n".join(f"--- {log.name} ---\n{log.read_text(errors='replace')[-3000:]}" for log in logs)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}\n{tails}")


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def route_one_ticket(env: dict[str, str], timeout: float, logs: list[Path]) -> str:
    """Store one ticket and publish it as the API does; return the model version that routed it."""
    from core.config import Settings
    from core.messaging import enqueue_classification
    from core.orm import Ticket
    from core.runtime import Runtime

    runtime = Runtime.build(Settings.from_env(env))
    try:
        with runtime.unit_of_work() as session:
            ticket = Ticket(channel="api", body="パスワードを忘れてログインできません", status="queued")
            session.add(ticket)
            session.flush()
            ticket_id = ticket.id
        enqueue_classification(runtime.celery, [str(ticket_id)])
        routed: dict[str, str] = {}

        def done() -> bool:
            with runtime.sessions() as session:
                row = session.get(Ticket, ticket_id)
                if row is not None and row.status in ("routed", "needs_review"):
                    routed["version"] = str(row.model_version)
            return bool(routed)

        wait_until(done, timeout, "one ticket routed", logs)
        return routed["version"]
    finally:
        runtime.dispose()


def measure(processes: dict[str, int]) -> list[dict[str, object]]:
    """One row per process: each parent, then its pool children."""
    rows: list[dict[str, object]] = []
    for name, pid in processes.items():
        for role, member in [("parent", pid), *(("child", child) for child in children_of(pid))]:
            figures = smaps_rollup(member)
            rows.append({"process": name, "role": role, "pid": member, "pss_mib": round(figures["Pss"] / 1024, 1),
                         "pss_anon_mib": round(figures.get("Pss_Anon", 0) / 1024, 1),
                         "rss_mib": round(figures["Rss"] / 1024, 1)})
    return rows


def table(rows: list[dict[str, object]]) -> str:
    lines = [f"{'process':<10} {'role':<7} {'pid':>8} {'PSS MiB':>9} {'PSS anon':>9} {'(RSS MiB)':>10}"]
    for row in rows:
        lines.append(f"{row['process']:<10} {row['role']:<7} {row['pid']:>8} {row['pss_mib']:>9} "
                     f"{row['pss_anon_mib']:>9} {row['rss_mib']:>10}")
    for name in dict.fromkeys(str(row["process"]) for row in rows):
        total = sum(float(str(row["pss_mib"])) for row in rows if row["process"] == name)
        lines.append(f"{name + ' total':<27} {total:>9.1f}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, help="a models directory with CURRENT (default: train one)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for each step")
    parser.add_argument("--json", action="store_true", help="print only the JSON")
    args = parser.parse_args()

    from core.migrate import upgrade

    home = Path(tempfile.mkdtemp(prefix="furiwake-memory-"))
    model_dir = args.model_dir.resolve() if args.model_dir else home / "models"
    env = {**os.environ, "FURIWAKE_HOME": str(home), "DATABASE_URL": f"sqlite:///{home / 'var' / 'furiwake.db'}",
           "BROKER_URL": "filesystem://", "MODEL_DIR": str(model_dir), "PYTHONUNBUFFERED": "1",
           "LOG_LEVEL": "INFO", "LOG_FORMAT": "text"}
    (home / "var").mkdir(parents=True)
    children: list[subprocess.Popen[bytes]] = []
    try:
        upgrade(env["DATABASE_URL"])
        if args.model_dir is None:
            subprocess.run([sys.executable, "-m", "cli", "train", "--epochs", "2"], cwd=ROOT, env=env, check=True,
                           stdout=(home / "train.log").open("wb"), stderr=subprocess.STDOUT)
        if not (model_dir / "CURRENT").is_file():
            raise SystemExit(f"no CURRENT in {model_dir}: train a model first")
        worker_log, trainer_log = home / "classify.log", home / "trainer.log"
        logs = [worker_log, trainer_log]
        worker = start([sys.executable, "-m", "celery", "-A", "worker.classify_app", "worker", "-Q", "classify",
                        "--concurrency", str(CLASSIFY_CONCURRENCY), "-n", f"classify-{uuid.uuid4().hex[:6]}@%h",
                        "--loglevel", "INFO", *EMBEDDED_FLAGS], env, worker_log)
        children.append(worker)
        trainer = start([sys.executable, "-m", "celery", "-A", "worker.trainer_app", "worker", "-Q", "training",
                         "--concurrency", "1", "-n", f"trainer-{uuid.uuid4().hex[:6]}@%h", "--loglevel", "INFO",
                         *EMBEDDED_FLAGS], env, trainer_log)
        children.append(trainer)
        wait_until(lambda: worker_log.read_text(errors="replace").count(" loaded in ") >= CLASSIFY_CONCURRENCY,
                   args.timeout, "every classify child to load the model", logs)
        wait_until(lambda: " ready" in trainer_log.read_text(errors="replace"), args.timeout, "the trainer", logs)
        version = route_one_ticket(env, args.timeout, logs)
        time.sleep(2)  # let the pools settle after the first batch
        rows = measure({"classify": worker.pid, "trainer": trainer.pid})
    finally:
        stop(children)
        shutil.rmtree(home, ignore_errors=True)
    result = {"model_version": version, "classify_concurrency": CLASSIFY_CONCURRENCY, "processes": rows}
    if not args.json:
        print(table(rows))
        print()
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
