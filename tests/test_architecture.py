"""The house plan (docs/architecture.md) holds: import-linter's contracts are kept, and at run time neither core
nor the API pulls TensorFlow, Keras or a package above it into the process.

The contracts see the imports written in the code; the sys.modules check sees what importing really loads (an
import hidden in a function, a plugin entry point, a dependency that imports TensorFlow itself).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.paths import ROOT

# A fresh interpreter imports every module of core/ then of api/ (and builds the app), and reports which top-level
# packages were loaded after each step.
_IMPORT_EVERYTHING = """
import importlib, json, pkgutil, sys

def import_all(package):
    root = importlib.import_module(package)
    for module in pkgutil.walk_packages(root.__path__, package + "."):
        importlib.import_module(module.name)
    return sorted({name.split(".")[0] for name in sys.modules})

loaded = {"core": import_all("core")}
from api import create_app
create_app()
loaded["api"] = import_all("api")
print(json.dumps(loaded))
"""


def test_import_linter_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout, result.stdout


def test_core_and_api_load_no_tensorflow_nor_a_package_above_them(tmp_path: Path) -> None:
    env = {**os.environ, "FURIWAKE_HOME": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
           "SECRET_KEY": "architecture"}  # fmt: skip
    env.pop("BROKER_URL", None)
    result = subprocess.run([sys.executable, "-c", _IMPORT_EVERYTHING], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    machine_learning = {"tensorflow", "keras", "sklearn", "matplotlib"}
    assert set(loaded["core"]) & (machine_learning | {"cli", "api", "worker", "training", "serving"}) == set()
    assert set(loaded["api"]) & (machine_learning | {"cli", "worker", "training", "serving"}) == set()
