"""Who may call what. Only a seam for now: the agents' token arrives with a later issue."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

View = TypeVar("View", bound=Callable[..., object])


def agents_only(view: View) -> View:
    """Mark a view as the agents' (e.g. the ticket listing). Today it lets everyone through; the token check
    goes here, so the views already wearing this decorator need no change."""
    return view
