"""The server's write guards hold over shared memory.

RedisModule_Call skips processCommand(), where the server refuses writes
without enough replicas (NOREPLICAS), reads on a replica whose master is down
with replica-serve-stale-data no (MASTERDOWN), writes on a read-only replica
(READONLY), writes after a failed background save (MISCONF) and deny-oom
commands over maxmemory (OOM).  Over a raw session each guarded command must
be refused with -SHMFALLBACK and must not run; through a shmcli Connection the
reply equals a plain socket's.

MISCONF without root-proof permissions: the server's data directory is
removed before BGSAVE, so the child cannot create its temporary file.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from sec_raw import RawSession, is_refusal
from servers import Server, free_port, wait_until

from shmcli.resp import Error, Nil, Status


def admin_ok(srv: Server, *cmd: str) -> None:
    with srv.admin() as admin:
        reply = admin.execute(*cmd)
    assert reply == Status(b"OK"), (cmd, reply)


def no_replicas(srv: Server, data: Path) -> None:
    admin_ok(srv, "CONFIG", "SET", "min-replicas-to-write", "1")


def dead_master(srv: Server, data: Path) -> None:
    admin_ok(srv, "REPLICAOF", "127.0.0.1", str(free_port()))


def stale_replica(srv: Server, data: Path) -> None:
    admin_ok(srv, "CONFIG", "SET", "replica-serve-stale-data", "no")
    dead_master(srv, data)


def failed_bgsave(srv: Server, data: Path) -> None:
    admin_ok(srv, "CONFIG", "SET", "save", "3600 1")
    shutil.rmtree(data)
    with srv.admin() as admin:
        assert admin.execute("BGSAVE") == Status(b"Background saving started")

    def failed() -> bool:
        info = srv.info("persistence")
        return info["rdb_bgsave_in_progress"] == "0" and info["rdb_last_bgsave_status"] == "err"
    wait_until(failed, "BGSAVE to fail")


def out_of_memory(srv: Server, data: Path) -> None:
    admin_ok(srv, "CONFIG", "SET", "maxmemory-policy", "noeviction")
    admin_ok(srv, "CONFIG", "SET", "maxmemory", "1")


# guard -> (how to raise it, the guarded command, the error code on the socket)
GUARDS: dict[str, tuple[Callable[[Server, Path], None], tuple[str, ...], str]] = {
    "min-replicas": (no_replicas, ("SET", "guarded", "x"), "NOREPLICAS"),
    "stale-replica": (stale_replica, ("GET", "seed"), "MASTERDOWN"),
    "read-only-replica": (dead_master, ("SET", "guarded", "x"), "READONLY"),
    "misconf": (failed_bgsave, ("SET", "guarded", "x"), "MISCONF"),
    "deny-oom": (out_of_memory, ("SET", "guarded", "x"), "OOM"),
}


@pytest.mark.parametrize("guard", list(GUARDS))
def test_guarded_commands_never_run_over_shm(
        flavour_mode: tuple[str, str], custom_server: Callable[..., Server],
        tmp_path: Path, guard: str) -> None:
    raise_guard, cmd, code = GUARDS[guard]
    data = tmp_path / "data"
    data.mkdir()
    srv = custom_server(*flavour_mode, config={"dir": str(data)})
    with srv.admin() as admin:
        admin.execute("SET", "seed", "stale")
    with RawSession(srv) as session, srv.connect(shm="require") as conn, \
            srv.connect(shm="off") as plain:
        assert session.call("PING") == b"+PONG\r\n"
        raise_guard(srv, data)

        over_socket = plain.execute(*cmd)
        assert isinstance(over_socket, Error) and over_socket.code == code, over_socket
        raw = session.call(*cmd)
        assert srv.alive(), f"{cmd} killed the server:\n{srv.log()[-3000:]}"
        assert is_refusal(raw), f"{guard}: {cmd} over shm answered {raw!r}"
        assert conn.execute(*cmd) == over_socket
        assert conn.transport == "shm"
    if cmd[0] == "SET" and guard != "stale-replica":
        with srv.admin() as admin:
            assert isinstance(admin.execute("GET", "guarded"), Nil), f"{guard}: SET ran"
    assert srv.alive()
