"""The WSGI entry point: `gunicorn api.wsgi:app`. Settings come from the environment.

Logging is configured here and not in create_app, which tests build many times in one process: the gunicorn worker
that imports this module is the one process that serves the API. gunicorn's error log then goes through the same
handler (its own handler removed, so no line is printed twice); its access log (`--access-logfile`) is left alone.
"""

from api import create_app
from core.config import Settings
from core.logs import adopt_library_loggers, configure_logging

settings = Settings.from_env()
configure_logging(settings)
adopt_library_loggers(["gunicorn.error"])
app = create_app(settings)
