"""The intake API's CPU per request against the floor of the stack it runs on, in one run on one machine.

    python bench/intake.py [--requests 3000] [--concurrency 16] [--rounds 2] [--json]

The same load (bench/e2e.py's JSON POSTs, a new connection each, C client threads) goes to three gunicorn servers
in turn, each with the same worker count, and the CPU time of the server's process group is divided by the requests:
  wsgi      a bare WSGI callable that reads the body and answers 202 with a small JSON: gunicorn's own cost;
  flask     a one-route Flask app that parses the JSON body and answers with jsonify: gunicorn + Flask;
  furiwake  api.wsgi:app, POST /api/v1/tickets on PostgreSQL + Redis (rate limit off, no worker consuming: the
            classify messages wait in a Redis database of their own, flushed afterwards).
furiwake − flask is what furiwake's intake adds (validation, the INSERT and its commit, the Celery publish, logging,
metrics, security headers); flask − wsgi is Flask's request and response handling. The servers alternate for
`--rounds` rounds, so a machine that slows down during the run slows all three alike.

Then, in this process and on the same database and Redis, the CPU of the two steps of core.tickets.submit_ticket
that leave the process, each called alone: `store` (its unit of work: the INSERT of a queued ticket and the
commit) and `publish` (the classify message, over the Runtime's kept producer). What the intake adds beyond them
is the work done in Python around them (webargs and marshmallow, flask-smorest's response, logging, metrics).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.e2e import cpu_seconds, post_ticket  # noqa: E402
from bench.processes import free_port, stop  # noqa: E402

_BODY = b'{"id": "0", "status": "queued"}'


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """gunicorn's floor: read the request body, answer 202 with a fixed JSON body."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    environ["wsgi.input"].read(length)
    start_response("202 Accepted", [("Content-Type", "application/json"), ("Content-Length", str(len(_BODY)))])
    return [_BODY]


def flask_app() -> Any:
    """Flask's floor: one route that parses the JSON body and answers with jsonify, as a view does."""
    from flask import Flask, jsonify, request

    app = Flask(__name__)

    @app.post("/api/v1/tickets")
    def create() -> Any:
        fields = request.get_json()
        return jsonify({"id": str(uuid.uuid4()), "status": "queued", "body_chars": len(fields["body"])}), 202

    return app


def serve(target: str, workers: int, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    child = subprocess.Popen([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers",
                              str(workers), target], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            post_ticket(port, 0)
            return child, port
        except OSError:
            time.sleep(0.2)
    stop([child])
    raise RuntimeError(f"gunicorn serving {target} did not answer within 60 s")


def cpu_ms_per_request(port: int, pgid: int, requests: int, concurrency: int) -> tuple[float, float]:
    """(the server's CPU ms per request, requests per second) over `requests` POSTs after 200 to warm up."""
    post = partial(post_ticket, port)
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(post, range(200)))
        before = cpu_seconds({"server": pgid})["server"]
        started = time.perf_counter()
        list(pool.map(post, range(requests)))
        elapsed = time.perf_counter() - started
    used = cpu_seconds({"server": pgid})["server"] - before
    return used * 1000 / requests, requests / elapsed


def step_costs(database_url: str, broker_url: str, calls: int) -> dict[str, float]:
    """CPU ms per call of submit_ticket's store and publish steps, each alone, after 100 calls to warm up."""
    from core.config import Settings
    from core.messaging import enqueue_classification
    from core.runtime import Runtime
    from core.tickets import NewTicket, store_queued

    runtime = Runtime.build(Settings.from_env({**os.environ, "DATABASE_URL": database_url, "BROKER_URL": broker_url,
                                               "SECRET_KEY": "bench"}))
    body = "パスワードを忘れてしまい、ログインできません。再設定の方法を教えてください。"

    def store() -> None:
        with runtime.unit_of_work() as session:
            store_queued(session, NewTicket(channel="api", body=body))

    def publish() -> None:
        enqueue_classification(runtime.celery, [str(uuid.uuid4())], runtime.producer())

    costs = {}
    try:
        for name, step in (("store", store), ("publish", publish)):
            for _ in range(100):
                step()
            started = time.process_time()
            for _ in range(calls):
                step()
            costs[name] = round((time.process_time() - started) * 1000 / calls, 3)
    finally:
        runtime.dispose()
    return costs


def main() -> int:
    import redis
    import sqlalchemy as sa

    from core.migrate import upgrade

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes, as bench/e2e.py")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    name = f"furiwake_intake_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(args.postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    database_url = args.postgres.rsplit("/", 1)[0] + "/" + name
    upgrade(database_url)
    broker = redis.Redis.from_url(args.redis)
    broker.flushdb()
    env = {**os.environ, "DATABASE_URL": database_url, "BROKER_URL": args.redis, "RESULT_BACKEND": args.redis,
           "SECRET_KEY": os.environ.get("SECRET_KEY", "bench"), "RATE_LIMIT_INTAKE": "off", "PYTHONUNBUFFERED": "1"}
    targets = {"wsgi": "bench.intake:wsgi_app", "flask": "bench.intake:flask_app()", "furiwake": "api.wsgi:app"}
    runs: dict[str, list[dict[str, float]]] = {server: [] for server in targets}
    try:
        for _ in range(args.rounds):
            for server, target in targets.items():
                child, port = serve(target, args.workers, env)
                try:
                    cpu_ms, rate = cpu_ms_per_request(port, child.pid, args.requests, args.concurrency)
                finally:
                    stop([child])
                runs[server].append({"cpu_ms_per_request": round(cpu_ms, 3), "requests_per_s": round(rate, 1)})
                print(f"{server:9s} {cpu_ms:6.3f} ms CPU a request, {rate:7.1f} requests/s", file=sys.stderr,
                      flush=True)
        steps = step_costs(database_url, args.redis, args.requests)
    finally:
        broker.flushdb()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    result = {"requests": args.requests, "concurrency": args.concurrency, "gunicorn_workers": args.workers,
              "runs": runs,
              "cpu_ms_per_request_range": {server: [min(r["cpu_ms_per_request"] for r in rs),
                                                    max(r["cpu_ms_per_request"] for r in rs)]
                                           for server, rs in runs.items()},
              "cpu_ms_per_call_of_step": steps}
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:26s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
