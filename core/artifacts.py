"""Model artifacts on disk: one directory per version under MODEL_DIR, and a CURRENT file naming the one in use.

Reading these needs no TensorFlow, so the API and the CLI can list versions cheaply.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

CURRENT_FILE = "CURRENT"


class NoModelError(LookupError):
    """No trained model where one is needed; the message says how to make one."""


def version_dir(model_dir: Path, version: str) -> Path:
    return model_dir / version


def current_version(model_dir: Path) -> str | None:
    try:
        version = (model_dir / CURRENT_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return version or None


def set_current(model_dir: Path, version: str) -> None:
    """Atomically point CURRENT at a version (write + rename, so readers never see half a name)."""
    if not (version_dir(model_dir, version) / "meta.json").is_file():
        raise NoModelError(f"{version_dir(model_dir, version)} holds no model (no meta.json)")
    tmp = model_dir / f".{CURRENT_FILE}.{os.getpid()}"
    tmp.write_text(version + "\n", encoding="utf-8")
    tmp.replace(model_dir / CURRENT_FILE)


def resolve(model: Path | None, model_dir: Path) -> Path:
    """A version directory: the one given (a version dir, or a MODEL_DIR with a CURRENT file), else the current one."""
    if model is not None:
        if (model / "meta.json").is_file():
            return model
        if (model / CURRENT_FILE).is_file():
            return resolve(None, model)
        raise NoModelError(f"{model} is not a model version directory (no meta.json) nor a model directory")
    version = current_version(model_dir)
    if version is None:
        raise NoModelError(f"no trained model in {model_dir}; run `furiwake train` (or `make train`) first")
    path = version_dir(model_dir, version)
    if not (path / "meta.json").is_file():
        raise NoModelError(f"{model_dir}/CURRENT names {version!r}, but {path} holds no model")
    return path


def read_meta(version_path: Path) -> dict[str, Any]:
    with (version_path / "meta.json").open(encoding="utf-8") as handle:
        meta: dict[str, Any] = json.load(handle)
    return meta
