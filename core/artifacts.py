"""Model artifacts on disk: one directory per version under MODEL_DIR, and a CURRENT file naming the one in use.

This module owns meta.json: `read_meta` and `write_meta` are its only reader and writer, and `ArtifactMeta` is
what the rest of the code sees, so a key renamed here is renamed everywhere and a damaged file is reported by
name instead of failing later with a KeyError.

Reading these needs no TensorFlow, so the API and the CLI can list versions cheaply.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

CURRENT_FILE = "CURRENT"
META_FILE = "meta.json"


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
    if not (version_dir(model_dir, version) / META_FILE).is_file():
        raise NoModelError(f"{version_dir(model_dir, version)} holds no model (no meta.json)")
    tmp = model_dir / f".{CURRENT_FILE}.{os.getpid()}"
    tmp.write_text(version + "\n", encoding="utf-8")
    tmp.replace(model_dir / CURRENT_FILE)


def resolve(model: Path | None, model_dir: Path) -> Path:
    """A version directory: the one given (a version dir, or a MODEL_DIR with a CURRENT file), else the current one."""
    if model is not None:
        if (model / META_FILE).is_file():
            return model
        if (model / CURRENT_FILE).is_file():
            return resolve(None, model)
        raise NoModelError(f"{model} is not a model version directory (no meta.json) nor a model directory")
    version = current_version(model_dir)
    if version is None:
        raise NoModelError(f"no trained model in {model_dir}; run `furiwake train` (or `make train`) first")
    path = version_dir(model_dir, version)
    if not (path / META_FILE).is_file():
        raise NoModelError(f"{model_dir}/CURRENT names {version!r}, but {path} holds no model (no {META_FILE}); "
                           "run `furiwake train`, or `furiwake model rollback` to a version that exists")
    return path


# --- meta.json: the one reader and writer ---------------------------------------------------------------------


class MalformedMetaError(ValueError):
    """A meta.json that is not the JSON object train() writes; the message names the file and what is wrong."""


@dataclass(frozen=True)
class ModelSettings:
    """The network's configuration as trained (training.model.ModelConfig, kept here without TensorFlow).

    Every field is optional: a version written by hand or by an older trainer may carry only some of them, and what
    is missing stays missing when the file is written back (never filled with today's defaults).
    """

    sequence_length: int | None = None
    max_tokens: int | None = None
    embedding_dim: int | None = None
    lstm_units: int | None = None
    bidirectional: bool | None = None
    wide: bool | None = None
    wide_max_tokens: int | None = None
    wide_units: int | None = None
    dropout: float | None = None
    members: int | None = None  # None: a version trained before members, which is one network
    linear: bool | None = None  # serving.linear: None or False, the network alone
    extra: dict[str, Any] = field(default_factory=dict)  # keys a newer trainer wrote, kept on a round trip

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> ModelSettings:
        """From ModelConfig.to_dict(): a field added there lands in `extra` instead of failing here."""
        return _parts(cls, config, "model")


@dataclass(frozen=True)
class TrainCounts:
    """Rows seen by train(): all usable rows, the split, per-route training rows, and rows dropped while loading."""

    rows: int | None = None
    train: int | None = None
    validation: int | None = None
    train_by_route: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Metrics:
    """Scores of the version; `validation` is training.metrics.score() on the held-out split (n, accuracy,
    macro_f1, per_route, confusion, ece), kept as that function's mapping."""

    validation: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ArtifactMeta:
    """What meta.json says about one trained version. Only `version` is required: the serving and registry code
    check what they need (labels, sequence length, creation time) where they need it, with a clear message."""

    version: str
    created_at: datetime | None = None
    labels: tuple[str, ...] = ()
    data_hash: str | None = None
    counts: TrainCounts = field(default_factory=TrainCounts)
    balance: dict[str, Any] = field(default_factory=dict)
    model: ModelSettings = field(default_factory=ModelSettings)
    options: dict[str, Any] = field(default_factory=dict)
    metrics: Metrics = field(default_factory=Metrics)
    thresholds: dict[str, float] = field(default_factory=dict)
    history: dict[str, list[float]] = field(default_factory=dict)
    epochs_run: int | None = None
    train_seconds: float | None = None
    trigger: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON object as the trainer has always written it (keys absent stay absent, unknown keys kept)."""
        out: dict[str, Any] = {"version": self.version}
        if self.created_at is not None:
            out["created_at"] = self.created_at.isoformat()
        if self.labels:
            out["labels"] = list(self.labels)
        if self.data_hash is not None:
            out["data_hash"] = self.data_hash
        counts = _compact(self.counts)
        if counts:
            out["counts"] = counts
        if self.balance:
            out["balance"] = dict(self.balance)
        model = _compact(self.model)
        if model:
            out["model"] = model
        if self.options:
            out["options"] = dict(self.options)
        metrics = _compact(self.metrics)
        if metrics:
            out["metrics"] = metrics
        if self.thresholds or self.labels:
            out["thresholds"] = dict(self.thresholds)
        if self.history:
            out["history"] = {key: list(values) for key, values in self.history.items()}
        for key in ("epochs_run", "train_seconds", "trigger"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, data: Any) -> ArtifactMeta:
        """Build from a parsed meta.json; raises ValueError (without the file name: read_meta adds it)."""
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, found {type(data).__name__}")
        data = dict(data)
        version = data.pop("version", None)
        if not isinstance(version, str) or not version:
            raise ValueError("no 'version' string")
        created = data.pop("created_at", None)
        return cls(
            version=version,
            created_at=datetime.fromisoformat(_typed(created, str, "created_at")) if created is not None else None,
            labels=tuple(_typed(data.pop("labels", []), list, "labels")),
            data_hash=data.pop("data_hash", None),
            counts=_parts(TrainCounts, data.pop("counts", {}), "counts"),
            balance=_typed(data.pop("balance", {}), dict, "balance"),
            model=_parts(ModelSettings, data.pop("model", {}), "model"),
            options=_typed(data.pop("options", {}), dict, "options"),
            metrics=_parts(Metrics, data.pop("metrics", {}), "metrics"),
            thresholds={str(k): float(v) for k, v in _typed(data.pop("thresholds", {}), dict, "thresholds").items()},
            history=_typed(data.pop("history", {}), dict, "history"),
            epochs_run=data.pop("epochs_run", None),
            train_seconds=data.pop("train_seconds", None),
            trigger=data.pop("trigger", None),
            extra=data,
        )


_Part = TypeVar("_Part", ModelSettings, TrainCounts, Metrics)


def _typed(value: Any, kind: type, key: str) -> Any:
    if not isinstance(value, kind):
        raise ValueError(f"{key!r} should be a JSON {'object' if kind is dict else kind.__name__}, "
                         f"found {type(value).__name__}")
    return value


def _parts(cls: type[_Part], value: Any, key: str) -> _Part:
    """A nested object: its known keys become fields, the others go to `extra`."""
    data = dict(_typed(value, dict, key))
    known = {f.name for f in fields(cls)} - {"extra"}
    return cls(**{name: data.pop(name) for name in list(data) if name in known}, extra=data)


def _compact(part: ModelSettings | TrainCounts | Metrics) -> dict[str, Any]:
    """A nested object as JSON: {} when it was absent, else its fields without the ones that were absent (None)."""
    if part == type(part)():
        return {}
    out = {f.name: getattr(part, f.name) for f in fields(part) if f.name != "extra"}
    return {**{key: value for key, value in out.items() if value is not None}, **part.extra}


def meta_path(version_path: Path) -> Path:
    """meta.json of a version directory (a path to the file itself is taken as is)."""
    return version_path if version_path.name == META_FILE else version_path / META_FILE


def read_meta(version_path: Path) -> ArtifactMeta:
    """The metadata of one version: NoModelError when the file is missing, MalformedMetaError when it cannot be
    read as train() writes it; both name the file."""
    path = meta_path(version_path)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NoModelError(f"{path} is missing: {path.parent} holds no trained model") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MalformedMetaError(f"{path} cannot be read: {exc}") from exc
    try:
        return ArtifactMeta.from_json(json.loads(raw))
    except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
        raise MalformedMetaError(f"{path} is not a valid model metadata file: {exc}") from exc


def write_meta(version_path: Path, meta: ArtifactMeta) -> Path:
    """Write meta.json atomically (a temporary file renamed over it): a reader never sees half a file."""
    path = meta_path(version_path)
    tmp = path.with_name(f".{META_FILE}.{os.getpid()}")
    tmp.write_text(json.dumps(meta.to_json(), ensure_ascii=False, indent=2), encoding="utf-8")
    tmp.replace(path)
    return path
