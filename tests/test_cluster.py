"""`-c` against a real local Redis Cluster (tests/cluster_nodes.py): three
masters, the shm module on nodes 0 and 2, not on node 1.

The real redis-cli (7.0.15) is the reference: each differential case runs
it and shmcli on the same arguments and stdin, each after the same reset of
the data, and compares stdout, stderr and the exit code.  What redis-cli
does (cliReadReply, issueCommandRepeat): MOVED and ASK are followed to the
node they name, with ASKING first for ASK, and the whole repeat count runs
there; the REPL (the shell and the stdin mode) prints "-> Redirected to slot
[N] located at host:port" first, the one-shot mode and --eval say nothing;
the node stays the one later commands go to, and the prompt names it.

Towards a node with the module, commands go over a shared-memory session.
A command whose keys the node does not serve is refused by the server's own
slot check inside RedisModule_Call, so the module answers -SHMFALLBACK and
the socket answers MOVED, ASK, CROSSSLOT or TRYAGAIN with its own flags
(ASKING, READONLY), which only the socket has: those commands are refused
over shared memory too.  The raw-session tests check the module alone; the
others check shmcli end to end.
"""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pexpect
import pytest
from cli_diff import REDIS_CLI, SHMCLI, run_tool
from cluster_nodes import Cluster, make_cluster_node
from servers import Server, free_port
from test_fallback import SKIPPED, RawSession
from test_repl import finish, spawn

from shmcli.cluster import parse_redirect
from shmcli.resp import NOT_ENOUGH, Bulk, Error, Integer, Nil, Reader, Status

Result = subprocess.CompletedProcess[bytes]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    nodes = Cluster(module=(True, False, True)).start()
    yield nodes
    nodes.cleanup()


@pytest.fixture
def keys(cluster: Cluster) -> Iterator[Keys]:
    keys = Keys(cluster)
    keys.reset()
    yield keys
    for node in cluster.nodes:
        assert node.alive(), f"node {node.port} died:\n{node.log()[-3000:]}"


