"""Protected commands stay protected under another name.

With `rename-command DEBUG mydebug` and `rename-command MODULE mymodule`, the
policy must classify the command the server will run, not the name it reads:
over a raw session `mydebug ...` and `mymodule ...`, in any case, are refused
with -SHMFALLBACK and never run (master_replid does not move, no module gets
loaded), whether or not the protection is enabled on the socket.  The old
names, now unknown to the server, get the socket's answer or a refusal.
Through a shmcli Connection every reply equals the socket's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sec_raw import RawSession, is_refusal, socket_as
from servers import Server

RENAMES = ["--rename-command", "DEBUG", "mydebug", "--rename-command", "MODULE", "mymodule"]


def facts(srv: Server) -> tuple[str, bytes]:
    """master_replid and the module list: what a protected command would move."""
    sock = socket_as(srv)
    try:
        return srv.info("replication")["master_replid"], sock.call("mymodule", "list")
    finally:
        sock.close()


def renamed(evil_so: Path) -> list[tuple[str, ...]]:
    return [
        ("mydebug", "change-repl-id"), ("MYDEBUG", "CHANGE-REPL-ID"),
        ("MyDebug", "Change-Repl-Id"), ("mydebug", "sleep", "0"), ("mydebug", "help"),
        ("mymodule", "list"), ("MYMODULE", "LIST"), ("MyModule", "List"),
        ("mymodule", "load", str(evil_so)), ("MYMODULE", "LOAD", str(evil_so)),
        ("mymodule", "unload", "shm"), ("mymodule", "help"),
    ]


@pytest.mark.parametrize("enabled", ["no", "yes"])
def test_renamed_protected_commands_are_refused_over_shm(
        flavour_mode: tuple[str, str], custom_server: Callable[..., Server],
        evil_module: tuple[Path, Path], enabled: str) -> None:
    evil_so, marker = evil_module
    marker.unlink(missing_ok=True)
    srv = custom_server(*flavour_mode, extra=RENAMES,
                        config={"enable-debug-command": enabled,
                                "enable-module-command": enabled})
    before = facts(srv)
    with RawSession(srv) as session:
        for cmd in renamed(evil_so):
            reply = session.call(*cmd)
            assert is_refusal(reply), f"{cmd} over shm answered {reply!r}"
            assert srv.alive(), f"{cmd} killed the server:\n{srv.log()[-3000:]}"
            assert not marker.exists(), f"{cmd}: a module was loaded over shm"
            assert facts(srv) == before, f"{cmd} ran over shm"
        # the old names are unknown commands now: the socket's answer, or a refusal
        sock = socket_as(srv)
        try:
            for cmd in [("DEBUG", "CHANGE-REPL-ID"), ("debug", "sleep", "0"),
                        ("MODULE", "LIST"), ("module", "load", str(evil_so))]:
                reply = session.call(*cmd)
                assert reply == sock.call(*cmd) or is_refusal(reply), (cmd, reply)
        finally:
            sock.close()
        assert session.call("PING") == b"+PONG\r\n"
    assert facts(srv) == before
    assert not marker.exists()


def test_renamed_protected_commands_through_a_connection(
        flavour_mode: tuple[str, str], custom_server: Callable[..., Server],
        evil_module: tuple[Path, Path]) -> None:
    """shmcli sends the refused command over its socket: the socket's reply."""
    evil_so, marker = evil_module
    marker.unlink(missing_ok=True)
    srv = custom_server(*flavour_mode, extra=RENAMES)
    before = facts(srv)
    with srv.connect(shm="require") as conn, srv.connect(shm="off") as plain:
        for cmd in renamed(evil_so):
            if cmd[1].lower() == "unload":
                continue  # would unload the module on the socket, where it is allowed
            over_shm, over_socket = conn.execute(*cmd), plain.execute(*cmd)
            assert over_shm == over_socket, cmd
        assert conn.transport == "shm"
    assert facts(srv) == before
    assert not marker.exists()
