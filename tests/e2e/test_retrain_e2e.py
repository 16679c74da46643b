"""The whole loop with real processes, on both deployments (PostgreSQL + Redis; SQLite + the file broker):
gunicorn, two classify worker processes and a trainer worker (`-Q training -c 1`).

Agents re-route tickets → an agent presses "Retrain now" on the Models page → the trainer learns the re-routes and
promotes the challenger → while tickets keep arriving, the workers switch to it without a restart: tickets routed
before carry v1, after carry v2, none failed or lost → `furiwake model rollback` restores v1 the same way.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta

import pytest
import requests
from sqlalchemy import select

from core import agents
from core.db import make_engine, make_session_factory
from core.orm import ModelVersion, Ticket, utcnow
from tests.support import retrain as support
from tests.support.paths import ROOT
from tests.support.processes import free_port, service_env, start_api, start_worker, wait_until

SWITCH_BOUND = timedelta(seconds=30)  # the bound for a new champion to reach every worker
ROUTINE = ["パスワードを忘れてログインできません", "二重に請求されています", "注文した商品がまだ届きません。",
           "クレジットカードの登録ができません。"]
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def start_trainer(processes, env: dict[str, str], embedded: bool) -> None:
    flags = ["--without-mingle", "--without-gossip", "--without-heartbeat"] if embedded else []
    processes.start("trainer", [sys.executable, "-m", "celery", "-A", "worker.trainer_app", "worker", "-Q", "training",
                                "--concurrency", "1", "-n", f"trainer-{uuid.uuid4().hex[:6]}@%h",
                                "--loglevel", "INFO", *flags], env)


class Flow:
    """Tickets submitted over HTTP at a steady pace from a background thread until stopped."""

    def __init__(self, base: str, bodies: list[str], every: float = 0.2) -> None:
        self.base, self.bodies, self.every = base, bodies, every
        self.ids: list[str] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        http = requests.Session()
        n = 0
        while not self._stop.is_set():
            body = self.bodies[n % len(self.bodies)]
            n += 1
            try:
                response = http.post(f"{self.base}/api/v1/tickets", json={"body": body}, timeout=10)
                if response.status_code == 202:
                    self.ids.append(response.json()["id"])
                else:
                    self.errors.append(f"{response.status_code} {response.text[:200]}")
            except requests.RequestException as exc:
                self.errors.append(repr(exc))
            self._stop.wait(self.every)

    def __enter__(self) -> Flow:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def _tickets(sessions, ids: list[str]) -> list[Ticket]:
    wanted = [uuid.UUID(i) for i in ids]
    with sessions() as session:
        return list(session.scalars(select(Ticket).where(Ticket.id.in_(wanted))))


def _champion(sessions) -> ModelVersion | None:
    with sessions() as session:
        return session.scalars(select(ModelVersion).where(ModelVersion.status == "champion")).first()


def _signed_in(base: str, email: str, password: str) -> tuple[requests.Session, str]:
    browser = requests.Session()
    token = _CSRF.search(browser.get(f"{base}/agent/login", timeout=10).text)
    assert token
    signed = browser.post(f"{base}/agent/login", data={"email": email, "password": password,
                                                      "csrf_token": token.group(1)}, timeout=10)
    assert signed.ok, signed.text
    page = browser.get(f"{base}/agent/models", timeout=10)
    assert page.ok and "Retrain now" in page.text
    token = _CSRF.search(page.text)
    assert token
    return browser, token.group(1)


def _wait_routed(sessions, ids: list[str], processes, what: str, timeout: float = 120) -> list[Ticket]:
    deadline = time.monotonic() + timeout
    final: list[Ticket] = []
    while time.monotonic() < deadline:
        final = _tickets(sessions, ids)
        if len(final) == len(ids) and all(t.status in ("routed", "needs_review", "failed") for t in final):
            return final
        time.sleep(0.5)
    pending = sorted((t.status, str(t.id), str(t.created_at)) for t in final if t.status in ("received", "queued"))
    pytest.fail(f"timed out after {timeout} s waiting for {what}: {len(ids) - len(final)} missing, "
                f"pending {pending[:10]}\n{processes.logs()}")


def _private_redis(request, processes) -> str:
    """A Redis of this test's own: test sessions running beside this one share the server's databases (and flush
    them at the start of their tests), which could drop or steal this test's messages. Without a redis-server
    binary, this pytest worker's database of the shared server (emptied by the fixture)."""
    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        return str(request.getfixturevalue("redis_url"))
    port = free_port()
    processes.start("redis", [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                    {})
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        try:
            redis.Redis.from_url(url).ping()
            return url
        except redis.ConnectionError:
            time.sleep(0.1)
    pytest.fail(f"the private redis-server did not start\n{processes.logs()}")


@pytest.fixture(
    params=[pytest.param("postgres+redis", marks=[pytest.mark.postgres, pytest.mark.redis]), "sqlite+files"]
)
def deployment(request, processes, tmp_path):
    if request.param == "postgres+redis":
        return request.getfixturevalue("postgres_url"), _private_redis(request, processes), False
    from core.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'var' / 'furiwake.db'}"
    upgrade(url)
    return url, "filesystem://", True


