"""CLIENT CAPA redirect on a Valkey replica: what the socket redirects, shared memory refuses.

On a Valkey 8+ replica outside cluster mode, a connection that sent `CLIENT
CAPA redirect` gets `-REDIRECT host:port` on its socket for writes, and for
reads unless it sent READONLY.  RedisModule_Call cannot see a connection's
capabilities, so the module watches for them (client_capabilities.c, a
command filter) and, while the server is a replica, refuses every command
such a connection's session would run through RedisModule_Call: the socket
answers instead.  Checked here on real primaries and replicas, each session
against its own control connection's socket:

* after CLIENT CAPA redirect (any case, any position, the server's NUL
  reading, queued in MULTI, under a renamed CLIENT) reads and writes are
  refused while the socket redirects them; the emulated connection commands
  still answer as the socket does; after READONLY the socket serves reads
  and the session still refuses them (they go to the socket: same reply);
* without it, and for every other connection, reads are served on the
  replica; on the primary CAPA changes nothing;
* the role is read per request (REPLICAOF NO ONE and back);
* the table holds one entry per marked open connection and forgets closed
  ones (INFO shm capa_redirect_clients);
* connections older than a module loaded at run time count as marked;
* shmcli's Connection falls back to the socket: the socket's -REDIRECT;
* Redis has no CLIENT CAPA: nothing changes there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import pytest
from servers import EXEC_MODES, FLAVOURS, RawSocket, Server, shm_stat, wait_until

import shmcli
from shmcli.channel import ShmChannel
from shmcli.resp import Array, Bulk, Error, Integer, Status, parse_one
from shmcli.resp import encode_command as encode

VALKEYS = [f for f in FLAVOURS if f.startswith("valkey-")]
REDISES = [f for f in FLAVOURS if f.startswith("redis-")]
VALKEY_KINDS = [(f, m) for f in VALKEYS for m in EXEC_MODES]

REFUSED = b"-SHMFALLBACK "
FILTER_LOG = "shm: watching for CLIENT CAPA redirect"
CAPA = ("CLIENT", "CAPA", "redirect")

# Reads and writes the socket redirects (DBSIZE and SCAN are reads too).
READS: list[tuple[str, ...]] = [("GET", "k"), ("MGET", "k", "nope"), ("EXISTS", "k"),
                                ("STRLEN", "k"), ("TTL", "k"), ("DBSIZE",), ("SCAN", "0")]
WRITES: list[tuple[str, ...]] = [("SET", "k", "other"), ("INCR", "n"), ("DEL", "k"),
                                 ("EXPIRE", "k", "100")]
# Neither: the socket answers them; the session answers alike or refuses.
NEITHER: list[tuple[str, ...]] = [("PING",), ("ECHO", "hi")]
# Emulated by the module: still answered over shared memory.
EMULATED: list[tuple[str, ...]] = [("CLIENT", "ID"), ("CLIENT", "GETNAME"), ("SELECT", "0")]


class Bound:
    """A control connection (raw socket) and the raw session bound to it, so
    that each command's reply over shared memory can be set beside the same
    connection's socket reply."""

    def __init__(self, where: Server | RawSocket) -> None:
        self.sock = RawSocket(where.unix_socket) if isinstance(where, Server) else where
        reply = parse_one(self.sock.call("SHM.HANDSHAKE"))
        assert isinstance(reply, Array), reply
        token, path, ring = reply.items[:3]
        assert isinstance(token, Bulk) and isinstance(path, Bulk) and isinstance(ring, Integer)
        self.channel = ShmChannel(path.data.decode(), token.data.decode(), ring.value, 10.0)

    def shm(self, *args: str | bytes) -> bytes:
        reply = self.channel.call(encode(*args))
        if reply.startswith(REFUSED):
            self.channel.resume()
        return reply

    def socket(self, *args: str | bytes) -> bytes:
        return self.sock.call(*args)

    def close(self) -> None:
        self.channel.close()
        self.sock.close()

    def __enter__(self) -> Bound:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_pair(primary: Server, replica: Server) -> tuple[Server, Server]:
    """Start a replica of `primary` and wait, bounded, for its link and data."""
    replica.config["replicaof"] = f"127.0.0.1 {primary.port}"
    replica.start()
    with primary.admin() as conn:
        assert conn.execute("SET", "k", "v") == Status(b"OK")
    wait_link(replica)
    wait_until(lambda: admin(replica, "GET", "k") == Bulk(b"v"), "the key on the replica")
    return primary, replica


