"""Cold start and reload of a classify worker: how soon a new worker child routes, and a promoted champion serves.

    python bench/coldstart.py [--model-dir DIR] [--timeout S] [--json]

Everything runs on a temporary home in the embedded mode (SQLite database, filesystem broker), with a model trained
there by `furiwake train --epochs 2` (about a minute; or --model-dir, a models directory with CURRENT, copied).
Reference figures first, in fresh processes with one TensorFlow thread as a worker child has: TensorFlow's import
(serving's), the model's load, its first XLA shape, all 17 shapes, and all 17 again with XLA's persistent
compilation cache (TF_XLA_FLAGS=--tf_xla_persistent_cache_directory, filled by the run before it), with the error
lines TensorFlow prints for it.

Then, for the old path (every shape compiled before a version serves, a new champion loaded on the thread of the
batch that noticed it: worker.current_model.WARM_UP_IN_BACKGROUND = False) and the new one, each on a fresh
database: a classify worker (--concurrency 1) is started; one ticket is published the moment its pool child exists
and timed to its routing (from the child's start, from the worker command's start); then bursts of 1, 8, 40 and 128
tickets at once (routed within the seconds the new path still compiles shapes in the background); then, while a
ticket is sent every 0.2 s, a copy of the model under a new version name is promoted in the registry: the time from
the promotion's commit to the first ticket routed by it, and the slowest ticket meanwhile. Times are the tickets'
own routed_at; a process's start comes from /proc. Linux only.
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
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.memory import EMBEDDED_FLAGS, children_of, start, wait_until  # noqa: E402
from bench.processes import stop  # noqa: E402

WORKER = ["-A", "worker.classify_app", "worker", "-Q", "classify", "--concurrency", "1", "--loglevel", "INFO",
          *EMBEDDED_FLAGS]
OLD_PATH = ("import sys, worker.current_model as m; m.WARM_UP_IN_BACKGROUND = False; "
            "from celery.__main__ import main; sys.argv[0] = 'celery'; main()")
BURSTS = (1, 8, 40, 128)
PROBE = """
import json, sys, time
from pathlib import Path
started = time.perf_counter()
import serving  # TensorFlow, imported as every process here imports it
tf_import = time.perf_counter() - started
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
from serving.predictor import Predictor
started = time.perf_counter(); predictor = Predictor(Path(sys.argv[1]), warm_up=False)
load = time.perf_counter() - started
started = time.perf_counter(); predictor.compile_first_shapes(); first = time.perf_counter() - started
started = time.perf_counter(); predictor.compile_all_shapes(); rest = time.perf_counter() - started
print(json.dumps({"tf_import_s": tf_import, "model_load_s": load, "first_shape_s": first,
                  "all_shapes_s": first + rest, "shapes": len(predictor.shapes())}))
"""


def wall() -> datetime:
    return datetime.now(UTC)


def started_at(pid: int) -> datetime:
    """When a process started, on the wall clock: /proc's start time counts clock ticks since boot."""
    ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    since = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    return datetime.fromtimestamp(time.time() - since, UTC)


def seconds(later: datetime, earlier: datetime) -> float:
    return round((later - earlier).total_seconds(), 2)


def probe(version: Path, env: dict[str, str], xla_cache: Path | None) -> dict[str, object]:
    if xla_cache is not None:
        env = {**env, "TF_XLA_FLAGS": f"--tf_xla_persistent_cache_directory={xla_cache}"}
    done = subprocess.run([sys.executable, "-c", PROBE, str(version)], cwd=ROOT, env=env, capture_output=True,
                          text=True, check=True)
    figures: dict[str, object] = {k: round(v, 2) if isinstance(v, float) else v
                                  for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}
    figures["stderr_error_lines"] = sum(line.startswith("E0000") for line in done.stderr.splitlines())
    return figures