def test_button_retrain_promotes_hot_reloads_and_rolls_back_while_tickets_flow(processes, deployment, tmp_path):
    database_url, broker_url, embedded = deployment
    model_dir = tmp_path / "models"
    v1 = support.champion_into(model_dir)
    # RETRAIN_MIN_GAIN=-1: promote whatever the retrain trains. A 4-epoch model on 400 tickets is too noisy for the
    # margin to decide reliably here; that decision is proven in tests/training/test_registry_retrain.py. This
    # test is about the switch: button → trainer → every worker, with tickets flowing.
    env = service_env(database_url, broker_url, model_dir, tmp_path, RETRAIN_CORPUS=str(support.tiny_corpus()),
                      RETRAIN_EPOCHS=str(support.EPOCHS), RETRAIN_SCHEDULE="off", RETRAIN_MIN_GAIN="-1",
                      RETRAIN_MAX_CORPUS_DROP="1",
                      CLASSIFY_BATCH_WAIT_MS="50")
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    try:
        with sessions.begin() as session:
            agent = agents.create_agent(session, "hana@example.jp", "correct horse battery staple", name="Hana")
            agent_id = agent.id
        start_worker(processes, env, embedded=embedded, concurrency=2)
        start_trainer(processes, env, embedded)
        base = start_api(processes, env)

        # 1. Tickets about the new premium membership arrive; v1 routes them; agents re-route them to Account.
        drift = support.drift_texts(100)
        ids = [requests.post(f"{base}/api/v1/tickets", json={"body": b}, timeout=10).json()["id"] for b in drift]
        for ticket in _wait_routed(sessions, ids, processes, "the drift tickets routed by v1"):
            assert ticket.model_version == v1
        with sessions.begin() as session:
            for ticket_id in ids:  # fixed where v1 was wrong (a correction), then closed
                agents.reroute(session, uuid.UUID(ticket_id), "Account", agent_id)
                agents.resolve(session, uuid.UUID(ticket_id), agent_id)

        fresh = support.drift_texts(10, offset=100)  # never trained on by either version
        with Flow(base, ROUTINE + fresh) as flow:
            time.sleep(3)
            # 2. "Retrain now" on the Models page, as an agent.
            browser, token = _signed_in(base, "hana@example.jp", "correct horse battery staple")
            pressed = browser.post(f"{base}/agent/models/retrain", data={"csrf_token": token}, timeout=10)
            assert pressed.ok and "Retrain queued" in pressed.text

            champion: ModelVersion | None = None

            def promoted() -> bool:
                nonlocal champion
                champion = _champion(sessions)
                return champion is not None and champion.version != v1

            wait_until(promoted, 300, processes, "the trainer to promote a challenger")
            assert champion is not None and champion.promoted_at is not None
            v2, promoted_at = champion.version, champion.promoted_at
            assert champion.trigger == "button" and champion.compared_with == v1, champion.reason

            def serving(version: str, since: datetime) -> bool:
                recent = [t for t in _tickets(sessions, list(flow.ids)) if t.routed_at and t.routed_at > since]
                return sum(t.model_version == version for t in recent) >= 10

            wait_until(lambda: serving(v2, promoted_at), 60, processes, "tickets routed by v2")
            # 3. Roll back from the command line while tickets keep coming.
            rolled = subprocess.run([sys.executable, "-m", "cli", "model", "rollback", "--json"], cwd=ROOT,
                                    env={**env, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60)
            assert rolled.returncode == 0, rolled.stderr
            rolled_at = utcnow()
            assert '"champion": "' + v1 in rolled.stdout
            wait_until(lambda: serving(v1, rolled_at), 60, processes, "tickets routed by v1 again")
            time.sleep(1)
        assert not flow.errors, flow.errors[:5]

        final = _wait_routed(sessions, flow.ids, processes, "every ticket of the flow routed")
        assert len(final) == len(flow.ids) > 50
        assert not [t for t in final if t.status == "failed"]
        assert {t.model_version for t in final} == {v1, v2}
        for ticket in final:
            assert ticket.routed_at is not None
            if ticket.routed_at < promoted_at:
                assert ticket.model_version == v1  # before the promotion
            elif promoted_at + SWITCH_BOUND < ticket.routed_at < rolled_at:
                assert ticket.model_version == v2, "a worker still served v1 30 s after the promotion"
            elif ticket.routed_at > rolled_at + SWITCH_BOUND:
                assert ticket.model_version == v1, "a worker still served v2 30 s after the rollback"
        first_v2 = min(t.routed_at for t in final if t.model_version == v2 and t.routed_at)
        last_v1 = max(t.routed_at for t in final if t.model_version == v1 and t.routed_at and t.routed_at < rolled_at)
        print(f"switch after promotion: first v2 at +{(first_v2 - promoted_at).total_seconds():.1f} s, "
              f"last v1 at +{(last_v1 - promoted_at).total_seconds():.1f} s")  # docs/retraining.md quotes these
        assert first_v2 - promoted_at < SWITCH_BOUND and last_v1 - promoted_at < SWITCH_BOUND

        # v2 learnt from the agents: it sends new premium tickets (never trained on) to Account more often than v1.
        def account_share(version: str) -> float:
            routes = [t.route for t in final if t.model_version == version and support.MARKER in t.body]
            assert routes
            return routes.count("Account") / len(routes)

        assert account_share(v2) > account_share(v1)

        # The Models page shows the decision and v1's live override rate.
        listed = {row["version"]: row for row in browser.get(f"{base}/agent/models/versions.json", timeout=10).json()}
        assert listed[v1]["status"] == "champion" and listed[v2]["status"] == "retired"
        assert listed[v2]["reason"].startswith("promoted: macro-F1")
        # (a re-route to the route v1 had already chosen changes nothing and is no override)
        assert 0 < listed[v1]["corrected"] <= 100
        assert listed[v1]["override_rate"] == pytest.approx(listed[v1]["corrected"] / listed[v1]["routed"])
    finally:
        engine.dispose()
