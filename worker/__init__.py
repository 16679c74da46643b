"""The Celery side: the classify worker (worker.classify_app), the trainer (worker.trainer_app) and beat
(worker.beat), their module-level tasks, routing a batch (worker.routing) and the retry policy (worker.retry)."""