def wait_link(replica: Server) -> None:
    wait_until(lambda: replica.info("replication").get("master_link_status") == "up",
               "the replica's link to its primary")


def admin(srv: Server, *args: str) -> object:
    with srv.admin() as conn:
        return conn.execute(*args)


def primary_config() -> dict[str, str]:
    return {"repl-diskless-sync-delay": "0"}


def marked(srv: Server) -> int:
    return shm_stat(srv, "capa_redirect_clients")


def assert_redirected(bound: Bound, commands: Sequence[tuple[str, ...]]) -> None:
    for cmd in commands:
        over_shm = bound.shm(*cmd)
        over_socket = bound.socket(*cmd)
        assert over_shm.startswith(REFUSED), (cmd, over_shm)
        assert over_socket.startswith(b"-REDIRECT "), (cmd, over_socket)


def assert_served(bound: Bound, commands: Sequence[tuple[str, ...]]) -> None:
    for cmd in commands:
        over_shm = bound.shm(*cmd)
        assert not over_shm.startswith(REFUSED), (cmd, over_shm)
        assert over_shm == bound.socket(*cmd), cmd


@pytest.fixture(scope="module", params=VALKEY_KINDS, ids=[f"{f}-{m}" for f, m in VALKEY_KINDS])
def shared_pair(request: pytest.FixtureRequest) -> Iterator[tuple[Server, Server]]:
    flavour, mode = request.param
    primary = Server(flavour, mode, primary_config(), name=f"{flavour}-{mode}-primary").start()
    replica = Server(flavour, mode, name=f"{flavour}-{mode}-replica")
    try:
        yield start_pair(primary, replica)
    finally:
        replica.cleanup()
        primary.cleanup()


@pytest.fixture
def pair(shared_pair: tuple[Server, Server]) -> tuple[Server, Server]:
    """The shared pair once the connections of earlier tests are forgotten."""
    for srv in shared_pair:
        assert srv.alive(), srv.log()[-3000:]
        wait_until(lambda srv=srv: marked(srv) == 0, "earlier tests' connections to be forgotten")
    return shared_pair


# ---- the replica ----

def test_capa_redirect_sends_reads_and_writes_to_the_socket(pair: tuple[Server, Server]) -> None:
    _, replica = pair
    with Bound(replica) as bound:
        assert_served(bound, [("GET", "k")])  # before CAPA: served on the replica
        assert bound.socket(*CAPA) == b"+OK\r\n"
        assert marked(replica) == 1
        assert FILTER_LOG in replica.log()
        assert_redirected(bound, READS + WRITES)
        for cmd in NEITHER:
            over_shm = bound.shm(*cmd)
            assert over_shm.startswith(REFUSED) or over_shm == bound.socket(*cmd), cmd
        assert_served(bound, EMULATED)
        # READONLY: the socket serves reads again; the session leaves them to it
        assert bound.socket("READONLY") == b"+OK\r\n"
        for cmd in READS:
            over_shm, over_socket = bound.shm(*cmd), bound.socket(*cmd)
            assert over_shm.startswith(REFUSED), (cmd, over_shm)
            assert not over_socket.startswith(b"-"), (cmd, over_socket)
        assert_redirected(bound, WRITES)
    assert admin(replica, "GET", "k") == Bulk(b"v")  # no write reached the replica


def test_other_connections_are_not_affected(pair: tuple[Server, Server]) -> None:
    _, replica = pair
    with Bound(replica) as plain, Bound(replica) as capa, Bound(replica) as another:
        assert capa.socket(*CAPA) == b"+OK\r\n"
        assert_served(plain, READS + NEITHER + EMULATED)
        assert_served(another, READS)
        assert_redirected(capa, READS)
        # writes stay as they were: refused (a server guard), READONLY on the socket
        for bound in (plain, another):
            assert bound.shm("SET", "k", "x").startswith(REFUSED)
            assert bound.socket("SET", "k", "x").startswith(b"-READONLY ")
        assert marked(replica) == 1


NOT_CAPA_REDIRECT: list[list[tuple[str | bytes, ...]]] = [
    [("CLIENT", "CAPA", "redirectx")], [("CLIENT", "CAPA", "foo")], [("GET", "capa")],
    [("HGET", "capa", "redirect")]]