class Tickets:
    """Tickets stored and published as the API does, and read back with their routing."""

    def __init__(self, env: dict[str, str], texts: list[str]) -> None:
        from core.config import Settings
        from core.runtime import Runtime

        self.runtime = Runtime.build(Settings.from_env(env))
        self.texts = texts
        self.sent = 0

    def send(self, count: int) -> list[tuple[uuid.UUID, datetime]]:
        from core.messaging import enqueue_classification
        from core.orm import Ticket

        with self.runtime.unit_of_work() as session:
            rows = []
            for _ in range(count):
                rows.append(Ticket(channel="api", body=self.texts[self.sent % len(self.texts)], status="queued"))
                self.sent += 1
            session.add_all(rows)
            session.flush()
            ids = [row.id for row in rows]
        sent = wall()
        enqueue_classification(self.runtime.celery, [str(i) for i in ids])
        return [(i, sent) for i in ids]

    def routed(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[datetime, str]]:
        """(routed_at, model version) of those already routed."""
        from sqlalchemy import select

        from core.orm import Ticket

        with self.runtime.sessions() as session:
            rows = session.execute(select(Ticket.id, Ticket.routed_at, Ticket.model_version, Ticket.status)
                                   .where(Ticket.id.in_(ids))).all()
        return {row.id: (row.routed_at.replace(tzinfo=UTC), str(row.model_version)) for row in rows
                if row.status in ("routed", "needs_review") and row.routed_at is not None}

    def wait(self, sent: list[tuple[uuid.UUID, datetime]], timeout: float, logs: list[Path],
             what: str) -> dict[uuid.UUID, tuple[datetime, str]]:
        ids = [i for i, _ in sent]
        out: dict[uuid.UUID, tuple[datetime, str]] = {}

        def done() -> bool:
            out.update(self.routed(ids))
            return len(out) == len(ids)

        wait_until(done, timeout, what, logs)
        return out


