"""Celery beat's app: `celery -A worker.beat beat`. Only sends tasks by name, so it imports no TensorFlow."""

from __future__ import annotations

from core.config import Settings
from core.messaging import make_celery

settings = Settings.from_env()
app = make_celery(settings)
