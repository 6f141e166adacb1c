"""`timeout N` closes idle clients, not busy shared-memory sessions.

All traffic of a session goes through shared memory, so its control
connection looks idle to the server.  A session kept busy for three times the
timeout must keep working, on the same session, with every command going
through shared memory (the client keeps its control connection alive).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sec_raw import client_line
from servers import Server, shm_stat

from shmcli.resp import Integer, Status


def test_a_busy_session_outlives_the_idle_timeout(
        flavour_mode: tuple[str, str], custom_server: Callable[..., Server]) -> None:
    srv = custom_server(*flavour_mode, config={"timeout": "1"})
    with srv.connect(shm="require") as conn:
        client_id = conn.execute("CLIENT", "ID")
        assert isinstance(client_id, Integer)
        opened, ran = shm_stat(srv, "sessions_opened"), shm_stat(srv, "commands")
        sent = 0
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            assert conn.execute("PING") == Status(b"PONG"), f"after {sent} PINGs"
            sent += 1
        assert conn.transport == "shm"
        assert conn.execute("PING") == Status(b"PONG")
        assert shm_stat(srv, "commands") - ran >= sent + 1, "PINGs left shared memory"
        assert shm_stat(srv, "sessions_opened") == opened, "the session was replaced"
        assert shm_stat(srv, "sessions") == 1
        assert client_line(srv, client_id.value), "the control connection was closed"
    assert srv.alive()
