"""Model versions as train() leaves them on disk, for tests of the registry that need no TensorFlow."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from core.orm import utcnow

T = TypeVar("T")


def fake_version(model_dir: Path, version: str, macro_f1: float = 0.8) -> str:
    """A version directory as train() leaves it, minus the real model (the registry only checks the files)."""
    path = model_dir / version
    path.mkdir(parents=True)
    (path / "model.keras").write_bytes(b"stub")
    meta = {"version": version, "created_at": utcnow().isoformat(), "data_hash": "abc",
            "counts": {"rows": 100, "validation": 20, "train_by_route": {"Account": 30, "Payment": 30, "Other": 20}},
            "metrics": {"validation": {"accuracy": macro_f1, "macro_f1": macro_f1, "n": 20}},
            "categories": ["Payment - Refund", "Account - Login", "Spam"]}
    (path / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    return version


def in_unit_of_work(sessions: sessionmaker[Session], work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call a registry function (which takes a Session and never commits) as an entry point does: in one unit of
    work, committed when it returns, rolled back if it raises."""
    with sessions.begin() as session:
        return work(session, *args, **kwargs)