class Keys:
    """Keys in each node's slots, and the data every differential run starts from."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.n0, self.n1, self.n2 = cluster.nodes
        self.here = cluster.key_on(self.n0, "here")  # on node 0, where the runs start
        self.value = cluster.key_on(self.n1, "value")  # "v", on node 1 (no module)
        self.counter = cluster.key_on(self.n2, "counter")  # absent, on node 2 (module)
        self.missing = cluster.key_on(self.n2, "missing")  # absent, on node 2
        self.near = cluster.key_on(self.n0, "near")  # absent, on node 0, not here's slot
        assert cluster.slot(self.near) != cluster.slot(self.here)

    def reset(self) -> None:
        for node in self.cluster.nodes:
            self.cluster.call(node, "FLUSHALL")
        self.cluster.call(self.n0, "SET", self.here, "h")
        self.cluster.call(self.n1, "SET", self.value, "v")

    def slot(self, key: str) -> int:
        return self.cluster.slot(key)

    def both(self, argv: list[str], node: Server | None = None, stdin: bytes = b"",
             env: dict[str, str] | None = None, cluster_mode: bool = True,
             reset: Callable[[], None] | None = None) -> tuple[Result, Result]:
        """(redis-cli, shmcli), each run from the same data, against node
        (node 0 by default)."""
        target = ["-c"] if cluster_mode else []
        target += ["-p", str((node or self.n0).port)]
        results = []
        for tool in (REDIS_CLI, SHMCLI):
            (reset or self.reset)()
            results.append(run_tool(tool, [*target, *argv], stdin, env))
        return results[0], results[1]


def assert_same(theirs: Result, ours: Result) -> None:
    assert (ours.stdout, ours.stderr, ours.returncode) == \
        (theirs.stdout, theirs.stderr, theirs.returncode)


def redirect_line(slot: int, node: Server) -> bytes:
    return b"-> Redirected to slot [%d] located at 127.0.0.1:%d\n" % (slot, node.port)


# ---- reading a redirection ----

@pytest.mark.parametrize(("line", "expected"), [
    (b"MOVED 3999 127.0.0.1:6381", (3999, "127.0.0.1", 6381, False)),
    (b"ASK 3999 127.0.0.1:6381", (3999, "127.0.0.1", 6381, True)),
    (b"MOVED 1 ::1:7000", (1, "::1", 7000, False)),  # split at the last colon
    (b"MOVED 5 node-a.example:7001", (5, "node-a.example", 7001, False)),
    (b"MOVED 12", None),  # redis-cli would read past the line: left as an error
    (b"MOVED 12 nocolon", None),
    (b"MOVEDX 12 h:1", None),
    (b"ERR MOVED 12 h:1", None),
])
def test_parse_redirect(line: bytes, expected: tuple[object, ...] | None) -> None:
    redirect = parse_redirect(Error(line))
    if expected is None:
        assert redirect is None
    else:
        assert redirect is not None
        assert (redirect.slot, redirect.host, redirect.port, redirect.ask) == expected


def test_redirect_line() -> None:
    redirect = parse_redirect(Error(b"ASK 866 ::1:7002"))
    assert redirect is not None
    assert redirect.message == b"-> Redirected to slot [866] located at ::1:7002\n"
    assert parse_redirect(Bulk(b"MOVED 1 h:1")) is None  # only an error reply redirects


# ---- one-shot ----

@pytest.mark.parametrize("case", [
    "set", "get", "get-missing", "repeat", "exit-on-error", "local", "crossslot",
    "crossslot-local", "tty", "no-cluster-mode", "interval"])
def test_one_shot_follows_moved_as_redis_cli(keys: Keys, case: str) -> None:
    argv, env, cluster_mode = {
        "set": (["SET", keys.value, "w"], None, True),
        "get": (["GET", keys.value], None, True),
        "get-missing": (["GET", keys.missing], None, True),
        "repeat": (["-r", "3", "INCR", keys.counter], None, True),  # all 3 on node 2
        "exit-on-error": (["-e", "GET", keys.value], None, True),  # -e: MOVED is no error
        "local": (["GET", keys.here], None, True),
        "crossslot": (["MGET", keys.value, keys.missing], None, True),
        "crossslot-local": (["MGET", keys.here, keys.near], None, True),  # both on node 0
        "tty": (["GET", keys.value], {"FAKETTY": "1"}, True),  # no redirect line
        "no-cluster-mode": (["GET", keys.value], None, False),  # MOVED is the reply
        "interval": (["-r", "2", "-i", "0.01", "INCR", keys.counter], None, True),
    }[case]
    theirs, ours = keys.both(argv, env=env, cluster_mode=cluster_mode)
    assert_same(theirs, ours)
    assert theirs.returncode == 0


def test_one_shot_writes_land_on_the_owner(keys: Keys) -> None:
    ours = run_tool(SHMCLI, ["-c", "-p", str(keys.n0.port), "SET", keys.counter, "42"])
    assert (ours.stdout, ours.returncode) == (b"OK\n", 0)
    assert keys.cluster.call(keys.n2, "GET", keys.counter).data == b"42"  # type: ignore[attr-defined]


def test_eval_follows_moved(keys: Keys, tmp_path: Path) -> None:
    script = tmp_path / "script.lua"
    script.write_text("return redis.call('GET', KEYS[1])")
    theirs, ours = keys.both(["--eval", str(script), keys.value])
    assert_same(theirs, ours)
    assert ours.stdout == b"v\n"


# ---- stdin mode ----

def test_stdin_mode_across_nodes(keys: Keys) -> None:
    lines = [
        f"SET {keys.counter} 10",  # node 2
        f"INCR {keys.counter}",  # still node 2: no redirect
        f"GET {keys.value}",  # node 1
        f"3 INCR {keys.counter}",  # node 2, three times
        f"GET {keys.missing}",  # node 2: no redirect
        f"GET {keys.here}",  # back to node 0
        f"MGET {keys.value} {keys.here}",  # CROSSSLOT: an error, not a redirect
        "PING",
    ]
    stdin = "".join(line + "\n" for line in lines).encode()
    theirs, ours = keys.both([], stdin=stdin)
    assert_same(theirs, ours)
    assert ours.stdout.startswith(redirect_line(keys.slot(keys.counter), keys.n2) + b"OK\n11\n")
    assert redirect_line(keys.slot(keys.value), keys.n1) + b"v\n" in ours.stdout
    assert ours.stdout.count(b"-> Redirected") == 4  # nodes 2, 1, 2, 0


def test_stdin_mode_without_c_prints_moved(keys: Keys) -> None:
    theirs, ours = keys.both([], stdin=f"GET {keys.value}\n".encode(), cluster_mode=False)
    assert_same(theirs, ours)
    assert ours.stdout.startswith(b"MOVED ")


# ---- ASK ----

Migrating = tuple[Keys, str, Callable[[], None]]


@contextmanager
def slot_migrating(keys: Keys, source: Server, target: Server, name: str, value: str,
                   seeded: bool) -> Iterator[Migrating]:
    """The slot of a key of `source` is being migrated to `target`: `source`
    (MIGRATING) no longer has the key and answers ASK; `target` (IMPORTING)
    has it (`value`, once reset() ran: at once when `seeded`) and serves it
    after ASKING only.  Yields the keys, that key, and the reset for the
    differential runs; the slot is stable again afterwards."""
    cluster = keys.cluster
    key = cluster.key_on(source, name)
    slot = cluster.slot(key)

    def reset() -> None:
        keys.reset()
        with target.admin() as conn:
            assert conn.execute_many([("ASKING",), ("SET", key, value)]) == \
                [Status(b"OK"), Status(b"OK")]

    cluster.call(target, "CLUSTER", "SETSLOT", slot, "IMPORTING", cluster.node_id(source))
    cluster.call(source, "CLUSTER", "SETSLOT", slot, "MIGRATING", cluster.node_id(target))
    try:
        if seeded:
            reset()
        yield keys, key, reset
    finally:
        for node in cluster.nodes:
            cluster.call(node, "FLUSHALL")
        cluster.call(source, "CLUSTER", "SETSLOT", slot, "STABLE")
        cluster.call(target, "CLUSTER", "SETSLOT", slot, "STABLE")


@pytest.fixture
def migrating(keys: Keys) -> Iterator[Migrating]:
    """A slot of node 1 (no module) migrating to node 2."""
    with slot_migrating(keys, keys.n1, keys.n2, "moving", "moved", seeded=False) as state:
        yield state


def asking_calls(node: Server) -> int:
    stats = node.info("commandstats").get("cmdstat_asking", "calls=0")
    return int(stats.split(",")[0].split("=")[1])


def test_ask_sends_asking_first(migrating: Migrating) -> None:
    keys, key, reset = migrating
    before = asking_calls(keys.n2)
    theirs, ours = keys.both(["GET", key], node=keys.n1, reset=reset)
    assert_same(theirs, ours)
    assert ours.stdout == b"moved\n"  # without ASKING, node 2 would answer MOVED
    assert asking_calls(keys.n2) == before + 2 + 2  # the two resets, then one per run


def test_ask_in_stdin_mode(migrating: Migrating) -> None:
    """The second GET reaches node 2 without ASKING: MOVED back to node 1,
    which answers ASK again."""
    keys, key, reset = migrating
    theirs, ours = keys.both([], node=keys.n1, stdin=f"GET {key}\nGET {key}\n".encode(),
                             reset=reset)
    assert_same(theirs, ours)
    slot = keys.slot(key)
    assert ours.stdout == (redirect_line(slot, keys.n2) + b"moved\n"
                           + redirect_line(slot, keys.n1) + redirect_line(slot, keys.n2)
                           + b"moved\n")


# ---- a node that cannot be reached ----

class FakeNode:
    """A TCP server that answers every command with one line: `answer`, or
    the one `answers` has for the command's name."""

    def __init__(self, answer: bytes, answers: dict[bytes, bytes] | None = None) -> None:
        self.answer = answer
        self.answers = answers or {}
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(client,), daemon=True).start()

    def _answer(self, client: socket.socket) -> None:
        reader = Reader()
        with client:
            while chunk := client.recv(65536):
                reader.feed(chunk)
                while (request := reader.gets()) is not NOT_ENOUGH:
                    name = request.items[0].data.lower()  # type: ignore[union-attr]
                    client.sendall(self.answers.get(name, self.answer))

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        self.listener.close()
        self.thread.join(5)
        assert not self.thread.is_alive()


