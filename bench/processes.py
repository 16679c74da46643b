"""Stopping the process groups a benchmark started (each child in a session of its own, so its children go too),
and a free loopback port for a server it starts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess


def stop(children: list[subprocess.Popen[bytes]], timeout: float = 30) -> None:
    """SIGTERM every child's process group, then SIGKILL the groups that have not exited within `timeout`."""
    for child in children:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
