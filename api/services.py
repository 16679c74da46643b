"""The per-process objects the views share, and the per-request database session (flaskr's db.py, for SQLAlchemy).

Everything is built from Settings in create_app, never at import time, so tests can build as many apps as they like.
"""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery
from flask import Flask, current_app, g
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.config import Settings
from core.db import make_engine, make_session_factory
from core.messaging import make_celery

EXTENSION = "furiwake"


@dataclass(frozen=True)
class Services:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    celery: Celery


def init_app(app: Flask, settings: Settings) -> Services:
    """Build the engine (lazy: no connection yet) and the Celery app (sends only) once per Flask app."""
    engine = make_engine(settings.database_url)
    services = Services(settings, engine, make_session_factory(engine), make_celery(settings))
    app.extensions[EXTENSION] = services
    app.teardown_appcontext(close_session)
    return services


def current_services() -> Services:
    return current_app.extensions[EXTENSION]


def get_session() -> Session:
    """The request's session, opened on first use; read-only views use it, writes go through core.tickets."""
    if "db_session" not in g:
        g.db_session = current_services().session_factory()
    return g.db_session


def close_session(_error: BaseException | None = None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()