@pytest.fixture
def fake_node() -> Iterator[tuple[FakeNode, int]]:
    dead = free_port()  # nothing listens there
    node = FakeNode(b"-MOVED 42 127.0.0.1:%d\r\n" % dead)
    yield node, dead
    node.close()


def fake_pair(node: FakeNode, argv: list[str], stdin: bytes = b"") -> tuple[Result, Result]:
    return tuple(run_tool(tool, ["-c", "-p", str(node.port), *argv], stdin)  # type: ignore[return-value]
                 for tool in (REDIS_CLI, SHMCLI))


def test_redirect_to_an_unreachable_node(fake_node: tuple[FakeNode, int]) -> None:
    node, dead = fake_node
    theirs, ours = fake_pair(node, ["GET", "k"])
    assert_same(theirs, ours)
    assert ours.returncode == 1
    assert ours.stderr == b"Could not connect to Redis at 127.0.0.1:%d: Connection refused\n" % dead


def test_stdin_mode_goes_on_after_an_unreachable_node(fake_node: tuple[FakeNode, int]) -> None:
    """The next command tries the node the redirection named."""
    node, dead = fake_node
    theirs, ours = fake_pair(node, [], b"GET k\nPING\n")
    assert_same(theirs, ours)
    assert ours.stdout == b"-> Redirected to slot [42] located at 127.0.0.1:%d\n" % dead
    assert ours.stderr.count(b"Could not connect to Redis at 127.0.0.1:%d" % dead) == 2


