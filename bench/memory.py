"""Memory of the router's processes as PSS (proportional set size, from /proc/PID/smaps_rollup: shared pages divided
among the processes sharing them, so the figures add up, unlike RSS), with each process's private memory (USS).

    python bench/memory.py [--model-dir DIR] [--json]

Three measurements, one after the other, on a temporary home (embedded SQLite database, filesystem broker):
1. a classify worker with --concurrency 1, then 2, beside the trainer: every process's PSS, and what one more
   classify child adds to the total ("per additional child": the difference of the two totals, which is that
   child's private memory; its own PSS also carries a share of the pages it shares with the parent);
2. the whole `furiwake run` (`make run` with its defaults: the supervisor, gunicorn, the classify worker, beat and
   the trainer), every process of its tree and the total.
The figures are taken once every classify child serves and has compiled its XLA shapes, after one ticket was
routed; the trainer is idle (it imports TensorFlow only when a retrain runs). The model is trained first with
`furiwake train --epochs 2` (about a minute), or --model-dir names a models directory with CURRENT. Other processes
that map the same libraries (another worker, a test run) lower every PSS figure: run it on a quiet machine.
Linux only.
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

from bench.processes import free_port, smaps_rollup, stop  # noqa: E402

EMBEDDED_FLAGS = ["--without-mingle", "--without-gossip", "--without-heartbeat"]


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
            rows.append(_row(name, role, member))
    return rows


def _row(name: str, role: str, pid: int) -> dict[str, object]:
    figures = smaps_rollup(pid)
    private = figures.get("Private_Clean", 0) + figures.get("Private_Dirty", 0)
    return {"process": name, "role": role, "pid": pid, "pss_mib": round(figures["Pss"] / 1024, 1),
            "uss_mib": round(private / 1024, 1), "rss_mib": round(figures["Rss"] / 1024, 1)}


def measure_tree(pid: int, name: str = "run") -> list[dict[str, object]]:
    """One row per process of the tree under `pid` (itself first), named by its command."""
    rows = []
    stack = [(pid, 0)]
    while stack:
        member, depth = stack.pop(0)
        try:
            argv = Path(f"/proc/{member}/cmdline").read_bytes().split(b"\0")
            rows.append(_row(name, "  " * depth + _command_name([a.decode(errors="replace") for a in argv]), member))
            stack[:0] = [(child, depth + 1) for child in children_of(member)]
        except (FileNotFoundError, ProcessLookupError):
            continue  # ended meanwhile
    return rows


def _command_name(argv: list[str]) -> str:
    """'gunicorn', 'celery worker.classify_app', 'furiwake run', ... from a process's argv."""
    if "gunicorn" in argv:
        return "gunicorn"
    if "celery" in argv:
        return "celery " + argv[argv.index("-A") + 1] if "-A" in argv else "celery"
    return " ".join(Path(a).name for a in argv[:3] if a)


def table(rows: list[dict[str, object]]) -> str:
    lines = [f"{'process':<12} {'role':<30} {'pid':>8} {'PSS MiB':>9} {'USS MiB':>9} {'(RSS MiB)':>10}"]
    for row in rows:
        lines.append(f"{row['process']:<12} {row['role']:<30} {row['pid']:>8} {row['pss_mib']:>9} "
                     f"{row['uss_mib']:>9} {row['rss_mib']:>10}")
    for name in dict.fromkeys(str(row["process"]) for row in rows):
        lines.append(f"{name + ' total':<51} {total_pss(rows, name):>9.1f}")
    return "\n".join(lines)


def total_pss(rows: list[dict[str, object]], name: str) -> float:
    return round(sum(float(str(row["pss_mib"])) for row in rows if row["process"] == name), 1)


