"""Where the module's session socket lives by default, and who may connect.

docs/security.md §3: never where another user could create it first, never
wider than the server's own unix socket.  Next to the server's unix socket
with its permissions; on a TCP-only server, in a fresh mkdtemp directory.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from servers import FLAVOURS, Server, free_port

from shmcli import module_path
from shmcli.connection import Connection
from shmcli.resp import Status


def test_next_to_the_servers_unix_socket_with_its_permissions(
        flavour: str, make_server: Callable[..., Server]) -> None:
    srv = make_server(flavour, start=False, config={"unixsocketperm": "770"})
    del srv.config["shm.socket-path"]
    srv.start()
    expected = srv.unix_socket + ".shm"
    assert srv.info()["shm_socket"] == expected
    assert stat.S_IMODE(os.stat(expected).st_mode) == 0o770
    with srv.connect(shm="require") as conn:
        assert conn.execute("SET", "k", "v") == Status(b"OK")
    srv.stop()
    assert not os.path.exists(expected)


def test_an_explicit_socket_perm_wins(flavour: str, make_server: Callable[..., Server]) -> None:
    srv = make_server(flavour, start=False, config={"shm.socket-perm": "600"})
    del srv.config["shm.socket-path"]
    srv.start()
    assert stat.S_IMODE(os.stat(srv.unix_socket + ".shm").st_mode) == 0o600


def start_tcp_only(flavour: str, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    binary = shutil.which(FLAVOURS[flavour])
    assert binary
    proc = subprocess.Popen([binary, "--loadmodule", module_path(), "--port", str(port),
                             "--bind", "127.0.0.1", "--unixsocket", "", "--save", "",
                             "--dir", str(workdir), "--logfile", str(workdir / "log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, port
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise AssertionError((workdir / "log").read_text())


def test_tcp_only_server_uses_a_private_directory(flavour: str, tmp_path: Path) -> None:
    proc, port = start_tcp_only(flavour, tmp_path)
    try:
        with Connection(port=port, shm="require") as conn:
            info = conn.execute("INFO", "shm")
            path = next(line.split(":", 1)[1] for line in info.data.decode().splitlines()
                        if line.startswith("shm_socket:"))  # type: ignore[union-attr]
            directory = os.path.dirname(path)
            assert directory.startswith("/tmp/redis-shm-") and len(directory) > 15
            assert stat.S_IMODE(os.stat(directory).st_mode) == 0o711
            assert conn.execute("SET", "k", "v") == Status(b"OK")
            assert conn.transport == "shm"
    finally:
        proc.terminate()
        proc.wait(10)
    assert not os.path.exists(directory)


def shm_socket_of(port: int) -> str:
    with Connection(port=port, shm="off") as conn:
        info = conn.execute("INFO", "shm")
    return next(line.split(":", 1)[1] for line in info.data.decode().splitlines()  # type: ignore[union-attr]
                if line.startswith("shm_socket:"))


def test_a_killed_tcp_only_servers_directory_is_removed_by_the_next(
        flavour: str, tmp_path: Path) -> None:
    """A killed server cannot clean up; the next TCP-only start removes the
    directories of servers that are gone, and only those."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "c").mkdir()
    killed, killed_port = start_tcp_only(flavour, tmp_path / "a")
    alive, alive_port = start_tcp_only(flavour, tmp_path / "b")
    dead_dir = os.path.dirname(shm_socket_of(killed_port))
    live_dir = os.path.dirname(shm_socket_of(alive_port))
    killed.kill()
    killed.wait(10)
    old = time.time() - 60  # "a while ago", so no sleep is needed
    for directory in (dead_dir, live_dir):
        os.utime(directory, (old, old))
    assert os.path.exists(dead_dir + "/shm.sock")
    fresh, fresh_port = start_tcp_only(flavour, tmp_path / "c")
    try:
        assert not os.path.exists(dead_dir)
        assert os.path.exists(live_dir + "/shm.sock")  # still listened on: kept
        with Connection(port=alive_port, shm="require") as conn:
            assert conn.execute("PING") == Status(b"PONG") and conn.transport == "shm"
        assert os.path.dirname(shm_socket_of(fresh_port)) not in (dead_dir, live_dir)
    finally:
        for proc in (alive, fresh):
            proc.terminate()
            proc.wait(10)
    assert not os.path.exists(live_dir)