def test_failed_auth_on_the_named_node() -> None:
    """cliConnect fails at AUTH: its line, then cliPrintContextError's
    "Error: " (no I/O error), exit 1, and the command is not issued."""
    refusing = FakeNode(b"-ERR unexpected\r\n",
                        {b"auth": b"-WRONGPASS invalid username-password pair\r\n"})
    first = FakeNode(b"-MOVED 7 127.0.0.1:%d\r\n" % refusing.port, {b"auth": b"+OK\r\n"})
    try:
        theirs, ours = fake_pair(first, ["-a", "pw", "--no-auth-warning", "GET", "k"])
    finally:
        first.close()
        refusing.close()
    assert_same(theirs, ours)
    assert ours.stderr == (b"AUTH failed: WRONGPASS invalid username-password pair\n"
                           b"Error: \n")
    assert ours.returncode == 1


# ---- the shell ----

def enter(child: pexpect.spawn, line: str) -> None:
    """A typed line and Enter (a carriage return: linenoise takes no \\n)."""
    child.send(line + "\r")


@pytest.mark.parametrize("tool", ["shmcli", "redis-cli"])
def test_shell_prompt_names_the_node(keys: Keys, tool: str, tmp_path: Path) -> None:
    """Run against redis-cli too: the same expectations hold for both."""
    child = spawn(["-c", "-p", str(keys.n0.port)], tmp_path / "history",
                  tool=SHMCLI if tool == "shmcli" else REDIS_CLI)
    child.expect_exact(f"127.0.0.1:{keys.n0.port}>")
    enter(child, f"get {keys.value}")
    child.expect_exact(f"-> Redirected to slot [{keys.slot(keys.value)}] located at "
                       f"127.0.0.1:{keys.n1.port}")
    child.expect_exact('"v"')
    child.expect_exact(f"127.0.0.1:{keys.n1.port}>")
    enter(child, f"set {keys.counter} 5")
    child.expect_exact(f"-> Redirected to slot [{keys.slot(keys.counter)}] located at "
                       f"127.0.0.1:{keys.n2.port}")
    child.expect_exact("OK")
    child.expect_exact(f"127.0.0.1:{keys.n2.port}>")
    enter(child, f"incr {keys.counter}")  # the same node: no redirect
    child.expect_exact("(integer) 6")
    child.expect_exact(f"127.0.0.1:{keys.n2.port}>")
    assert "Redirected" not in child.before
    assert finish(child) == 0


