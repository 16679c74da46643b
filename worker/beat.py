"""Celery beat: `celery -A worker.beat beat`. It only sends tasks by name (the sweep, the nightly retrain), so it
registers no task and imports no TensorFlow. docker-compose's worker health check uses it for the same reason."""

from __future__ import annotations

from core.config import Settings
from core.logs import install_celery_logging
from core.runtime import Runtime

settings = Settings.from_env()
install_celery_logging(settings)
app = Runtime.build(settings).celery
