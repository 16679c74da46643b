"""`furiwake run`'s choice of model before it starts anything (cli/supervisor.model_to_serve): the database's
champion is fetched into an empty MODEL_DIR instead of training a new one; a model is trained only when neither the
database nor MODEL_DIR has one that can be served.

Two "machines" are two MODEL_DIRs over one real database (SQLite and PostgreSQL); artifacts are stubs (no
TensorFlow), as in tests/core/test_model_store.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from cli.supervisor import model_to_serve
from core import model_store, registry
from core.artifacts import current_version, set_current
from core.config import Settings
from core.db import make_engine, make_session_factory
from tests.support.backends import both_backends
from tests.support.registry import fake_version, in_unit_of_work

PNG = b"\x89PNG\r\n\x1a\n" + b"0" * 32


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def machine(make_settings: Callable[..., Settings], database_url: str, tmp_path: Path) -> Callable[[str], Settings]:
    """The settings of one machine over the shared database: its own MODEL_DIR, nothing in it yet."""

    def build(name: str) -> Settings:
        return make_settings(database_url=database_url, model_dir=tmp_path / name / "models")

    return build


def _champion_trained_on(settings: Settings, sessions: sessionmaker[Session], version: str) -> None:
    """What `make run` did on the first machine: trained a version there, made it current, registered and stored it."""
    fake_version(settings.model_dir, version)
    (settings.model_dir / version / "curves.png").write_bytes(PNG)
    set_current(settings.model_dir, version)
    assert in_unit_of_work(sessions, registry.sync, settings.model_dir) == version


def _registered_versions(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        return [row.version for row in registry.versions(session)]


@both_backends
def test_a_second_machine_fetches_the_databases_champion_instead_of_training(sessions, machine) -> None:
    first, second = machine("first"), machine("second")
    _champion_trained_on(first, sessions, "v1")

    assert model_to_serve(second) == "v1"  # not None: `run` trains nothing

    assert current_version(second.model_dir) == "v1"
    assert model_store.local_files(second.model_dir / "v1").keys() == {"meta.json", "model.keras", "curves.png"}
    fetched, trained = (settings.model_dir / "v1" / "model.keras" for settings in (second, first))
    assert fetched.read_bytes() == trained.read_bytes()
    assert _registered_versions(sessions) == ["v1"]  # no new version registered either
    with sessions() as session:
        assert registry.champion(session).version == "v1"  # type: ignore[union-attr]


@both_backends
def test_with_no_model_in_the_database_nor_in_model_dir_one_is_trained(sessions, machine) -> None:
    empty = machine("empty")
    assert model_to_serve(empty) is None  # `run` trains the bundled model
    assert current_version(empty.model_dir) is None and _registered_versions(sessions) == []


@both_backends
def test_a_champion_whose_files_are_nowhere_is_no_model_to_serve(sessions, machine) -> None:
    """Registered on a machine that never uploaded it (its files since lost): nothing here can serve it."""
    first = machine("first")
    _champion_trained_on(first, sessions, "v1")
    in_unit_of_work(sessions, model_store.remove, "v1")
    assert model_to_serve(machine("second")) is None


@both_backends
def test_a_model_trained_here_before_the_registry_knew_it_is_served_and_uploaded(sessions, machine) -> None:
    """MODEL_DIR/CURRENT from an earlier `furiwake train`, the registry empty: no training, the version is adopted
    as the champion and its files stored for the other machines."""
    here = machine("here")
    set_current(here.model_dir, fake_version(here.model_dir, "v0"))
    assert model_to_serve(here) == "v0"
    with sessions() as session:
        assert registry.champion(session).version == "v0"  # type: ignore[union-attr]
        assert model_store.is_servable(model_store.manifest(session, "v0"))


@both_backends
def test_a_current_model_the_registry_cannot_record_is_still_served(sessions, machine) -> None:
    """A hand-written meta.json: the workers serve it from this disk, so `run` must not train over it."""
    here = machine("here")
    version = fake_version(here.model_dir, "handmade")
    (here.model_dir / version / "meta.json").write_text(json.dumps({"version": version}), encoding="utf-8")
    set_current(here.model_dir, version)
    assert model_to_serve(here) == "handmade"
    assert _registered_versions(sessions) == []
