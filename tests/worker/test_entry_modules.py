"""The Celery entry modules, each imported in a fresh interpreter as `celery -A …` imports it: what they register
and what they load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from core.assignment import ASSIGN_TASK
from core.mail_queue import OUTBOX_SWEEP_TASK, SEND_MAIL_TASK
from core.messaging import CLASSIFY_TASK, NOOP_TASK, RETRAIN_TASK, SWEEP_TASK
from core.webhook_queue import DELIVER_WEBHOOK_TASK, WEBHOOK_SWEEP_TASK

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
import {module} as entry
print(json.dumps({{
    "tasks": sorted(name for name in entry.app.tasks if not name.startswith("celery.")),
    "loaded": sorted({{name.split(".")[0] for name in sys.modules}} & {{"tensorflow", "keras", "serving", "training"}}),
    "flush_every": getattr(entry.app.tasks.get("{classify}"), "flush_every", None),
    "flush_interval": getattr(entry.app.tasks.get("{classify}"), "flush_interval", None),
    "broker_url": entry.app.conf.broker_url,
    "ignore_result": entry.app.conf.task_ignore_result,
}}))
"""


def _import_fresh(module: str, home: Path, **env: str) -> dict[str, object]:
    """Import `module` in a new interpreter whose Settings are rooted in `home` (an empty, embedded setup)."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module, classify=CLASSIFY_TASK)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "FURIWAKE_HOME": str(home), "DATABASE_URL": f"sqlite:///{home / 'furiwake.db'}",
             "BROKER_URL": "filesystem://", "MODEL_DIR": str(home / "models"), **env},
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_the_trainer_registers_only_retrain_and_loads_no_tensorflow(tmp_path: Path) -> None:
    probe = _import_fresh("worker.trainer_app", tmp_path)
    assert probe["tasks"] == [RETRAIN_TASK]
    assert probe["loaded"] == []  # no TensorFlow, Keras, serving or training until a retrain runs


def test_the_classify_worker_registers_classify_sweep_noop_and_the_mail_tasks(tmp_path: Path) -> None:
    probe = _import_fresh("worker.classify_app", tmp_path, CLASSIFY_BATCH_SIZE="32", CLASSIFY_BATCH_WAIT_MS="50")
    assert probe["tasks"] == sorted([CLASSIFY_TASK, SWEEP_TASK, NOOP_TASK, SEND_MAIL_TASK, OUTBOX_SWEEP_TASK,
                                      DELIVER_WEBHOOK_TASK, WEBHOOK_SWEEP_TASK, ASSIGN_TASK])
    assert RETRAIN_TASK not in probe["tasks"]
    assert {"tensorflow", "serving"} <= set(probe["loaded"])  # imported before the fork, on purpose
    assert "training" not in probe["loaded"]
    assert (probe["flush_every"], probe["flush_interval"]) == (32, 0.05)  # celery-batches sized from Settings
    assert probe["broker_url"] == "filesystem://" and probe["ignore_result"] is True


def test_beat_registers_no_task_and_loads_no_tensorflow(tmp_path: Path) -> None:
    probe = _import_fresh("worker.beat", tmp_path)
    assert probe["tasks"] == [] and probe["loaded"] == []
