"""Model files in the database, MODEL_DIR as a cache (core/model_store.py, core/registry.py), on real SQLite and
PostgreSQL. Two "machines" are two MODEL_DIRs over one database; artifacts are stubs (no TensorFlow)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, update

from core import model_store, registry
from core.artifacts import current_version, read_meta, set_current
from core.db import make_engine, make_session_factory
from core.orm import ModelArtifact, ModelVersion
from tests.support.registry import fake_version, in_unit_of_work

both = pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])


@pytest.fixture
def sessions(request, backend):
    url = request.getfixturevalue(f"{backend}_url")
    engine = make_engine(url)
    yield make_session_factory(engine)
    engine.dispose()


def files_of(path: Path) -> dict[str, bytes]:
    return {name: file.read_bytes() for name, file in model_store.local_files(path).items()}


def trained(model_dir: Path, version: str) -> str:
    """A version as train() leaves it, with a plot beside the model (binary, in a sub-directory too)."""
    fake_version(model_dir, version)
    (model_dir / version / "model.keras").write_bytes(bytes(range(256)) * 64 + version.encode())
    (model_dir / version / "curves.png").write_bytes(b"\x89PNG\r\n" + version.encode())
    (model_dir / version / "extra").mkdir()
    (model_dir / version / "extra" / "vocab.txt").write_text("ログイン\n請求\n", encoding="utf-8")
    return version


def registered(sessions, model_dir: Path, version: str) -> str:
    in_unit_of_work(sessions, registry.register_candidate, read_meta(model_dir / trained(model_dir, version)), "cli",
                    {"input_hash": version}, model_dir / version)
    return version


@both
def test_register_stores_every_file_and_fetch_rebuilds_the_directory_elsewhere(sessions, tmp_path):
    here, there = tmp_path / "a" / "models", tmp_path / "b" / "models"
    registered(sessions, here, "v1")
    with sessions() as session:
        stored = model_store.manifest(session, "v1")
    assert sorted(stored) == ["curves.png", "extra/vocab.txt", "meta.json", "model.keras"]
    assert model_store.was_stored(here / "v1")  # written once the registration committed
    with sessions() as session:
        path = model_store.fetch(session, "v1", there)
    assert path == there / "v1" and files_of(path) == files_of(here / "v1")
    assert model_store.verify(path, stored) and model_store.was_stored(path)
    assert not [p for p in there.iterdir() if p.name.startswith(".fetch")]  # the staging directory is gone


@both
def test_a_corrupt_or_incomplete_cache_is_fetched_again(sessions, tmp_path):
    here, there = tmp_path / "a", tmp_path / "b"
    registered(sessions, here, "v1")
    with sessions() as session:
        model_store.fetch(session, "v1", there)
    good = files_of(there / "v1")
    damaged = bytearray((there / "v1" / "model.keras").read_bytes())
    damaged[100] ^= 0xFF  # same size, other bytes: only the hash tells
    (there / "v1" / "model.keras").write_bytes(bytes(damaged))
    with sessions() as session:
        stored = model_store.manifest(session, "v1")
        assert not model_store.verify(there / "v1", stored)
        model_store.fetch(session, "v1", there)
    assert files_of(there / "v1") == good
    (there / "v1" / "meta.json").unlink()
    with sessions() as session:
        model_store.fetch(session, "v1", there)
    assert files_of(there / "v1") == good


@both
def test_rows_that_do_not_match_their_hash_are_refused_and_leave_the_cache_alone(sessions, tmp_path):
    here, there = tmp_path / "a", tmp_path / "b"
    registered(sessions, here, "v1")
    with sessions.begin() as session:
        session.execute(update(ModelArtifact).where(ModelArtifact.name == "model.keras").values(content=b"tampered"))
    with sessions() as session, pytest.raises(model_store.ArtifactError, match="model.keras of model v1"):
        model_store.fetch(session, "v1", there)
    assert not (there / "v1").exists() and not [p for p in there.iterdir() if p.name != ".lock"]


@both
def test_a_stored_file_is_never_replaced_by_a_damaged_copy(sessions, tmp_path):
    """A promotion stores from this machine's directory (adding evaluation.png, written after the registration);
    a copy that changed since must not overwrite the stored original, nor be taken for a copy of it."""
    here = tmp_path / "models"
    set_current(here, trained(here, "v0"))
    in_unit_of_work(sessions, registry.sync, here)  # adopted: stored with it
    registered(sessions, here, "v1")
    original = (here / "v1" / "model.keras").read_bytes()
    (here / "v1" / "evaluation.png").write_bytes(b"\x89PNG evaluation")
    (here / "v1" / "model.keras").write_bytes(b"damaged")
    (here / "v1" / model_store.MANIFEST).unlink()
    in_unit_of_work(sessions, registry.promote, here, "v1", "better", expected_champion="v0")
    with sessions() as session:
        assert "evaluation.png" in model_store.manifest(session, "v1")
        content = session.scalar(select(ModelArtifact.content).where(ModelArtifact.version == "v1",
                                                                     ModelArtifact.name == "model.keras"))
    assert content == original
    assert not model_store.was_stored(here / "v1")


@both
def test_no_manifest_when_the_registration_is_rolled_back(sessions, tmp_path):
    here = tmp_path / "models"
    trained(here, "v1")
    with pytest.raises(RuntimeError), sessions.begin() as session:
        registry.register_candidate(session, read_meta(here / "v1"), "cli", {}, here / "v1")
        raise RuntimeError("the unit of work failed after the registration")
    with sessions() as session:
        assert model_store.stored_versions(session) == set()
    assert not model_store.was_stored(here / "v1")  # so no worker evicts it as pruned


@both
def test_a_champion_from_another_machine_reaches_an_empty_model_dir(sessions, tmp_path):
    """Machine A trains and promotes; on machine B (empty MODEL_DIR) sync fetches the champion and CURRENT names
    it; a rollback made on B to a version whose files B never had works the same way, and A follows."""
    a, b = tmp_path / "a", tmp_path / "b"
    set_current(a, trained(a, "v0"))
    in_unit_of_work(sessions, registry.sync, a)
    registered(sessions, a, "v1")
    in_unit_of_work(sessions, registry.promote, a, "v1", "better", expected_champion="v0")
    assert in_unit_of_work(sessions, registry.sync, b) == "v1"
    assert current_version(b) == "v1" and files_of(b / "v1") == files_of(a / "v1")
    assert not (b / "v0").exists()
    assert in_unit_of_work(sessions, registry.rollback, b) == ("v1", "v0")
    assert current_version(b) == "v0" and files_of(b / "v0") == files_of(a / "v0")
    assert current_version(a) == "v1"  # A's CURRENT is stale until something there syncs: the database wins
    assert in_unit_of_work(sessions, registry.sync, a) == "v0" and current_version(a) == "v0"


@both
def test_a_pruned_version_leaves_every_cache_but_never_the_one_served(sessions, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    set_current(a, trained(a, "v0"))
    in_unit_of_work(sessions, registry.sync, a)
    for number in (1, 2):
        registered(sessions, a, f"v{number}")
        in_unit_of_work(sessions, registry.promote, a, f"v{number}", "better", expected_champion=f"v{number - 1}")
    with sessions() as session:
        for version in ("v0", "v1", "v2"):
            model_store.fetch(session, version, b)
    (b / "stray").mkdir()  # not stored from here: never evicted
    trained(b, "local-only")
    assert in_unit_of_work(sessions, registry.prune, a, keep=0) == ["v1", "v0"]
    assert sorted(p.name for p in a.iterdir() if not p.name.startswith(".")) == ["CURRENT", "v2"]
    with sessions() as session:
        assert model_store.stored_versions(session) == {"v2"}
        # B still serves v1 (a worker that has not switched yet): spared; v0 goes.
        assert model_store.evict(session, b, ["v2", "v1"]) == ["v0"]
        assert model_store.evict(session, b, ["v2"]) == ["v1"]
        assert model_store.evict(session, b, ["v2"]) == []
    assert sorted(p.name for p in b.iterdir() if not p.name.startswith(".")) == ["local-only", "stray", "v2"]
    with pytest.raises(registry.RegistryError, match="no model files any more"):
        in_unit_of_work(sessions, registry.rollback, b, to="v1")


@both
def test_versions_registered_before_the_store_are_uploaded_once(sessions, tmp_path):
    """An install upgraded to the artifact table: its registered versions are only on the trainer's disk until
    publish_local uploads them; one pruned since (its manifest says it was stored) is not uploaded again."""
    a, b = tmp_path / "a", tmp_path / "b"
    set_current(a, trained(a, "v0"))
    in_unit_of_work(sessions, registry.sync, a)
    registered(sessions, a, "v1")
    with sessions.begin() as session:  # as before the migration: rows, no files
        session.execute(ModelArtifact.__table__.delete())
    for version in ("v0", "v1"):
        (a / version / model_store.MANIFEST).unlink()
    with sessions() as session, pytest.raises(registry.NoModelError, match="neither stored in the database"):
        model_store.fetch(session, "v0", b)
    assert in_unit_of_work(sessions, registry.publish_local, a) == ["v1", "v0"]
    assert in_unit_of_work(sessions, registry.publish_local, a) == []
    assert model_store.was_stored(a / "v0")
    with sessions() as session:
        assert files_of(model_store.fetch(session, "v0", b)) == files_of(a / "v0")
        model_store.remove(session, "v1")  # pruned elsewhere; A's copy not evicted yet
        session.commit()
    assert in_unit_of_work(sessions, registry.publish_local, a) == []
    with sessions() as session:
        assert model_store.stored_versions(session) == {"v0"}


@both
def test_deleting_a_version_row_deletes_its_files(sessions, tmp_path):
    registered(sessions, tmp_path, "v1")
    with sessions.begin() as session:
        session.delete(session.get(ModelVersion, "v1"))
    with sessions() as session:
        assert model_store.stored_versions(session) == set()
