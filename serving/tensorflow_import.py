"""Importing TensorFlow the way every process here needs it: after the system's SQLite, and without its start-up
lines unless the operator asked for them (TF_CPP_MIN_LOG_LEVEL=0; unset means 2, as cli/main.py and the worker
entry modules set it).

Why a function: TensorFlow 2.21 logs some start-up lines (the oneDNN notice, on CPUs it optimises for) through
absl *before* absl's logging is initialised, straight to file descriptor 2 and regardless of TF_CPP_MIN_LOG_LEVEL.
The only way to keep them out of a CLI's or a worker's output is to point descriptor 2 elsewhere while the library
loads. An import that fails still raises, after descriptor 2 is back, so its error is seen; a line another thread
writes to stderr during those two or three seconds is lost, which is why this runs before any worker thread exists
(the package's first import).
"""

from __future__ import annotations

import os
import sqlite3  # noqa: F401 - the system's SQLite first: TensorFlow bundles one without FTS5 (ticket search)
import sys


def import_tensorflow() -> None:
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # quiet unless the operator chose a level (as ever here)
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0").strip() in ("", "0"):
        import tensorflow  # noqa: F401 - the operator asked for every line
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
