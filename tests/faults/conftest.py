"""Fault tests: each posts tickets over HTTP to real processes while it breaks one component, heals it, and checks
the database (tests/support/load.py). They carry the `faults` mark, and `e2e` through the `processes` fixture, so
`make test` runs them in its serial phase."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/faults/" in str(item.path):
            item.add_marker(pytest.mark.faults)
