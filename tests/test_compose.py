"""docker-compose.yml is valid for Debian's docker-compose (1.29), which CI installs (make system-deps)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.support.services import missing_service

ROOT = Path(__file__).resolve().parents[1]


def test_compose_file_is_valid_and_has_every_role():
    if shutil.which("docker-compose") is None:
        missing_service("docker-compose (Debian package) is not installed; `make test` installs it as root")
    result = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
                            capture_output=True, text=True, timeout=60,
                            env={"SECRET_KEY": "x", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    services = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "--services"],
                              capture_output=True, text=True, timeout=60,
                              env={"SECRET_KEY": "x", "PATH": "/usr/bin:/bin"}).stdout.split()
    assert set(services) == {"postgres", "redis", "migrate", "api", "worker", "beat", "trainer"}


def test_compose_refuses_to_start_without_a_secret_key():
    if shutil.which("docker-compose") is None:
        missing_service("docker-compose (Debian package) is not installed; `make test` installs it as root")
    result = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
                            capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode != 0
    assert "set SECRET_KEY" in result.stderr
