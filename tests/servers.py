"""Test-side access to the throwaway servers (shmcli.testing) and small helpers."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from shmcli.testing import EXEC_MODES, FLAVOURS, Server, free_port

__all__ = ["EXEC_MODES", "FLAVOURS", "Server", "fd_count", "free_port", "shm_stat",
           "wait_until"]


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    """Poll a condition (never a timing assertion: only a bound on waiting)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def shm_stat(srv: Server, field: str) -> int:
    """One counter of INFO shm, e.g. shm_stat(srv, "sessions")."""
    return int(srv.info()[f"shm_{field}"])


def fd_count(srv: Server) -> int:
    """How many descriptors the server process has open."""
    assert srv.process is not None
    return len(os.listdir(f"/proc/{srv.process.pid}/fd"))
