"""The module learns the server's command table without showing up in its traffic.

native/module/command_lookup.c reads the whole table with one `COMMAND` when
it is loaded (and again after MODULE LOAD), never a `COMMAND INFO` per
command: ordinary traffic over shm, one-shot commands and sequences alike,
adds nothing to cmdstat_command / cmdstat_command|info and no COMMAND line to
MONITOR.  And what the table says stays right:
- a module loaded after ours has its commands classified by their flags;
- a name the server does not know is refused (the socket answers it), and
  one known only later (that module's) is not remembered as unknown;
- a renamed command is known by the command it leads to, even when its old
  name now leads to another command (a swap through rename-command).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sec_raw import RawSession, is_refusal, socket_as
from servers import Server, shm_stat

from shmcli.resp import Bulk, Error, Status

# A second module, built here: three commands that only answer, one of each
# kind the policy tells apart.  OnLoad resolves its three APIs the way the
# server's GetApi serves them (Redis names, or Valkey's).
SECOND_MODULE = r"""
#include <string.h>
typedef int (*getapi_fn)(const char *name, void *out);
static void (*SetModuleAttribs)(void *ctx, const char *name, int ver, int apiver);
static int (*CreateCommand)(void *ctx, const char *name, int (*fn)(void *, void **, int),
                            const char *flags, int first, int last, int step);