@pytest.mark.parametrize("tool", ["shmcli", "redis-cli"])
def test_shell_after_an_unreachable_node(fake_node: tuple[FakeNode, int], tool: str,
                                         tmp_path: Path) -> None:
    node, dead = fake_node
    child = spawn(["-c", "-p", str(node.port)], tmp_path / "history",
                  tool=SHMCLI if tool == "shmcli" else REDIS_CLI)
    child.expect_exact(f"127.0.0.1:{node.port}>")
    enter(child, "get k")
    child.expect_exact(f"-> Redirected to slot [42] located at 127.0.0.1:{dead}")
    child.expect_exact(f"Could not connect to Redis at 127.0.0.1:{dead}: Connection refused")
    child.expect_exact("not connected>")
    enter(child, "ping")  # tries the named node again
    child.expect_exact(f"Could not connect to Redis at 127.0.0.1:{dead}: Connection refused")
    child.expect_exact("not connected>")
    assert finish(child) == 0


# ---- transports ----

def transport(node: Server, key: str) -> bytes:
    ours = run_tool(SHMCLI, ["--verbose", "-c", "-p", str(node.port), "GET", key])
    assert ours.returncode == 0, ours
    return ours.stderr


def test_socket_towards_a_node_without_the_module(keys: Keys) -> None:
    assert transport(keys.n1, keys.value) == b"# transport: socket\n"
    assert transport(keys.n0, keys.value) == b"# transport: socket\n"  # redirected to node 1


def test_a_cluster_node_with_the_module_is_reached_over_shm(keys: Keys) -> None:
    before = shm_counters(keys.n0)
    assert transport(keys.n0, keys.here) == b"# transport: shm\n"
    assert shm_counters(keys.n0) == (before[0] + 1, before[1])
    assert transport(keys.n1, keys.missing) == b"# transport: shm\n"  # redirected to node 2


def test_standalone_server_with_c_still_uses_shm(make_server) -> None:
    srv: Server = make_server("redis")
    ours = run_tool(SHMCLI, ["--verbose", "-c", "-p", str(srv.port), "SET", "k", "v"])
    assert (ours.stdout, ours.stderr, ours.returncode) == (b"OK\n", b"# transport: shm\n", 0)


def test_no_error_counted_on_a_node_without_the_module(keys: Keys) -> None:
    """The client asks a bare HELLO whether the module is loaded: a node
    without it never sees SHM.HANDSHAKE (no unknown-command error)."""
    keys.cluster.call(keys.n1, "CONFIG", "RESETSTAT")
    transport(keys.n1, keys.value)
    transport(keys.n0, keys.value)  # redirected: MOVED counts on node 0 only
    assert keys.cluster.errors(keys.n1) == {}
    commands = keys.n1.info("commandstats")
    assert "cmdstat_hello" in commands and "cmdstat_get" in commands


def test_no_error_counted_on_a_node_with_the_module(keys: Keys) -> None:
    keys.cluster.call(keys.n0, "CONFIG", "RESETSTAT")
    transport(keys.n0, keys.here)
    assert keys.cluster.errors(keys.n0) == {}


# ---- shared memory on a cluster node ----
#
# Node 0 and node 2 have the module.  The module runs what the node serves
# and refuses the rest (RedisModule_Call's own slot check, errno EPERM); the
# socket then answers as it would have.  Counters are INFO shm's, read over
# the admin socket, so only the sessions move them.

NOT_SERVED = b"-SHMFALLBACK not served by this cluster node: the socket answers\r\n"
SEVERAL_SLOTS = b"-SHMFALLBACK keys in more than one slot: the socket answers\r\n"
FLAG_REFUSAL = b"-SHMFALLBACK connection flag: runs on the socket\r\n"


def shm_counters(node: Server) -> tuple[int, int]:
    """(shm_commands, shm_refused) of the node's INFO shm."""
    info = node.info("shm")
    return int(info["shm_commands"]), int(info["shm_refused"])


