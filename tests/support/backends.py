"""The two database backends, as parameters that carry their marks.

A fixture that picks its database with request.getfixturevalue(f"{backend}_url") hides PostgreSQL from pytest's
view of the fixtures a test uses, so the mark cannot be derived: the parameter carries it instead.
"""

from __future__ import annotations

import pytest

SQLITE = pytest.param("sqlite", id="sqlite")
POSTGRES = pytest.param("postgres", marks=pytest.mark.postgres, id="postgres")
BACKENDS = [SQLITE, POSTGRES]

# For API tests: runs the test on SQLite and on PostgreSQL through tests/api/conftest.py's `database_url`.
both_backends = pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
