"""The real `furiwake` console script in a subprocess: the same home from any directory, no empty database made by
mistake, and every failure one line on stderr (never a traceback, never a password)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

FURIWAKE = str(Path(sys.executable).with_name("furiwake"))


def furiwake(*args: str, cwd: Path, env: dict[str, str], stdin: str | None = None,
             devnull: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FURIWAKE, *args], cwd=cwd, env={"PATH": "/usr/bin:/bin", **env}, text=True,
                          input=stdin, stdin=subprocess.DEVNULL if devnull else None, capture_output=True,
                          timeout=120, check=False)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def elsewhere(tmp_path: Path) -> list[Path]:
    """Three unrelated working directories."""
    dirs = [tmp_path / name for name in ("a", "b", "c")]
    for path in dirs:
        path.mkdir()
    return dirs


def test_the_same_home_from_any_directory(home: Path, elsewhere: list[Path]) -> None:
    env = {"FURIWAKE_HOME": str(home)}
    migrated = furiwake("migrate", cwd=elsewhere[0], env=env)
    assert migrated.returncode == 0, migrated.stderr
    database = home / "var" / "furiwake.db"
    assert database.is_file() and str(database) in migrated.stdout
    created = furiwake("create-agent", "mio@example.jp", "--password-stdin", cwd=elsewhere[1], env=env,
                       stdin="a long enough password\n")
    assert created.returncode == 0, created.stderr
    token = furiwake("create-token", "mio@example.jp", cwd=elsewhere[2], env=env)
    assert token.returncode == 0, token.stderr
    assert token.stdout.startswith("fwk_")
    for directory in elsewhere:
        assert list(directory.iterdir()) == []  # nothing made in the current directory


@pytest.mark.parametrize("argv", [
    ["create-token", "hana@example.jp"],
    ["models"],
    ["model", "rollback"],
    ["model", "prune", "--dry-run"],
])
def test_a_missing_database_is_named_and_never_created(home: Path, elsewhere: list[Path], argv: list[str]) -> None:
    result = furiwake(*argv, cwd=elsewhere[0], env={"FURIWAKE_HOME": str(home)})
    database = home / "var" / "furiwake.db"
    assert_one_line_error(result, f"no database at {database}", f"FURIWAKE_HOME={home}", "furiwake migrate")
    assert result.returncode == 1
    assert not database.exists() and list(elsewhere[0].iterdir()) == []


def test_create_agent_with_no_input_is_one_line(home: Path, elsewhere: list[Path]) -> None:
    env = {"FURIWAKE_HOME": str(home)}
    assert furiwake("migrate", cwd=elsewhere[0], env=env).returncode == 0
    asked = furiwake("create-agent", "ken@example.jp", cwd=elsewhere[0], env=env, devnull=True)
    assert_one_line_error(asked, "--password-stdin")
    piped = furiwake("create-agent", "ken@example.jp", "--password-stdin", cwd=elsewhere[0], env=env, devnull=True)
    assert_one_line_error(piped, "no password on stdin")


def test_an_unreachable_database_is_one_line_without_its_password(elsewhere: list[Path]) -> None:
    env = {"DATABASE_URL": "postgresql://furiwake:s3cret-pw@127.0.0.1:6399/furiwake"}  # nothing listens there
    result = furiwake("create-token", "hana@example.jp", cwd=elsewhere[0], env=env)
    line = assert_one_line_error(result, "127.0.0.1:6399")
    assert "s3cret-pw" not in result.stderr + result.stdout and "furiwake:***@127.0.0.1:6399" in line


def test_an_unmigrated_database_says_to_migrate(tmp_path: Path, elsewhere: list[Path]) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    result = furiwake("create-token", "hana@example.jp", cwd=elsewhere[0], env={"DATABASE_URL": f"sqlite:///{empty}"})
    assert_one_line_error(result, str(empty), "furiwake migrate")


def test_predict_looks_for_models_in_the_home_not_the_current_directory(home: Path, elsewhere: list[Path]) -> None:
    (elsewhere[0] / "models").mkdir()  # a ./models here must not be what it reads
    result = furiwake("predict", "ログインできません", cwd=elsewhere[0], env={"FURIWAKE_HOME": str(home)})
    assert_one_line_error(result, f"no trained model in {home / 'models'}")


def test_predict_json_names_the_route_and_the_fine_category(home: Path, trained_model_dir: Path) -> None:
    import json

    from core.artifacts import current_version

    version = trained_model_dir / str(current_version(trained_model_dir))
    result = furiwake("predict", "--json", "--model", str(version), "返金をお願いします", cwd=trained_model_dir,
                      env={"FURIWAKE_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    categories = json.loads((version / "meta.json").read_text(encoding="utf-8"))["categories"]
    assert answer["route"] in ("Account", "Payment", "Other") and answer["category"] in categories
    assert 0.0 < answer["category_confidence"] <= 1.0
    assert answer["familiar"] is True  # a ticket like the corpus's
