"""The module's configuration and its INFO section, as an operator meets them.

shm.* settings must work everywhere Redis settings work: on the command
line, in a redis.conf file, through CONFIG GET, and through CONFIG SET for
the ones that can change at run time (validated: the ring size must be a
power of two within bounds; a new session gets the new size).  The ones fixed
at start (socket, permissions, execution mode) are refused by CONFIG SET.
INFO shm counts sessions and commands exactly.  The module loads into both
servers, also at run time with MODULE LOADEX, and refuses MODULE UNLOAD
without harm.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator

import pytest
from servers import EXEC_MODES, FLAVOURS, Server, wait_until

import shmcli
from shmcli.connection import Connection
from shmcli.resp import Array, Bulk, Error, Integer, Nil, Status

MB = 1024 * 1024
SERVERS = [(f, m) for f in FLAVOURS for m in EXEC_MODES]
SERVER_IDS = [f"{f}-{m}" for f, m in SERVERS]
DEFAULTS = {"max-sessions": "64", "ring-size": str(MB), "input-limit": str(64 * MB),
            "output-limit": str(1024 * MB), "batch-max": "256", "worker-spin-us": "50",
            "main-poll-us": "20", "poll-budget": "0", "socket-perm": ""}


# Immutable, so hidden from CONFIG GET <pattern>: asked for by name.
HIDDEN = ("socket-path", "socket-perm", "exec-mode")


def config_get(conn: Connection, pattern: str) -> dict[str, str]:
    reply = conn.execute("CONFIG", "GET", pattern)
    assert isinstance(reply, Array), reply
    items = [item.data.decode() for item in reply.items if isinstance(item, Bulk)]
    assert len(items) == len(reply.items)
    return dict(zip(items[::2], items[1::2], strict=True))


def shm_configs(conn: Connection) -> dict[str, str]:
    found = config_get(conn, "shm.*")
    assert not any(key.removeprefix("shm.") in HIDDEN for key in found)
    for name in HIDDEN:
        found.update(config_get(conn, f"shm.{name}"))
    return {key.removeprefix("shm."): value for key, value in found.items()}


def test_every_listed_config_can_be_set_back(make_server) -> None:
    """What CONFIG GET * lists, CONFIG SET takes back (Redis's own CONFIG
    sanity test does this with the module loaded)."""
    srv = make_server("redis", "main-thread")
    with srv.admin() as admin:
        listed = {k: v for k, v in config_get(admin, "*").items() if k.startswith("shm.")}
        assert listed and not any(k.removeprefix("shm.") in HIDDEN for k in listed)
        for name, value in listed.items():
            assert admin.execute("CONFIG", "SET", name, value) == Status(b"OK"), name


def test_loadmodule_arguments_are_refused_clearly(make_server) -> None:
    srv = make_server("redis", "main-thread", start=False)
    srv.module_args = ["exec-mode", "fast-path"]
    with pytest.raises(RuntimeError, match="exited at start"):
        srv.start()
    assert "takes no loadmodule arguments" in srv.log()


def handshake_ring(conn: Connection) -> int:
    reply = conn.execute("SHM.HANDSHAKE")
    assert isinstance(reply, Array), reply
    ring = reply.items[2]
    assert isinstance(ring, Integer)
    return ring.value


def round_trip_big_value(srv: Server, size: int) -> None:
    """A value larger than a record (fragmented both ways) survives the trip."""
    value = os.urandom(size)
    with srv.connect(shm="require") as conn:
        assert conn.execute("SET", "big", value) == Status(b"OK")
        assert conn.execute("GET", "big") == Bulk(value)
        assert conn.transport == "shm"


# ---- where settings come from ----

def test_settings_on_the_command_line(flavour: str, make_server: Callable[..., Server]) -> None:
    srv = make_server(flavour, config={
        "shm.ring-size": "256kb", "shm.max-sessions": "5", "shm.batch-max": "17",
        "shm.input-limit": "2mb", "shm.output-limit": "3mb", "shm.worker-spin-us": "7",
        "shm.socket-perm": "700"})
    with srv.admin() as admin:
        configs = shm_configs(admin)
        assert handshake_ring(admin) == 256 * 1024
    assert configs == {**DEFAULTS, "ring-size": str(256 * 1024), "max-sessions": "5",
                       "batch-max": "17", "input-limit": str(2 * MB),
                       "output-limit": str(3 * MB), "worker-spin-us": "7",
                       "socket-perm": "700", "socket-path": srv.shm_socket,
                       "exec-mode": "main-thread"}
    assert stat.S_IMODE(os.stat(srv.shm_socket).st_mode) == 0o700
    round_trip_big_value(srv, 600_000)


class ConfFileServer(Server):
    """A server started as `redis-server <file>`, its settings in the file."""

    def argv(self) -> list[str]:
        lines = [f"loadmodule {shmcli.module_path()}"]
        lines += [f'{key} "{value}"' for key, value in self.config.items()]
        conf = self.dir / "server.conf"
        conf.write_text("\n".join(lines) + "\n")
        return [self.binary, str(conf)]


def effective_exec_mode(srv: Server, requested: str) -> str:
    """The path the module runs: the one asked for, but main-thread instead
    of fast-path on Redis 8 and later (client output from its main thread
    only), as INFO server says."""
    server = srv.info("server")
    redis8 = "server_name" not in server and int(server["redis_version"].split(".")[0]) >= 8
    return "main-thread" if requested == "fast-path" and redis8 else requested


@pytest.fixture
def conf_server(flavour: str) -> Iterator[Server]:
    srv = ConfFileServer(flavour, "fast-path", config={
        "shm.ring-size": "128kb", "shm.max-sessions": "9", "shm.batch-max": "33"})
    yield srv.start()
    srv.cleanup()


def test_settings_in_a_config_file(conf_server: Server) -> None:
    srv = conf_server
    assert "--loadmodule" not in srv.argv()
    with srv.admin() as admin:
        configs = shm_configs(admin)
        assert handshake_ring(admin) == 128 * 1024
    assert configs == {**DEFAULTS, "ring-size": str(128 * 1024), "max-sessions": "9",
                       "batch-max": "33", "socket-path": srv.shm_socket,
                       "exec-mode": "fast-path"}
    info = srv.info()
    assert info["shm_exec_mode"] == effective_exec_mode(srv, "fast-path")
    assert info["shm_socket"] == srv.shm_socket
    round_trip_big_value(srv, 300_000)


def test_config_get_defaults(flavour: str, make_server: Callable[..., Server]) -> None:
    srv = make_server(flavour, "fast-path")
    with srv.admin() as admin:
        assert shm_configs(admin) == {**DEFAULTS, "socket-path": srv.shm_socket,
                                      "exec-mode": "fast-path"}
        one = admin.execute("CONFIG", "GET", "shm.ring-size")
    assert one == Array((Bulk(b"shm.ring-size"), Bulk(str(MB).encode())))


# ---- CONFIG SET ----

def test_config_set_at_run_time(flavour: str, make_server: Callable[..., Server]) -> None:
    srv = make_server(flavour)
    early = srv.connect(shm="require")  # opened with the default 1 MB ring
    try:
        with srv.admin() as admin:
            for name, value, shown in [("max-sessions", "10", "10"), ("batch-max", "1", "1"),
                                       ("input-limit", "8mb", str(8 * MB)),
                                       ("output-limit", "16mb", str(16 * MB)),
                                       ("worker-spin-us", "0", "0"),
                                       ("ring-size", "128kb", str(128 * 1024))]:
                assert admin.execute("CONFIG", "SET", f"shm.{name}", value) == Status(b"OK")
                assert shm_configs(admin)[name] == shown
            assert handshake_ring(admin) == 128 * 1024
        # a new session gets the new ring; batch-max 1 still runs pipelines
        round_trip_big_value(srv, 400_000)
        with srv.connect(shm="require") as conn:
            replies = conn.execute_many([("INCR", "n")] * 50)
            assert replies[-1] == Integer(50)
        # the session opened before keeps its own ring
        value = os.urandom(700_000)
        assert early.execute("SET", "early", value) == Status(b"OK")
        assert early.execute("GET", "early") == Bulk(value)
        assert early.transport == "shm"
    finally:
        early.close()


@pytest.mark.parametrize("value", ["100000", "96kb", "32kb", "3gb", "0", "-1", "abc", "1mbx"])
def test_bad_ring_size_is_rejected(flavour: str, make_server: Callable[..., Server],
                                   value: str) -> None:
    srv = make_server(flavour)
    with srv.admin() as admin, srv.connect(shm="require") as conn:
        reply = admin.execute("CONFIG", "SET", "shm.ring-size", value)
        assert isinstance(reply, Error), reply
        # the same answer through a shared-memory connection
        assert conn.execute("CONFIG", "SET", "shm.ring-size", value) == reply
        assert shm_configs(admin)["ring-size"] == str(MB)
        assert handshake_ring(admin) == MB
    if value in ("100000", "96kb"):
        assert "power of two" in reply.message, reply


@pytest.mark.parametrize(("name", "value"), [("exec-mode", "fast-path"),
                                             ("socket-path", "/tmp/elsewhere.sock"),
                                             ("socket-perm", "700")])
def test_immutable_settings_are_refused(flavour: str, make_server: Callable[..., Server],
                                        name: str, value: str) -> None:
    srv = make_server(flavour)
    with srv.admin() as admin:
        before = shm_configs(admin)
        reply = admin.execute("CONFIG", "SET", f"shm.{name}", value)
        assert isinstance(reply, Error), reply
        assert shm_configs(admin) == before
    assert not os.path.exists("/tmp/elsewhere.sock")
    round_trip_big_value(srv, 10)


# ---- INFO shm ----

@pytest.mark.parametrize(("flavour", "mode"), SERVERS, ids=SERVER_IDS)
def test_info_counts_sessions_and_commands(make_server: Callable[..., Server], flavour: str,
                                           mode: str) -> None:
    srv = make_server(flavour, mode)
    info = srv.info()
    for field in ("sessions", "sessions_opened", "sessions_closed", "sessions_killed",
                  "commands", "refused", "bytes_in", "bytes_out"):
        assert info[f"shm_{field}"] == "0", (field, info)
    assert info["shm_exec_mode"] == effective_exec_mode(srv, mode)

    conns = [srv.connect(shm="require") for _ in range(3)]
    try:
        info = srv.info()
        assert (info["shm_sessions"], info["shm_sessions_opened"]) == ("3", "3")
        singles, pipelined = 10, 15
        for i in range(singles):
            assert conns[0].execute("SET", f"k{i}", i) == Status(b"OK")
        replies = conns[1].execute_many([("GET", f"k{i}") for i in range(pipelined)])
        assert replies[:singles] == [Bulk(str(i).encode()) for i in range(singles)]
        assert replies[singles:] == [Nil("bulk")] * (pipelined - singles)
        info = srv.info()
        assert int(info["shm_commands"]) == singles + pipelined
        assert int(info["shm_bytes_in"]) > 0 and int(info["shm_bytes_out"]) > 0
        assert info["shm_refused"] == "0"
        # a refused command is counted as refused, not as run
        assert conns[2].execute("BLPOP", "nothing", "0.01") == Nil("array")
        info = srv.info()
        assert info["shm_refused"] == "1"
        assert int(info["shm_commands"]) == singles + pipelined
    finally:
        for conn in conns:
            conn.close()
    wait_until(lambda: srv.info()["shm_sessions"] == "0", "the sessions to end")
    info = srv.info()
    assert (info["shm_sessions_closed"], info["shm_sessions_killed"]) == ("3", "0")


# ---- loading and unloading ----

def test_module_loads_at_run_time(flavour: str, make_server: Callable[..., Server]) -> None:
    srv = make_server(flavour, load_module=False, config={"enable-module-command": "yes"})
    with srv.connect(shm="auto") as conn:
        assert conn.transport == "socket"
        assert conn.execute("PING") == Status(b"PONG")
    path = str(srv.dir / "late.sock")
    with srv.admin() as admin:
        reply = admin.execute("MODULE", "LOADEX", shmcli.module_path(), "CONFIG",
                              "shm.socket-path", path, "CONFIG", "shm.ring-size", "64kb")
        assert reply == Status(b"OK"), reply
        assert b"shm" in repr(admin.execute("MODULE", "LIST")).encode()
        assert handshake_ring(admin) == 64 * 1024
    assert srv.info()["shm_socket"] == path
    round_trip_big_value(srv, 100_000)


def test_module_unload_is_refused(flavour: str, make_server: Callable[..., Server]) -> None:
    srv = make_server(flavour, config={"enable-module-command": "yes"})
    with srv.connect(shm="require") as conn, srv.admin() as admin:
        assert conn.execute("SET", "k", "v") == Status(b"OK")
        over_socket = admin.execute("MODULE", "UNLOAD", "shm")
        assert isinstance(over_socket, Error), over_socket
        assert conn.execute("MODULE", "UNLOAD", "shm") == over_socket
        assert b"shm" in repr(admin.execute("MODULE", "LIST")).encode()
        assert conn.execute("GET", "k") == Bulk(b"v")
        assert conn.transport == "shm"
    assert srv.alive()
    assert "cannot be unloaded" in srv.log()
    round_trip_big_value(srv, 300_000)


def test_fast_path_falls_back_where_it_is_not_safe(flavour: str,
                                                   make_server: Callable[..., Server]) -> None:
    """With I/O threads (and on Redis 8, whatever the config) a module thread
    must not write to clients: fast-path is then refused with one log line,
    INFO says why, and the main-thread path serves, MONITOR included."""
    srv = make_server(flavour, "fast-path", config={"io-threads": "2"})
    info = srv.info()
    assert info["shm_exec_mode"] == "main-thread"
    assert info["shm_fast_path_unavailable"]
    assert srv.log().count("exec-mode fast-path is not safe here") == 1
    with srv.connect(shm="off") as monitor, srv.connect(shm="require") as conn:
        assert monitor.execute("MONITOR") == Status(b"OK")
        for i in range(50):
            assert conn.execute("SET", "k", i) == Status(b"OK")
        assert conn.transport == "shm"
    assert srv.alive()


def test_fast_path_runs_where_it_is_safe(flavour: str, make_server: Callable[..., Server]) -> None:
    """Everywhere but Redis 8 (client output from its main thread only)."""
    srv = make_server(flavour, "fast-path")
    assert srv.info()["shm_exec_mode"] == effective_exec_mode(srv, "fast-path")
