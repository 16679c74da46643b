"""The real-process helpers of the end-to-end tests (gunicorn, a Celery worker) serve the browser tests too."""

from tests.e2e.conftest import processes  # noqa: F401 - a fixture, used by name