def test_the_forms_the_server_reads_as_capa_redirect(pair: tuple[Server, Server]) -> None:
    """Whatever the socket then redirects, the session refuses; a form the
    server does not take as CAPA redirect leaves reads served or refused,
    never different."""
    _, replica = pair
    forms: list[list[tuple[str | bytes, ...]]] = [
        [("client", "capa", "foo", "ReDiReCt")],
        [("CLIENT", "CAPA", "REDIRECT", "redirect")],
        [("CLIENT", "CAPA", b"redirect\0tail")],  # strcasecmp reads up to the NUL
        [("CLIENT", b"capa\0tail", "redirect")],  # Valkey 9.1 takes it as CAPA
        [("MULTI",), CAPA, ("EXEC",)],
        *NOT_CAPA_REDIRECT,
    ]
    for form in forms:
        with Bound(replica) as bound:
            for cmd in form:
                bound.socket(*cmd)
            over_socket = bound.socket("GET", "k")
            over_shm = bound.shm("GET", "k")
            if over_socket.startswith(b"-REDIRECT "):
                assert over_shm.startswith(REFUSED), (form, over_shm)
            else:
                assert over_socket == b"$1\r\nv\r\n", (form, over_socket)
                assert over_shm == over_socket or over_shm.startswith(REFUSED), form
            if form in NOT_CAPA_REDIRECT:
                assert over_shm == over_socket, form  # not marked: still served


def test_the_table_forgets_closed_connections(pair: tuple[Server, Server]) -> None:
    _, replica = pair
    bounds = [Bound(replica) for _ in range(5)]
    try:
        for bound in bounds:
            for _ in range(20):  # once or many times: one entry
                assert bound.socket(*CAPA) == b"+OK\r\n"
        assert marked(replica) == 5
        for bound in bounds[:3]:
            bound.close()
        wait_until(lambda: marked(replica) == 2, "three closed connections to be forgotten")
        assert_redirected(bounds[4], [("GET", "k")])
        with Bound(replica) as fresh:  # a new connection starts unmarked
            assert_served(fresh, [("GET", "k")])
            assert marked(replica) == 2
    finally:
        for bound in bounds[3:]:
            bound.close()
    wait_until(lambda: marked(replica) == 0, "every connection to be forgotten")


def test_a_shmcli_connection_gets_the_sockets_redirect(pair: tuple[Server, Server]) -> None:
    _, replica = pair
    with replica.connect(shm="require") as conn, replica.connect(shm="off") as oracle:
        assert conn.execute("GET", "k") == Bulk(b"v")
        assert conn.last_transport == "shm"
        for c in (conn, oracle):
            assert c.execute(*CAPA) == Status(b"OK")
        for cmd in (("GET", "k"), ("SET", "k", "x"), ("DBSIZE",)):
            reply = conn.execute(*cmd)
            assert isinstance(reply, Error) and reply.code == "REDIRECT", (cmd, reply)
            assert reply == oracle.execute(*cmd), cmd
            assert conn.last_transport == "socket"
        for c in (conn, oracle):
            assert c.execute("READONLY") == Status(b"OK")
        assert conn.execute("GET", "k") == oracle.execute("GET", "k") == Bulk(b"v")
        assert conn.execute("SET", "k", "x") == oracle.execute("SET", "k", "x")
        assert conn.transport == "shm"  # the session is still there


# ---- the primary ----

def test_on_the_primary_capa_changes_nothing(pair: tuple[Server, Server]) -> None:
    primary, _ = pair
    with Bound(primary) as bound:
        assert bound.socket(*CAPA) == b"+OK\r\n"
        assert marked(primary) == 1
        assert_served(bound, READS + NEITHER + EMULATED)
        assert bound.shm("SET", "p", "1") == b"+OK\r\n"
        assert bound.socket("GET", "p") == b"$1\r\n1\r\n"
        assert bound.shm("DEL", "p") == b":1\r\n"


# ---- dedicated servers ----

