"""Probes for the orchestrator: liveness touches nothing, readiness checks the database and the broker.

Readiness also reports the classify workers that serve a model (core/heartbeats.py), in the body only: the API
accepts tickets with no worker up (they wait, queued), so a load balancer must not take it out of service while
workers load their model. `/readyz?workers=1` makes "no worker serves a model" a 503, for a deploy script or
`furiwake run` that wants to know when tickets are routed (docs/operations.md, "Readiness").
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import text

from api.problems import NOT_READY, problem_response
from api.services import current_runtime
from core import heartbeats

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


def _database_answers() -> bool:
    try:
        with current_runtime().engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        log.warning("readiness: database check failed: %s: %s", type(exc).__name__, exc)
        return False
    return True


def _broker_answers() -> bool:
    """One connection attempt, no retry back-off: a probe that hangs is worse than one that says no."""
    try:
        with current_runtime().celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        log.warning("readiness: broker check failed: %s: %s", type(exc).__name__, exc)
        return False
    return True


def _workers() -> dict[str, Any] | None:
    """The live classify workers and the models they serve; None if the database cannot say."""
    try:
        with current_runtime().sessions() as session:
            serving = heartbeats.live(session)
    except Exception as exc:  # noqa: BLE001 - reported as unknown; the database check says why, if it is down
        log.warning("readiness: worker heartbeats unreadable: %s: %s", type(exc).__name__, exc)
        return None
    return {"alive": serving.workers, "serving": serving.serving, "models": list(serving.models)}


@bp.get("/readyz")
def readyz() -> Response:
    checks = {
        "database": "ok" if _database_answers() else "unavailable",
        "broker": "ok" if _broker_answers() else "unavailable",
    }
    workers = _workers() if checks["database"] == "ok" else None
    failed = [name for name, state in checks.items() if state != "ok"]
    if failed:
        return problem_response(
            503, detail=f"Not ready: {', '.join(failed)} unavailable.", type=NOT_READY, checks=checks,
            workers=workers,
        )
    if request.args.get("workers") == "1" and not (workers and workers["serving"]):
        return problem_response(503, detail="Not ready: no worker serves a model yet.", type=NOT_READY,
                                checks=checks, workers=workers)
    return jsonify(status="ready", checks=checks, workers=workers)
