"""The Runtime a CLI command works in: the configured database, which must exist (only `furiwake migrate` and
`furiwake run` create one)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from cli.errors import CLIError
from core.config import Settings
from core.runtime import Runtime


def missing_sqlite_file(settings: Settings) -> Path | None:
    """The SQLite file DATABASE_URL names when it does not exist (connecting would silently create it empty)."""
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    path = Path(url.database).resolve()
    return None if path.is_file() else path


@contextmanager
def existing_database(settings: Settings) -> Iterator[Runtime]:
    """One Runtime on the configured database for the command (engine disposed afterwards); refuses a database
    that is not there rather than create an empty one."""
    missing = missing_sqlite_file(settings)
    if missing is not None:
        raise CLIError(f"no database at {missing} (FURIWAKE_HOME={settings.home}): run `furiwake migrate`, or set "
                       "FURIWAKE_HOME / DATABASE_URL to the installation's")
    runtime = Runtime.build(settings)
    try:
        yield runtime
    finally:
        runtime.dispose()