def calls(node: Server, command: str) -> int:
    stats = node.info("commandstats").get(f"cmdstat_{command}", "calls=0")
    return int(stats.split(",")[0].split("=")[1])


@pytest.fixture
def raw(keys: Keys) -> Iterator[RawSession]:
    """A bare session on node 0 (no client logic: the module's own answers)."""
    session = RawSession(keys.n0)
    yield session
    session.close()


def test_raw_session_runs_the_keys_of_its_node(keys: Keys, raw: RawSession) -> None:
    before = shm_counters(keys.n0)
    assert raw.call("GET", keys.here) == b"$1\r\nh\r\n"
    assert raw.call("SET", keys.near, "n") == b"+OK\r\n"
    assert raw.call("MGET", keys.near, f"{{{keys.near}}}x") == b"*2\r\n$1\r\nn\r\n$-1\r\n"
    assert raw.call("SELECT", "1") == b"-ERR SELECT is not allowed in cluster mode\r\n"
    assert raw.call("SELECT", "0") == b"+OK\r\n"
    assert shm_counters(keys.n0) == (before[0] + 5, before[1])
    assert keys.cluster.call(keys.n0, "GET", keys.near) == Bulk(b"n")


@pytest.mark.parametrize("case", [
    "get-node-1", "set-node-1", "set-node-2", "crossslot-local", "crossslot-nodes",
    "multi-key-node-1"])
def test_raw_session_refuses_keys_its_node_does_not_serve(keys: Keys, raw: RawSession,
                                                          case: str) -> None:
    """Nothing runs: no write lands on node 0, and the session refuses
    until RESUME, as after any refusal."""
    argv = {
        "get-node-1": ("GET", keys.value),
        "set-node-1": ("SET", keys.value, "x"),
        "set-node-2": ("SET", keys.counter, "x"),
        "crossslot-local": ("MSET", keys.here, "x", keys.near, "y"),
        "crossslot-nodes": ("MGET", keys.here, keys.value),
        "multi-key-node-1": ("DEL", keys.value, f"{{{keys.value}}}x"),
    }[case]
    before = shm_counters(keys.n0)
    # keys of two slots are refused before RedisModule_Call where the server
    # gives a key's slot (Redis 7.4+, Valkey 8+: command_call.c)
    assert raw.call(*argv) in ((NOT_SERVED, SEVERAL_SLOTS) if case.startswith("crossslot")
                               else (NOT_SERVED,))
    assert shm_counters(keys.n0) == (before[0], before[1] + 1)
    assert raw.call("GET", keys.here) == SKIPPED
    raw.channel.resume()
    assert raw.call("GET", keys.here) == b"$1\r\nh\r\n"
    assert keys.cluster.call(keys.n0, "DBSIZE") == Integer(1)  # only `here`
    assert keys.cluster.call(keys.n1, "GET", keys.value) == Bulk(b"v")


@pytest.mark.parametrize("command", [
    ("ASKING",), ("READONLY",), ("READWRITE",), ("asking",)])
def test_raw_session_refuses_connection_flags(keys: Keys, raw: RawSession,
                                              command: tuple[str, ...]) -> None:
    before = shm_counters(keys.n0)
    assert raw.call(*command) == FLAG_REFUSAL
    assert shm_counters(keys.n0) == (before[0], before[1] + 1)
    raw.channel.resume()


@pytest.mark.parametrize("command", [("CLUSTER", "SLOTS"), ("CLUSTER", "INFO"),
                                     ("CLUSTER", "KEYSLOT", "k")])
def test_raw_session_refuses_cluster(keys: Keys, raw: RawSession,
                                     command: tuple[str, ...]) -> None:
    """CLUSTER's replies depend on the calling connection (TLS, IPv6)."""
    assert raw.call(*command) == b"-SHMFALLBACK CLUSTER needs the socket\r\n"
    raw.channel.resume()


