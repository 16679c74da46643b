"""Markers derived from the fixtures a test uses, so that a `-m` selection tells the truth.

A test is marked for what it needs, read from its fixture closure (pytest's item.fixturenames: the fixtures it
names and every fixture those depend on). A fixture fetched with request.getfixturevalue is not in that closure:
such a test carries the mark on its parameter (tests/support/backends.py), and the service fixtures refuse to run
in a test that lacks their mark (`require_mark`), so a hidden dependency fails loudly instead of lying.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

# mark -> the fixtures that imply it (their dependants inherit it through the closure)
DERIVED: dict[str, frozenset[str]] = {
    "postgres": frozenset({"postgres_server", "empty_postgres_url", "postgres_url", "own_postgres"}),
    "redis": frozenset({"redis_url", "own_redis"}),  # the API app (make_app) and a worker on Redis depend on it
    "browser": frozenset({"browser"}),
    "e2e": frozenset({"processes"}),
    "slow": frozenset({"trained_model_dir", "processes"}),
}
# What a test needs beyond this checkout and a CPU: a test with none of these is `unit`.
NEEDS = ("postgres", "redis", "browser", "e2e", "slow")
UNIT = "unit"


def derived_marks(fixturenames: Iterable[str]) -> list[str]:
    """The marks a test gets from the fixtures it uses, in NEEDS order."""
    names = set(fixturenames)
    return [mark for mark in NEEDS if DERIVED[mark] & names]


def mark_item(item: pytest.Item) -> None:
    """Add the derived marks, then `unit` when the test needs nothing (hand marks and parameter marks count)."""
    for mark in derived_marks(getattr(item, "fixturenames", ())):
        if item.get_closest_marker(mark) is None:
            item.add_marker(mark)
    if not any(item.get_closest_marker(mark) for mark in NEEDS):
        item.add_marker(UNIT)


def require_mark(request: pytest.FixtureRequest, mark: str) -> None:
    """Fail a test that reached a service fixture without carrying its mark (request.getfixturevalue hid it)."""
    if request.node.get_closest_marker(mark) is None:
        pytest.fail(
            f"{request.node.nodeid} uses the {mark!r} fixture {request.fixturename!r} but is not marked {mark!r}: "
            f"it was fetched with request.getfixturevalue, so give its parameter marks=pytest.mark.{mark} "
            "(see tests/support/backends.py)",
            pytrace=False,
        )
