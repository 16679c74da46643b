"""Celery beat: `celery -A worker.beat beat`. It only sends tasks by name (the sweeps, the nightly retrain), so it
registers no task and imports no TensorFlow. docker-compose's worker health check uses it for the same reason."""

from __future__ import annotations

from core.assignment import add_assignment_sweep
from core.config import Settings
from core.logs import install_celery_logging
from core.mail_queue import add_outbox_sweep
from core.runtime import Runtime
from core.webhook_queue import add_webhook_sweep

settings = Settings.from_env()
install_celery_logging(settings)
app = Runtime.build(settings).celery
add_outbox_sweep(app, settings)  # the outbox sweep, on the `mail` queue, when SMTP_URL is set
add_webhook_sweep(app)  # the webhook sweep, on the `mail` queue
add_assignment_sweep(app, settings)  # the assignment pass (core.assignment), unless ASSIGNMENT=off
