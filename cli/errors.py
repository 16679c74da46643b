"""The one kind of failure the CLI reports in one line (exit code 1), and how a database failure is worded."""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from core.config import Settings


class CLIError(Exception):
    """An error to report in one line on stderr (exit code 1)."""


def database_label(settings: Settings) -> str:
    """The configured database, fit to print: a file path for SQLite, the URL without its password otherwise."""
    try:
        url = make_url(settings.database_url)
    except ArgumentError:
        return "DATABASE_URL (not a database URL)"
    if url.get_backend_name() == "sqlite":
        return url.database or ":memory:"
    return url.render_as_string(hide_password=True)


def describe_database_error(exc: SQLAlchemyError, settings: Settings) -> str:
    """One line naming the database (never its password) and what to do.

    The driver's own message is kept to its first line: psycopg's carry the host and port, SQLite's the missing
    table; neither carries the password."""
    where = database_label(settings)
    first_line = str(exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc).strip()
    first_line = first_line.splitlines()[0] if first_line else type(exc).__name__
    password = make_url(settings.database_url).password if "://" in settings.database_url else None
    if password:
        first_line = first_line.replace(str(password), "***")
    if "no such table" in first_line or ("relation" in first_line and "does not exist" in first_line):
        return f"the database at {where} has no furiwake tables ({first_line}): run `furiwake migrate`"
    return f"database error on {where} ({type(exc).__name__}: {first_line})"