@pytest.mark.parametrize("cluster_mode", [True, False], ids=["c", "no-c"])
@pytest.mark.parametrize("case", ["get-node-1", "set-node-2", "crossslot-local", "here"])
def test_shmcli_over_shm_falls_back_for_keys_of_other_nodes(keys: Keys, case: str,
                                                            cluster_mode: bool) -> None:
    """The refusal costs nothing visible: redis-cli's output, with -c
    (followed) and without (MOVED or CROSSSLOT printed)."""
    argv, commands, refused = {
        "get-node-1": (["GET", keys.value], 0, 1),
        "set-node-2": (["SET", keys.counter, "1"], 0, 1),
        "crossslot-local": (["MGET", keys.here, keys.near], 0, 1),
        "here": (["GET", keys.here], 1, 0),
    }[case]
    before = shm_counters(keys.n0)
    theirs, ours = keys.both(argv, cluster_mode=cluster_mode)
    assert_same(theirs, ours)
    assert shm_counters(keys.n0) == (before[0] + commands, before[1] + refused)


def test_stdin_mode_over_shm_across_nodes(keys: Keys) -> None:
    """Node 0 and node 2 over shm, node 1 over its socket, SELECT refused by
    the server in cluster mode, READONLY and ASKING on the socket."""
    lines = [
        f"GET {keys.here}",  # node 0, shm
        "SELECT 1",  # the server's error, over shm
        "READONLY",  # refused: the socket's OK
        "READWRITE",
        f"MSET {keys.here} a {keys.near} b",  # CROSSSLOT from the socket
        f"SET {keys.counter} 1",  # refused, MOVED to node 2 (shm there)
        f"INCR {keys.counter}",
        f"GET {keys.value}",  # node 1 (socket)
        f"GET {keys.here}",  # back to node 0
    ]
    stdin = "".join(line + "\n" for line in lines).encode()
    before = {node.port: shm_counters(node) for node in (keys.n0, keys.n2)}
    theirs, ours = keys.both([], stdin=stdin)
    assert_same(theirs, ours)
    assert b"SELECT is not allowed in cluster mode" in ours.stdout
    assert b"CROSSSLOT" in ours.stdout
    # node 0: GET, SELECT and the last GET ran; READONLY, READWRITE, MSET
    # and SET were refused (the GET of node 1's key is asked on node 2)
    assert shm_counters(keys.n0) == (before[keys.n0.port][0] + 3, before[keys.n0.port][1] + 4)
    # node 2: SET and INCR ran; the GET of node 1's key was refused
    assert shm_counters(keys.n2) == (before[keys.n2.port][0] + 2, before[keys.n2.port][1] + 1)


def test_readonly_runs_on_the_socket(keys: Keys) -> None:
    with keys.n0.connect(shm="require") as conn:
        before = shm_counters(keys.n0), calls(keys.n0, "readonly")
        assert conn.execute("READONLY") == Status(b"OK")
        assert conn.last_transport == "socket"
        assert conn.execute("GET", keys.here) == Bulk(b"h")
        assert conn.last_transport == "shm"
        assert conn.execute("READWRITE") == Status(b"OK")
        assert conn.last_transport == "socket"
        assert (shm_counters(keys.n0), calls(keys.n0, "readonly")) == \
            ((before[0][0] + 1, before[0][1] + 2), before[1] + 1)


@pytest.fixture
def migrating_from_node_0(keys: Keys) -> Iterator[Migrating]:
    """A slot of node 0 migrating to node 2, both with the module."""
    with slot_migrating(keys, keys.n0, keys.n2, "leaving", "arrived", seeded=True) as state:
        yield state


def test_raw_sessions_refuse_a_migrating_slot(migrating_from_node_0: Migrating) -> None:
    """Node 0's module refuses the key it no longer has (the socket says
    ASK); node 2's refuses the key of its IMPORTING slot, having no ASKING
    (the socket says MOVED, or serves it after ASKING)."""
    keys, key, _ = migrating_from_node_0
    for node in (keys.n0, keys.n2):
        session = RawSession(node)
        try:
            assert session.call("GET", key) == NOT_SERVED
        finally:
            session.close()


