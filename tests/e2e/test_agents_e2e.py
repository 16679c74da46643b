"""The agents' JSON API over real processes: the CLI makes the agent and its token, gunicorn serves, a Celery
worker routes, and the agent re-routes and resolves with the token (PostgreSQL + Redis)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests
from sqlalchemy import select

from core.db import make_engine, make_session_factory
from core.orm import Correction, TicketEvent
from tests.support.paths import ROOT
from tests.support.processes import service_env, start_api, start_worker, wait_for_worker_model, wait_until


def _furiwake(env: dict[str, str], *argv: str, stdin: str = "") -> str:
    furiwake = str(Path(sys.executable).with_name("furiwake"))
    done = subprocess.run([furiwake, *argv], cwd=ROOT, env={"PATH": "/usr/bin:/bin", **env}, input=stdin,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_agent_reroutes_and_resolves_a_routed_ticket_with_its_token(
    processes, postgres_url, redis_url, trained_model_dir, tmp_path
):
    env = service_env(postgres_url, redis_url, trained_model_dir, tmp_path)
    _furiwake(env, "create-agent", "hana@example.jp", "--name", "Hana Sato", "--password-stdin",
              stdin="correct horse battery staple\n")
    token = _furiwake(env, "create-token", "hana@example.jp").strip()
    bearer = {"Authorization": f"Bearer {token}"}
    start_worker(processes, env)
    base = start_api(processes, env)
    wait_for_worker_model(processes)

    ticket_id = requests.post(f"{base}/api/v1/tickets", timeout=10,
                              json={"body": "今月の利用料金が二重に請求されています。"}).json()["id"]

    def classified() -> bool:
        ticket = requests.get(f"{base}/api/v1/tickets/{ticket_id}", timeout=5).json()
        return ticket["status"] in ("routed", "needs_review")

    wait_until(classified, 120, processes, "the ticket to be routed")
    assert requests.get(f"{base}/api/v1/tickets", timeout=5).status_code == 401
    listed = requests.get(f"{base}/api/v1/tickets?route=Payment", headers=bearer, timeout=5)
    assert [item["id"] for item in listed.json()["items"]] == [ticket_id]
    model_version = listed.json()["items"][0]["model_version"]

    rerouted = requests.post(f"{base}/api/v1/tickets/{ticket_id}/route", json={"route": "Account"}, headers=bearer,
                             timeout=5)
    assert rerouted.status_code == 200
    assert (rerouted.json()["route"], rerouted.json()["status"]) == ("Account", "routed")
    unknown = requests.post(f"{base}/api/v1/tickets/{ticket_id}/route", json={"route": "Sales"}, headers=bearer,
                            timeout=5)
    assert unknown.status_code == 422 and unknown.headers["Content-Type"] == "application/problem+json"
    resolved = requests.post(f"{base}/api/v1/tickets/{ticket_id}/resolve", headers=bearer, timeout=5)
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"

    engine = make_engine(postgres_url)
    with make_session_factory(engine)() as session:
        [correction] = session.scalars(select(Correction)).all()
        assert (correction.predicted_route, correction.corrected_route) == ("Payment", "Account")
        assert correction.model_version == model_version and correction.agent_id is not None
        assert [e.kind for e in session.scalars(select(TicketEvent).order_by(TicketEvent.id))] == [
            "rerouted", "resolved"]
    engine.dispose()