@pytest.mark.parametrize("flavour", VALKEYS)
def test_the_role_is_read_per_request(flavour: str,
                                      make_server: Callable[..., Server]) -> None:
    primary = make_server(flavour, config=primary_config())
    replica = make_server(flavour, start=False)
    start_pair(primary, replica)
    with Bound(replica) as bound, Bound(primary) as on_primary:
        for b in (bound, on_primary):
            assert b.socket(*CAPA) == b"+OK\r\n"
        assert_redirected(bound, [("GET", "k")])
        assert_served(on_primary, [("GET", "k")])
        # the replica promoted: its marked session is served
        assert admin(replica, "REPLICAOF", "NO", "ONE") == Status(b"OK")
        assert_served(bound, [("GET", "k"), ("SET", "k", "w")])
        # the old primary now its replica: its marked session is refused
        assert admin(primary, "REPLICAOF", "127.0.0.1", str(replica.port)) == Status(b"OK")
        wait_link(primary)
        assert_redirected(on_primary, [("GET", "k")])
        assert on_primary.socket("READONLY") == b"+OK\r\n"
        assert on_primary.shm("GET", "k").startswith(REFUSED)
        assert on_primary.socket("GET", "k") == b"$1\r\nw\r\n"
        assert_served(bound, [("GET", "k")])


class RenamedClient(Server):
    """A server where CLIENT is `myclient` (rename-command takes two words)."""

    def argv(self) -> list[str]:
        return [*super().argv(), "--rename-command", "CLIENT", "myclient"]


@pytest.mark.parametrize("flavour", VALKEYS)
def test_a_renamed_client_command_is_seen(flavour: str,
                                          make_server: Callable[..., Server]) -> None:
    primary = make_server(flavour, config=primary_config())
    replica = RenamedClient(flavour)
    try:
        start_pair(primary, replica)
        with Bound(replica) as bound, Bound(replica) as other:
            assert bound.socket("myclient", "capa", "redirect") == b"+OK\r\n"
            assert_redirected(bound, [("GET", "k")])
            assert_served(other, [("GET", "k")])
            # the old name is unknown: the socket's error; the session may refuse
            # more from then on (CLIENT renamed: any `capa ... redirect` counts)
            assert other.socket(*CAPA).startswith(b"-ERR unknown command")
            over_shm = other.shm("GET", "k")
            assert over_shm == other.socket("GET", "k") or over_shm.startswith(REFUSED)
    finally:
        replica.cleanup()


@pytest.mark.parametrize("flavour", VALKEYS)
def test_connections_older_than_the_module_count_as_marked(
        flavour: str, make_server: Callable[..., Server]) -> None:
    """Loaded at run time, the module cannot know what connections sent
    before: on a replica their sessions leave everything to the socket."""
    primary = make_server(flavour, config=primary_config())
    replica = make_server(flavour, load_module=False, start=False,
                          config={"enable-module-command": "yes"})
    start_pair(primary, replica)
    older_capa, older_plain = RawSocket(replica.unix_socket), RawSocket(replica.unix_socket)
    try:
        assert older_capa.call(*CAPA) == b"+OK\r\n"
        with replica.admin() as conn:
            assert conn.execute("MODULE", "LOADEX", shmcli.module_path(), "CONFIG",
                                "shm.socket-path", replica.shm_socket) == Status(b"OK")
        for sock, socket_get in ((older_capa, b"-REDIRECT "), (older_plain, b"$1\r\nv\r\n")):
            with Bound(sock) as bound:
                assert bound.shm("GET", "k").startswith(REFUSED)
                assert bound.socket("GET", "k").startswith(socket_get)
        with Bound(replica) as newer:
            assert_served(newer, [("GET", "k")])
        assert marked(replica) == 0
    finally:
        older_capa.close()
        older_plain.close()


# ---- Redis: no CLIENT CAPA ----

@pytest.mark.parametrize("flavour", REDISES)
def test_redis_has_no_capa_and_nothing_changes(flavour: str,
                                               make_server: Callable[..., Server]) -> None:
    primary = make_server(flavour, config=primary_config())
    replica = make_server(flavour, start=False)
    start_pair(primary, replica)
    with Bound(replica) as bound:
        reply = bound.socket(*CAPA)
        assert reply.startswith(b"-ERR unknown subcommand"), reply
        assert bound.shm(*CAPA).startswith(REFUSED)  # CLIENT CAPA: the socket's, as ever
        assert_served(bound, READS + NEITHER + EMULATED)
        assert marked(replica) == 0
    assert FILTER_LOG not in replica.log()  # no command filter either