def test_ask_over_shm_from_node_0_to_node_2(migrating_from_node_0: Migrating) -> None:
    """GET refused on node 0 (ASK from its socket); on node 2 ASKING and
    the GET after it go straight to the socket (the flag is the socket's
    client's): the session is not asked."""
    keys, key, reset = migrating_from_node_0
    before = {node.port: (shm_counters(node), calls(node, "asking"), calls(node, "get"))
              for node in (keys.n0, keys.n2)}
    theirs, ours = keys.both(["GET", key], reset=reset)
    assert_same(theirs, ours)
    assert ours.stdout == b"arrived\n"
    (c0, r0), _, _ = before[keys.n0.port]
    (c2, r2), asking2, get2 = before[keys.n2.port]
    assert shm_counters(keys.n0) == (c0, r0 + 1)
    assert shm_counters(keys.n2) == (c2, r2)
    # the resets' two ASKING, then one per run; one GET per run on the socket
    assert (calls(keys.n2, "asking"), calls(keys.n2, "get")) == (asking2 + 2 + 2, get2 + 2)


@pytest.mark.parametrize("pipelined", [True, False])
def test_asking_and_its_command_land_on_the_socket(migrating_from_node_0: Migrating,
                                                   pipelined: bool) -> None:
    keys, key, _ = migrating_from_node_0
    with keys.n2.connect(shm="require") as conn:
        before = calls(keys.n2, "asking"), calls(keys.n2, "get")
        if pipelined:
            replies = conn.execute_many([("ASKING",), ("GET", key)])
        else:
            replies = [conn.execute("ASKING"), conn.execute("GET", key)]
        assert replies == [Status(b"OK"), Bulk(b"arrived")]
        assert conn.last_transport == "socket"
        reply = conn.execute("GET", key)  # no ASKING: node 0 owns the slot
        assert isinstance(reply, Error) and reply.message.startswith("MOVED ")
        # one ASKING and one GET ran, both on the socket; the MOVED is a
        # rejected call, not a call
        assert (calls(keys.n2, "asking"), calls(keys.n2, "get")) == (before[0] + 1, before[1] + 1)
        assert isinstance(conn.execute("GET", keys.missing), Nil)  # node 2's own slot
        assert conn.last_transport == "shm"


@pytest.fixture(scope="module")
def lone_node() -> Iterator[Server]:
    """A cluster node alone, serving slots 0-100 only: cluster_state:fail."""
    node = make_cluster_node(Server("redis", load_module=True, name="cluster-lone"), "lone")
    try:
        node.start()
        Cluster.call(node, "CLUSTER", "ADDSLOTSRANGE", 0, 100)
        yield node
    finally:
        node.cleanup()


def key_in_slots(node: Server, first: int, last: int) -> str:
    for number in range(100_000):
        slot = Cluster.call(node, "CLUSTER", "KEYSLOT", f"k:{number}")
        assert isinstance(slot, Integer)
        if first <= slot.value <= last:
            return f"k:{number}"
    raise AssertionError("no key")


@pytest.mark.parametrize("served", [True, False], ids=["bound-slot", "unbound-slot"])
def test_cluster_down_is_the_sockets_answer(lone_node: Server, served: bool) -> None:
    """While the cluster is down (ENETDOWN inside RedisModule_Call for a
    slot of this node, EPERM for an unbound one) the session refuses and the
    socket says CLUSTERDOWN; a keyless command still runs over shm."""
    assert Cluster.call(lone_node, "CLUSTER", "INFO").data.startswith(  # type: ignore[attr-defined]
        b"cluster_state:fail")
    key = key_in_slots(lone_node, 0, 100) if served else key_in_slots(lone_node, 101, 16383)
    session = RawSession(lone_node)
    try:
        assert session.call("PING") == b"+PONG\r\n"
        assert session.call("GET", key) == NOT_SERVED
    finally:
        session.close()
    before = shm_counters(lone_node)
    theirs, ours = (run_tool(tool, ["-c", "-p", str(lone_node.port), "GET", key])
                    for tool in (REDIS_CLI, SHMCLI))
    assert_same(theirs, ours)
    assert ours.stdout.startswith(b"CLUSTERDOWN ")
    assert shm_counters(lone_node) == (before[0], before[1] + 1)
