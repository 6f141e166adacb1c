"""Outstanding tokens cannot lock others out of shared memory.

Issue 9: 64 connections holding SHM.HANDSHAKE tokens filled a fixed table,
whatever shm.max-sessions said.  With max-sessions 1000, 100 connections
each holding an unredeemed token leave room for a 101st client's session;
and one connection asking again and again holds one token, not many.
"""

from __future__ import annotations

from collections.abc import Callable

from sec_raw import handshake
from servers import Server

from shmcli.resp import Array, Status


def test_unredeemed_tokens_do_not_lock_out_the_next_client(
        flavour_mode: tuple[str, str], custom_server: Callable[..., Server]) -> None:
    srv = custom_server(*flavour_mode, config={"shm.max-sessions": "1000"})
    holders = [srv.connect(shm="off") for _ in range(100)]
    try:
        for ctl in holders:
            handshake(ctl)
        with srv.connect(shm="require") as conn:
            assert conn.execute("PING") == Status(b"PONG")
            assert conn.transport == "shm"
    finally:
        for ctl in holders:
            ctl.close()


def test_asking_again_replaces_the_token(
        flavour_mode: tuple[str, str], custom_server: Callable[..., Server]) -> None:
    srv = custom_server(*flavour_mode, config={"shm.max-sessions": "2"})
    with srv.connect(shm="off") as greedy:
        for _ in range(50):
            assert isinstance(greedy.execute("SHM.HANDSHAKE"), Array)
        with srv.connect(shm="require") as conn:
            assert conn.execute("PING") == Status(b"PONG")
            assert conn.transport == "shm"
