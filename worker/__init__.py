"""The Celery worker: holds a loaded model per process and writes routes back to the database."""
