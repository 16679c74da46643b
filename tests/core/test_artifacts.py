"""meta.json has one reader and one writer (core.artifacts): typed, tolerant of older and partial files, and clear
about the file when it is missing or damaged."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from core.artifacts import (
    ArtifactMeta,
    MalformedMetaError,
    Metrics,
    ModelSettings,
    NoModelError,
    TrainCounts,
    read_meta,
    write_meta,
)


def test_written_meta_reads_back_equal_and_keeps_the_trainers_keys(tmp_path):
    meta = ArtifactMeta(
        version="20260101-000000-abcdef", created_at=datetime(2026, 1, 1, tzinfo=UTC),
        labels=("Account", "Payment", "Other"), data_hash="abcdef0123",
        counts=TrainCounts(rows=10, train=8, validation=2, train_by_route={"Account": 3}, dropped={}),
        balance={"mode": "weights"}, model=ModelSettings.from_dict({"sequence_length": 64, "max_tokens": 15000,
                                                                     "wide": False, "new_knob": 3}),
        options={"epochs": 2}, metrics=Metrics(validation={"accuracy": 0.9, "macro_f1": 0.8, "n": 2}),
        thresholds={"Account": 0.5}, history={"loss": [1.0, 0.5]}, epochs_run=2, train_seconds=1.5, trigger="cli",
    )
    write_meta(tmp_path, meta)
    assert read_meta(tmp_path) == meta
    raw = json.loads((tmp_path / "meta.json").read_text(encoding="utf-8"))
    assert raw["model"] == {"sequence_length": 64, "max_tokens": 15000, "wide": False, "new_knob": 3}
    assert raw["counts"]["dropped"] == {} and raw["metrics"]["validation"]["n"] == 2
    assert raw["created_at"] == "2026-01-01T00:00:00+00:00"
    assert [p.name for p in tmp_path.iterdir()] == ["meta.json"]  # the temporary file was renamed, not left


def test_a_partial_hand_written_meta_loads_and_round_trips_its_unknown_keys(tmp_path):
    (tmp_path / "meta.json").write_text(json.dumps(
        {"version": "v1", "labels": ["Account", "Payment", "Other"], "thresholds": {}, "model": {"sequence_length": 24},
         "from_the_future": {"x": 1}}), encoding="utf-8")
    meta = read_meta(tmp_path)
    assert meta.version == "v1" and meta.model.sequence_length == 24 and meta.created_at is None
    assert meta.counts.rows is None and meta.metrics.validation == {}
    assert meta.to_json()["from_the_future"] == {"x": 1} and "counts" not in meta.to_json()


def test_missing_meta_names_the_file(tmp_path):
    with pytest.raises(NoModelError, match=str(tmp_path / "meta.json")):
        read_meta(tmp_path)


@pytest.mark.parametrize(("content", "why"), [
    ("{not json", "valid model metadata"),
    ("[1, 2]", "JSON object"),
    ('{"labels": []}', "version"),
    ('{"version": "v1", "counts": [1]}', "counts"),
    ('{"version": "v1", "created_at": "yesterday"}', "valid model metadata"),
])
def test_malformed_meta_is_a_value_error_naming_the_file(tmp_path, content, why):
    (tmp_path / "meta.json").write_text(content, encoding="utf-8")
    with pytest.raises(MalformedMetaError, match=why) as caught:
        read_meta(tmp_path)
    assert isinstance(caught.value, ValueError) and str(tmp_path / "meta.json") in str(caught.value)