static int (*ReplyWithSimpleString)(void *ctx, const char *msg);
static int get(getapi_fn getapi, const char *name, void *out) {
    const char *prefixes[] = {"RedisModule_", "ValkeyModule_"};
    char full[96];
    for (int i = 0; i < 2; i++) {
        strcpy(full, prefixes[i]);
        strcat(full, name);
        if (getapi(full, out) == 0) return 0;
    }
    return 1;
}
static int answer(void *ctx, void **argv, int argc) {
    (void)argv; (void)argc;
    return ReplyWithSimpleString(ctx, "lk-ran");
}
int RedisModule_OnLoad(void *ctx, void **argv, int argc) {
    (void)argv; (void)argc;
    getapi_fn getapi;
    memcpy(&getapi, ctx, sizeof getapi);
    if (get(getapi, "SetModuleAttribs", &SetModuleAttribs) ||
        get(getapi, "CreateCommand", &CreateCommand) ||
        get(getapi, "ReplyWithSimpleString", &ReplyWithSimpleString)) return 1;
    SetModuleAttribs(ctx, "lk", 1, 1);
    if (CreateCommand(ctx, "lk.write", answer, "write deny-oom", 1, 1, 1) ||
        CreateCommand(ctx, "lk.admin", answer, "admin deny-script", 0, 0, 0) ||
        CreateCommand(ctx, "lk.block", answer, "blocking", 1, 1, 1)) return 1;
    return 0;
}
"""


@pytest.fixture(scope="session")
def second_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("lk")
    (where / "lk.c").write_text(SECOND_MODULE)
    done = subprocess.run(["gcc", "-shared", "-fPIC", "-Wall", "-Werror", "-o",
                           str(where / "lk.so"), str(where / "lk.c")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return where / "lk.so"


def table_calls(srv: Server) -> dict[str, int]:
    """calls= of every cmdstat_command* line: COMMAND and its subcommands."""
    return {key: int(value.split(",")[0].split("=")[1])
            for key, value in srv.info("commandstats").items()
            if key.startswith("cmdstat_command")}


class Monitor:
    """A MONITOR connection; lines() reads until a marker the caller sends
    after its traffic, so the wait is bounded by the socket timeout alone."""

    def __init__(self, srv: Server) -> None:
        self.srv = srv
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(srv.unix_socket)
        self.sock.sendall(b"MONITOR\r\n")
        self.buf = b""
        while b"\r\n" not in self.buf:
            self.buf += self.sock.recv(4096)
        assert self.buf.startswith(b"+OK\r\n"), self.buf
        self.buf = self.buf[len(b"+OK\r\n"):]

    def lines(self) -> list[str]:
        marker = f"monitor-end-{uuid.uuid4().hex}"
        with self.srv.admin() as conn:
            conn.execute("ECHO", marker)
        while marker.encode() not in self.buf:
            chunk = self.sock.recv(1 << 16)
            assert chunk, "the server closed MONITOR"
            self.buf += chunk
        return self.buf.decode(errors="replace").splitlines()

    def close(self) -> None:
        self.sock.close()


def test_traffic_over_shm_asks_nothing_of_the_command_table(
        flavour_mode: tuple[str, str], custom_server: Callable[..., Server]) -> None:
    srv = custom_server(*flavour_mode)
    # the loading read the table once, before any client was served
    assert table_calls(srv) == {"cmdstat_command": 1}
    monitor = Monitor(srv)
    try:
        served = shm_stat(srv, "commands")
        one_shots = [("SET", "k", "v"), ("INCR", "n"), ("GET", "k"), ("HSET", "h", "f", "v"),
                     ("CONFIG", "GET", "maxmemory"), ("set", "k2", "v2"), ("LPUSH", "l", "a")]
        for argv in one_shots:
            done = subprocess.run([sys.executable, "-m", "shmcli", "-s", srv.unix_socket, *argv],
                                  capture_output=True, timeout=60)
            assert done.returncode == 0 and not done.stderr, (argv, done)
        with srv.connect(shm="require") as conn:
            assert conn.transport == "shm"
            for argv in [("SET", "s", "1"), ("GET", "s"), ("INCRBY", "s", "2"),
                         ("CONFIG", "GET", "port"), ("ZADD", "z", "1", "m"),
                         ("OBJECT", "ENCODING", "s"), ("XADD", "x", "*", "f", "v"),
                         ("CLIENT", "LIST"), ("NOSUCHCMD", "a")]:
                conn.execute(*argv)
            assert conn.execute("GET", "k") == Bulk(b"v")
        assert shm_stat(srv, "commands") - served >= 10  # most of it ran over shm
        lines = monitor.lines()
    finally:
        monitor.close()
    assert table_calls(srv) == {"cmdstat_command": 1}
    assert [line for line in lines if '"command"' in line.lower()] == []
    assert any('"INCRBY"' in line for line in lines)  # MONITOR saw the traffic


def test_a_module_loaded_later_is_classified_by_its_flags(
        flavour_mode: tuple[str, str], custom_server: Callable[..., Server],
        second_module: Path) -> None:
    srv = custom_server(*flavour_mode, config={"enable-module-command": "yes"})
    with RawSession(srv) as session:
        # unknown yet: refused, so that the socket gives its own error
        assert is_refusal(session.call("lk.write", "k"))
        with srv.admin() as conn:
            assert conn.execute("MODULE", "LOAD", str(second_module)) == Status(b"OK")
        # learned again once, after the load, and not remembered as unknown
        assert table_calls(srv) == {"cmdstat_command": 2}
        refused = shm_stat(srv, "refused")
        assert session.call("lk.write", "k") == b"+lk-ran\r\n"
        assert session.call("LK.WRITE", "k") == b"+lk-ran\r\n"
        assert shm_stat(srv, "refused") == refused
        assert is_refusal(session.call("lk.admin"))  # deny-script: the socket's
        assert is_refusal(session.call("lk.block", "k"))  # blocking
        assert is_refusal(session.call("lk.nosuch", "k"))
        assert session.call("PING") == b"+PONG\r\n"
    with srv.connect(shm="require") as conn:
        assert conn.execute("lk.admin") == Status(b"lk-ran")  # over the socket
        assert isinstance(conn.execute("lk.nosuch"), Error)
        assert conn.transport == "shm"
    assert table_calls(srv) == {"cmdstat_command": 2}


# GET and DEL swap names through a third: "get" now runs DEL and "del" GET.
SWAP = ["--rename-command", "GET", "tmpname", "--rename-command", "DEL", "GET",
        "--rename-command", "tmpname", "DEL", "--rename-command", "DEBUG", "mydebug"]


def test_renamed_names_lead_where_the_server_sends_them(
        flavour_mode: tuple[str, str], custom_server: Callable[..., Server]) -> None:
    srv = custom_server(*flavour_mode, extra=SWAP)
    sock = socket_as(srv)
    try:
        with RawSession(srv) as session:
            assert session.call("SET", "a", "1") == b"+OK\r\n"
            assert session.call("SET", "b", "2") == b"+OK\r\n"
            # "del a" is GET a: one argument too many for GET
            assert session.call("del", "a") == b"$1\r\n1\r\n"
            assert is_refusal(session.call("del", "a", "b"))
            # "GET a b" is DEL a b: two keys deleted over shm, not refused
            assert session.call("GET", "a", "b") == b":2\r\n"
            assert sock.call("EXISTS", "a", "b") == b":0\r\n"
            # the protected command under its new name, and the old names
            assert is_refusal(session.call("MYDEBUG", "sleep", "0"))
            assert is_refusal(session.call("debug", "sleep", "0"))
            assert is_refusal(session.call("tmpname", "a"))
            assert session.call("PING") == b"+PONG\r\n"
    finally:
        sock.close()
    assert table_calls(srv) == {"cmdstat_command": 1}
