"""Loading the module: it refuses, with one clear log line, a server that lacks an API it needs.

Debian's redis 7.0.15 and valkey 8.0.1 have every API we use, so the refusal
is checked with native/tests/fake_loader.c, which loads the real built module
the way Redis does into a fake server missing one API.  Loading into the real
servers is covered by every other test; here we also check MODULE UNLOAD is
refused without harm.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import shmcli
from shmcli.resp import Bulk, Error, Status

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def fake_loader(tmp_path_factory: pytest.TempPathFactory) -> Path:
    binary = tmp_path_factory.mktemp("loader") / "fake_loader"
    subprocess.run(["gcc", "-std=c11", "-Wall", "-Werror", "-o", str(binary),
                    str(ROOT / "native/tests/fake_loader.c"), "-ldl"], check=True)
    return binary


@pytest.mark.parametrize("api", ["SetContextUser", "EventLoopAdd", "GetClientNameById",
                                 "RegisterNumericConfig"])
def test_refuses_to_load_without_an_api(fake_loader: Path, api: str) -> None:
    out = subprocess.run([str(fake_loader), shmcli.module_path(), api], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    lines = out.splitlines()
    assert lines[-1] == "rc=1"  # REDISMODULE_ERR: the server does not load it
    logged = [line for line in lines if line.startswith("[warning]")]
    assert logged == [f"[warning] shm: this server lacks RedisModule_{api} (the module needs "
                      "Redis >= 7.0.6 or Valkey >= 7.2.6); not loading"]


def test_module_cannot_be_unloaded(make_server, flavour: str) -> None:
    srv = make_server(flavour, config={"enable-module-command": "yes"})
    with srv.admin() as conn:
        reply = conn.execute("MODULE", "UNLOAD", "shm")
        assert isinstance(reply, Error)
        assert conn.execute("PING") == Status(b"PONG")
        assert conn.execute("MODULE", "LIST").items  # still loaded
    with srv.connect(shm="require") as conn:
        assert conn.execute("SET", "k", "v") == Status(b"OK")
        assert conn.transport == "shm"


def test_module_path_points_at_the_built_module() -> None:
    """`redis-server --loadmodule "$(shmcli --module-path)"` must work."""
    run = subprocess.run([sys.executable, "-m", "shmcli", "--module-path"], capture_output=True,
                         text=True, timeout=60, check=True)
    path = Path(run.stdout.strip())
    assert path.is_absolute() and str(path) == shmcli.module_path()
    assert path.is_file() and os.access(path, os.X_OK)  # Redis 7 refuses non-executable modules


@pytest.mark.parametrize("exec_mode", ["main-thread", "fast-path"])
def test_shutdown_with_sessions_is_clean(make_server, flavour: str, exec_mode: str) -> None:
    """A server that unloads its modules as it stops (Valkey 9.1) gets a clean
    stop: no refused unload, no warning, the socket removed."""
    srv = make_server(flavour, exec_mode)
    conn = srv.connect(shm="require")
    assert conn.execute("SET", "k", "v") == Status(b"OK")
    srv.stop()
    assert srv.process is not None and srv.process.returncode == 0
    log = srv.log()
    assert "OnUnload failed" not in log and "Failed to unload" not in log, log[-2000:]
    assert "cannot be unloaded" not in log
    assert not os.path.exists(srv.shm_socket)
    conn.close()


def test_diskless_load_stays_as_configured(make_server, flavour: str) -> None:
    """The module declares it handles async loading, so a replica with
    repl-diskless-load swapdb keeps it (the server turns it off for modules
    that do not), and commands over shm still reach the replica's data."""
    master = make_server(flavour, config={"repl-diskless-sync": "yes",
                                          "repl-diskless-sync-delay": "0"})
    with master.admin() as conn:
        conn.execute("SET", "k", "v")
    replica = make_server(flavour, config={"repl-diskless-load": "swapdb",
                                           "replicaof": f"127.0.0.1 {master.port}"})
    deadline = time.monotonic() + 15
    while replica.info("replication").get("master_link_status") != "up":
        assert time.monotonic() < deadline, replica.log()[-2000:]
        time.sleep(0.05)
    assert "not aware of async replication" not in replica.log()
    assert "Swapping active DB with loaded DB" in replica.log()  # the swapdb load ran
    with replica.connect(shm="require") as conn:
        assert conn.execute("GET", "k") == Bulk(b"v")
        assert conn.transport == "shm"
