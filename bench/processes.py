"""Stopping the process groups a benchmark started (each child in a session of its own, so its children go too),
a free loopback port for a server it starts, and a process's memory as /proc reports it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path


def stop(children: list[subprocess.Popen[bytes]], timeout: float = 30) -> None:
    """SIGTERM to each child's own process, as the supervisor and a container runtime send it, so that a Celery
    worker stops its pool itself; then SIGKILL what is left of each group once its leader exited or `timeout` passed.

    (Signalling the whole group instead killed every pool child under a worker that was still running: the worker
    started new ones, and its warm shutdown hung until the SIGKILL.)"""
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        child.wait()


def free_port() -> int:
    """A port the kernel just handed out, so parallel tests (xdist workers, other runs) never share one."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def smaps_rollup(pid: int) -> dict[str, int]:
    """The kB figures of /proc/PID/smaps_rollup (Pss, Rss, Pss_Anon, ...): PSS divides each shared page among the
    processes that map it, so the figures of several processes add up (Linux)."""
    figures = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[-1] == "kB":
            figures[name.strip()] = int(parts[0])
    return figures