def measure_workers(env: dict[str, str], home: Path, concurrency: int, timeout: float) -> list[dict[str, object]]:
    """A classify worker with `concurrency` children beside the trainer, measured in steady state."""
    worker_log, trainer_log = home / f"classify-{concurrency}.log", home / f"trainer-{concurrency}.log"
    logs = [worker_log, trainer_log]
    children: list[subprocess.Popen[bytes]] = []
    try:
        worker = start([sys.executable, "-m", "celery", "-A", "worker.classify_app", "worker", "-Q", "classify",
                        "--concurrency", str(concurrency), "-n", f"classify-{uuid.uuid4().hex[:6]}@%h",
                        "--loglevel", "INFO", *EMBEDDED_FLAGS], env, worker_log)
        children.append(worker)
        trainer = start([sys.executable, "-m", "celery", "-A", "worker.trainer_app", "worker", "-Q", "training",
                         "--concurrency", "1", "-n", f"trainer-{uuid.uuid4().hex[:6]}@%h", "--loglevel", "INFO",
                         *EMBEDDED_FLAGS], env, trainer_log)
        children.append(trainer)
        # Steady state: every child serves and has compiled its remaining XLA shapes in the background.
        wait_until(lambda: worker_log.read_text(errors="replace").count(" shapes compiled ") >= concurrency,
                   timeout, "every classify child to load the model and compile its shapes", logs)
        wait_until(lambda: " ready" in trainer_log.read_text(errors="replace"), timeout, "the trainer", logs)
        route_one_ticket(env, timeout, logs)
        time.sleep(2)  # let the pools settle after the first batch
        return measure({f"classify-{concurrency}": worker.pid, f"trainer-{concurrency}": trainer.pid})
    finally:
        stop(children)


def measure_run(env: dict[str, str], home: Path, timeout: float) -> list[dict[str, object]]:
    """`furiwake run` with its defaults (its model already in MODEL_DIR), measured once it serves and one ticket
    went through."""
    log = home / "run.log"
    port = free_port()
    run = start([sys.executable, "-m", "cli", "run", "--no-train"], {**env, "PORT": str(port)}, log)
    try:
        wait_until(lambda: "furiwake is ready" in log.read_text(errors="replace")
                   and " shapes compiled " in log.read_text(errors="replace"), timeout, "furiwake run", [log])
        route_one_ticket(env, timeout, [log])
        time.sleep(2)
        return measure_tree(run.pid)
    finally:
        stop([run])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, help="a models directory with CURRENT (default: train one)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for each step")
    parser.add_argument("--json", action="store_true", help="print only the JSON")
    args = parser.parse_args()

    from core.migrate import upgrade

    home = Path(tempfile.mkdtemp(prefix="furiwake-memory-"))
    model_dir = home / "models"
    env = {**os.environ, "FURIWAKE_HOME": str(home), "DATABASE_URL": f"sqlite:///{home / 'var' / 'furiwake.db'}",
           "BROKER_URL": "filesystem://", "MODEL_DIR": str(model_dir), "PYTHONUNBUFFERED": "1",
           "LOG_LEVEL": "INFO", "LOG_FORMAT": "text", "SECRET_KEY": "bench-memory"}
    (home / "var").mkdir(parents=True)
    try:
        upgrade(env["DATABASE_URL"])
        if args.model_dir is None:
            subprocess.run([sys.executable, "-m", "cli", "train", "--epochs", "2"], cwd=ROOT, env=env, check=True,
                           stdout=(home / "train.log").open("wb"), stderr=subprocess.STDOUT)
        else:  # a copy: the workers write to their cache (the registry's manifest), never to the caller's
            shutil.copytree(args.model_dir.resolve(), model_dir)
        if not (model_dir / "CURRENT").is_file():
            raise SystemExit(f"no CURRENT in {model_dir}: train a model first")
        rows = measure_workers(env, home, 1, args.timeout) + measure_workers(env, home, 2, args.timeout)
        run_rows = measure_run(env, home, args.timeout)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    additional = round(total_pss(rows, "classify-2") - total_pss(rows, "classify-1"), 1)
    result = {"processes": rows, "run": run_rows, "per_additional_classify_child_mib": additional,
              "run_total_pss_mib": total_pss(run_rows, "run"), "loadavg": Path("/proc/loadavg").read_text().split()[:3]}
    if not args.json:
        print(table(rows))
        print(f"\nper additional classify child (classify-2 total - classify-1 total): {additional} MiB PSS\n")
        print(table(run_rows))
        print(f"\nload average at the end: {' '.join(result['loadavg'])}\n")  # type: ignore[arg-type]
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
