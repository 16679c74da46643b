"""Probes for the orchestrator: liveness touches nothing, readiness checks the database and the broker."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify
from sqlalchemy import text

from api.problems import NOT_READY, problem_response
from api.services import current_runtime

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


@bp.get("/readyz")
def readyz() -> Response:
    checks = {
        "database": "ok" if _database_answers() else "unavailable",
        "broker": "ok" if _broker_answers() else "unavailable",
    }
    failed = [name for name, state in checks.items() if state != "ok"]
    if failed:
        return problem_response(
            503, detail=f"Not ready: {', '.join(failed)} unavailable.", type=NOT_READY, checks=checks
        )
    return jsonify(status="ready", checks=checks)
