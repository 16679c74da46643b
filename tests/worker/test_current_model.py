"""worker.current_model: a worker with no usable model says what is wrong in one line, and keeps no ticket from
waiting for a good one (tests/faults/test_model_missing.py runs the same against a real worker)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from core.artifacts import NoModelError, set_current
from worker.current_model import CurrentModel

META = {"version": "v-broken", "labels": ["Account", "Other", "Payment"], "model": {"sequence_length": 120}}


def _version(model_dir: Path, meta: str, model_bytes: bytes | None) -> None:
    version = model_dir / "v-broken"
    version.mkdir(parents=True)
    (version / "meta.json").write_text(meta, encoding="utf-8")
    if model_bytes is not None:
        (version / "model.keras").write_bytes(model_bytes)
    set_current(model_dir, "v-broken")


def test_an_empty_model_dir_names_the_directory_and_furiwake_train(tmp_path: Path) -> None:
    with pytest.raises(NoModelError, match=rf"no trained model in {tmp_path}; run `furiwake train`"):
        CurrentModel(tmp_path).predictor()


@pytest.mark.parametrize(("meta", "model_bytes", "what"), [
    ('{"version": "v-broken", "labels": [', None, r"v-broken/meta\.json is not a valid model metadata file"),
    (json.dumps(META), b"\x00not a zip\xff" * 10, r"v-broken/model\.keras is not a Keras archive"),
    (json.dumps(META), None, r"v-broken/model\.keras is missing"),
])  # fmt: skip
def test_a_damaged_version_is_no_model_naming_the_file_and_the_fix(tmp_path: Path, meta: str,
                                                                   model_bytes: bytes | None, what: str) -> None:
    _version(tmp_path, meta, model_bytes)
    model = CurrentModel(tmp_path)
    for _ in range(2):  # the second call repeats the message without loading again (RELOAD_RETRY_SECONDS)
        with pytest.raises(NoModelError) as raised:
            model.predictor()
        message = str(raised.value)
        assert f"the model v-broken in {tmp_path} cannot be loaded" in message
        assert "furiwake train" in message and "furiwake model rollback" in message
        assert "\n" not in message
        assert re.search(what, message), message
