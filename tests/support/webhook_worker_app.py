"""A Celery entry module for the tests' webhook worker: `celery -A tests.support.webhook_worker_app worker -Q mail`.

What worker.classify_app does for webhooks (Settings, logging, one Runtime, the configured app, the worker context,
worker.webhook_tasks registered), without TensorFlow or a model, and with a retry schedule in seconds
(WEBHOOK_TEST_RETRY_SECONDS) so a test sees a real retry go through the broker.
"""

from __future__ import annotations

import os

from core.config import Settings
from core.logs import install_celery_logging
from core.messaging import configure_celery
from core.outbox import RetryPolicy
from core.runtime import Runtime
from worker import classify_tasks, context, webhook_tasks

settings = Settings.from_env()
install_celery_logging(settings)
runtime = Runtime.build(settings)
app = configure_celery(classify_tasks.app, settings)
context.install(context.WorkerContext(runtime))
seconds = float(os.environ.get("WEBHOOK_TEST_RETRY_SECONDS", "1"))
webhook_tasks.POLICY = RetryPolicy(first=seconds, cap=seconds * 2, give_up_after=3600)