def new_version(source: Path, staging: Path) -> Path:
    """A copy of `source` under another version name: what a promotion brings, with known outputs."""
    meta = json.loads((source / "meta.json").read_text(encoding="utf-8"))
    meta["version"] = f"{meta['version']}-b"
    target = staging / meta["version"]
    shutil.copytree(source, target)
    (target / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    return target


def run_path(name: str, home: Path, v1: Path, v2: Path, texts: list[str], timeout: float) -> dict[str, object]:
    """One worker's cold start, bursts and promotion on a fresh database; the figures of one path."""
    from core import registry
    from core.artifacts import read_meta, set_current
    from core.migrate import upgrade

    (home / "var").mkdir(parents=True)
    models = home / "models"
    shutil.copytree(v1, models / v1.name)
    set_current(models, v1.name)
    env = {**os.environ, "FURIWAKE_HOME": str(home), "DATABASE_URL": f"sqlite:///{home / 'var' / 'furiwake.db'}",
           "BROKER_URL": "filesystem://", "MODEL_DIR": str(models), "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "INFO",
           "LOG_FORMAT": "text"}
    upgrade(env["DATABASE_URL"])
    log = home / "worker.log"
    tickets = Tickets(env, texts)
    prefix = [sys.executable, "-c", OLD_PATH] if name == "old" else [sys.executable, "-m", "celery"]
    command_started = wall()
    worker = start([*prefix, *WORKER, "-n", f"{name}-{uuid.uuid4().hex[:6]}@%h"], env, log)
    out: dict[str, object] = {}
    try:
        pool: list[int] = []
        for _ in range(int(timeout / 0.02)):  # finer than wait_until's 0.5 s: the ticket goes out as the child forks
            pool = children_of(worker.pid)
            if pool or worker.poll() is not None:
                break
            time.sleep(0.02)
        if not pool:
            raise SystemExit(f"{name}: no pool child\n{log.read_text(errors='replace')[-3000:]}")
        child_started = started_at(pool[0])
        first = tickets.send(1)
        [(routed_at, version)] = tickets.wait(first, timeout, [log], "the first ticket").values()
        out["command_to_child_s"] = seconds(child_started, command_started)
        out["child_to_first_ticket_s"] = seconds(routed_at, child_started)
        out["command_to_first_ticket_s"] = seconds(routed_at, command_started)
        out["serving_line"] = next((line.split("] ", 1)[-1] for line in log.read_text().splitlines()
                                    if "serving model" in line), "")

        for count in BURSTS:  # at once, right after the first ticket: the new path may still be compiling shapes
            sent = tickets.send(count)
            routed = tickets.wait(sent, timeout, [log], f"a burst of {count}")
            out[f"burst_{count}_s"] = seconds(max(at for at, _ in routed.values()), sent[0][1])

        sessions = tickets.runtime.sessions
        with sessions.begin() as session:
            registry.register_candidate(session, read_meta(v2), "cli", {}, v2)
        sent, promoted_at, deadline = [], None, time.monotonic() + timeout
        by_new: datetime | None = None
        while time.monotonic() < deadline:
            sent += tickets.send(1)
            if promoted_at is None and len(sent) == 10:  # 2 s of steady traffic first
                with sessions.begin() as session:
                    registry.promote(session, models, v2.name, "bench", expected_champion=v1.name)
                promoted_at = wall()
            if promoted_at is not None:
                routed = tickets.routed([i for i, _ in sent])
                new = [at for at, version in routed.values() if version == v2.name]
                if new and by_new is None:
                    by_new = min(new)
                    deadline = min(deadline, time.monotonic() + 2)  # 2 s more of traffic after the switch
            time.sleep(0.2)
        if promoted_at is None or by_new is None:
            raise SystemExit(f"{name}: the promoted version routed no ticket within {timeout:.0f} s\n"
                             f"{log.read_text(errors='replace')[-3000:]}")
        routed = tickets.wait(sent, timeout, [log], "the tickets sent around the promotion")
        latencies = [seconds(routed[i][0], at) for i, at in sent]
        out["promotion_to_new_version_s"] = seconds(by_new, promoted_at)
        out["slowest_ticket_around_promotion_s"] = max(latencies)
        out["median_ticket_around_promotion_s"] = sorted(latencies)[len(latencies) // 2]
        out["reload_line"] = next((line.split("] ", 1)[-1] for line in log.read_text().splitlines()
                                   if "serving model" in line and "replacing" in line), "")
    finally:
        stop([worker])
        tickets.runtime.dispose()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, help="a models directory with CURRENT (default: train one)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for each step")
    parser.add_argument("--json", action="store_true", help="print only the JSON")
    args = parser.parse_args()

    from core.artifacts import resolve
    from training.datasets import load

    home = Path(tempfile.mkdtemp(prefix="furiwake-coldstart-"))
    result: dict[str, object] = {"machine": f"{os.cpu_count()} CPUs, {os.uname().sysname} {os.uname().release}",
                                 "load_average_before": [round(x, 2) for x in os.getloadavg()]}
    try:
        if args.model_dir is None:
            env = {**os.environ, "FURIWAKE_HOME": str(home), "MODEL_DIR": str(home / "trained"),
                   "DATABASE_URL": f"sqlite:///{home / 'train.db'}"}
            subprocess.run([sys.executable, "-m", "cli", "train", "--epochs", "2"], cwd=ROOT, env=env, check=True,
                           stdout=(home / "train.log").open("wb"), stderr=subprocess.STDOUT)
        v1 = resolve(None, args.model_dir.resolve() if args.model_dir else home / "trained")
        v2 = new_version(v1, home / "staging")
        probe_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        result["reference"] = probe(v1, probe_env, None)
        result["xla_cache_fill"] = probe(v1, probe_env, home / "xla")
        result["xla_cache_read"] = probe(v1, probe_env, home / "xla")
        texts = load(ROOT / "data" / "tickets.tsv").texts[:2000]
        for name in ("old", "new"):
            result[name] = run_path(name, home / name, v1, v2, texts, args.timeout)
        result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if not args.json:
        for key, value in result.items():
            if isinstance(value, dict):
                print(f"{key}:")
                for name, figure in value.items():
                    print(f"  {name:36s} {figure}")
            else:
                print(f"{key:38s} {value}")
        print()
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
