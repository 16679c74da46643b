"""docker-compose.yml is valid for Debian's docker-compose (1.29), which CI installs (make system-deps)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

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
    assert set(services) == {"postgres", "redis", "migrate", "api", "proxy", "worker", "beat", "trainer"}


def test_compose_refuses_to_start_without_a_secret_key():
    if shutil.which("docker-compose") is None:
        missing_service("docker-compose (Debian package) is not installed; `make test` installs it as root")
    result = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
                            capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode != 0
    assert "set SECRET_KEY" in result.stderr



def test_the_tls_proxy_serves_the_api_and_is_the_only_way_in():
    """The proxy's Caddyfile (mounted from deploy/) forwards to the api service, which publishes no port of its own:
    TRUSTED_PROXIES=1 is true only when nothing reaches gunicorn except through the proxy."""
    if shutil.which("docker-compose") is None:
        missing_service("docker-compose (Debian package) is not installed; `make test` installs it as root")
    rendered = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
                              capture_output=True, text=True, timeout=60, check=True,
                              env={"SECRET_KEY": "x", "PATH": "/usr/bin:/bin"}).stdout
    services = yaml.safe_load(rendered)["services"]
    assert "ports" not in services["api"]
    assert services["api"]["environment"]["TRUSTED_PROXIES"] == "1"
    assert {str(port["target"]) if isinstance(port, dict) else str(port).split(":")[-1]
            for port in services["proxy"]["ports"]} == {"80", "443"}
    [mount] = [volume for volume in services["proxy"]["volumes"] if "Caddyfile" in str(volume)]
    source = mount["source"] if isinstance(mount, dict) else str(mount).split(":")[0]
    caddyfile = Path(source).read_text()
    assert "reverse_proxy api:8000" in caddyfile and "{$SITE_ADDRESS:localhost}" in caddyfile
