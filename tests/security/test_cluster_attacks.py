"""Attacks on sessions of cluster nodes: a session must not touch what the
node's socket would not serve to the same connection.

The module runs a session's command with RedisModule_Call, whose own slot
check (getNodeByQuery, after the ACL) uses the flags of the module's client:
no ASKING, no READONLY.  Whatever that check stops is refused (-SHMFALLBACK)
and the socket answers MOVED, ASK, CROSSSLOT, TRYAGAIN or CLUSTERDOWN.  Each
attack here runs a command over a raw session and over a fresh socket, each
after the same reset of the data, and holds the session to one of two
outcomes:

* "run": the session's reply and the data afterwards are the socket's;
* "refused": -SHMFALLBACK, and no node's data moved.

One real cluster per server family (tests/cluster_nodes.py: three masters,
the module on nodes 0 and 2, not on node 1) plus a replica of node 0 with the
module, reused by every test; tests that change the topology put it back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from cluster_nodes import Cluster, make_cluster_node
from sec_raw import RawSession, is_refusal, set_user, socket_as
from servers import Server, wait_until

from shmcli.resp import Array, Bulk, Status
from shmcli.testing import FLAVOURS, MAIN_SERVERS

NOT_SERVED = b"-SHMFALLBACK not served by this cluster node: the socket answers\r\n"
# refused before RedisModule_Call where the server gives a key's slot (command_call.c)
SEVERAL_SLOTS = b"-SHMFALLBACK keys in more than one slot: the socket answers\r\n"
Command = tuple[str | bytes | int, ...]
State = list[list[tuple[bytes, bytes]]]


def cluster_node(flavour: str, name: str) -> Server:
    return make_cluster_node(Server(flavour, load_module=True, name=name), name)


def role(node: Server) -> str:
    return node.info("replication")["role"]


@dataclass
class Nodes:
    cluster: Cluster
    replica: Server  # of node 0, with the module

    @property
    def all(self) -> list[Server]:
        return [*self.cluster.nodes, self.replica]

    def master_of_node_0(self) -> Server:
        return self.cluster.nodes[0] if role(self.cluster.nodes[0]) == "master" else self.replica

    def state(self) -> State:
        """Every key of every master, with its DUMP (the replica is left out:
        it follows its master a moment later)."""
        out = []
        for node in self.cluster.nodes:
            with node.admin() as conn:
                keys = conn.execute("KEYS", "*")
                assert isinstance(keys, Array)
                names = sorted(k.data for k in keys.items)  # type: ignore[union-attr]
                # ASKING: a key of an IMPORTING slot is MOVED without it
                replies = conn.execute_many([c for k in names for c in (("ASKING",), ("DUMP", k))])
            dumps = replies[1::2] if names else []
            out.append([(k, d.data) for k, d in zip(names, dumps, strict=True)])  # type: ignore[union-attr]
        return out


def add_replica(cluster: Cluster, of: Server, replica: Server) -> None:
    replica.start()
    cluster.call(of, "CLUSTER", "MEET", "127.0.0.1", replica.port, replica.config["cluster-port"])

    def replicating() -> bool:  # the new node must have learnt `of` first
        with replica.admin() as conn:
            reply = conn.execute("CLUSTER", "REPLICATE", cluster.node_id(of))
        return reply == Status(b"OK")

    wait_until(replicating, "CLUSTER REPLICATE on the new node", timeout=30)
    wait_until(lambda: replica.info("replication").get("master_link_status") == "up",
               "the replica's link", timeout=30)
    wait_until(lambda: cluster.cluster_info(replica).get("cluster_state") == "ok",
               "cluster_state:ok on the replica", timeout=30)


FAMILIES = [f for f in ("redis", "valkey") if MAIN_SERVERS.get(f)]


@pytest.fixture(scope="module", params=FAMILIES)
def nodes(request: pytest.FixtureRequest) -> Iterator[Nodes]:
    cluster = Cluster(module=(True, False, True), flavour=request.param)
    replica = cluster_node(request.param, "cluster-replica")
    try:
        cluster.start()
        add_replica(cluster, cluster.nodes[0], replica)
        yield Nodes(cluster, replica)
    finally:
        replica.cleanup()
        cluster.cleanup()


@pytest.fixture
def checked(nodes: Nodes) -> Iterator[Nodes]:
    yield nodes
    for node in nodes.all:
        assert node.alive(), f"node {node.port} died:\n{node.log()[-3000:]}"


def outcome(nodes: Nodes, node: Server, command: Command, reset: Callable[[], None],
            session: RawSession) -> tuple[str, bytes, bytes]:
    """("run" | "refused", the socket's reply, the session's), after checking
    that a run did what the socket did and a refusal did nothing."""
    reset()
    before = nodes.state()
    ours = session.call(*command)
    after_ours = nodes.state()
    reset()
    sock = socket_as(node)
    try:
        theirs = sock.call(*command)
    finally:
        sock.close()
    after_theirs = nodes.state()
    if is_refusal(ours):
        assert after_ours == before, f"{command!r} was refused but changed the data"
        return "refused", theirs, ours
    assert (ours, after_ours) == (theirs, after_theirs), f"{command!r}: shm differs"
    return "run", theirs, ours


# ---- keys of other slots, behind arguments the slot check must see ----

@dataclass
class Data:
    here: str  # node 0
    near: str  # node 0, another slot
    value: str  # node 1 (no module)
    dump: bytes

    def tagged(self, suffix: str) -> str:
        return f"{{{self.here}}}{suffix}"


@pytest.fixture
def data(checked: Nodes) -> Iterator[tuple[Nodes, Data, Callable[[], None]]]:
    cluster = checked.cluster
    n0, n1, _ = cluster.nodes
    here, near = cluster.key_on(n0, "here"), cluster.key_on(n0, "near")
    value = cluster.key_on(n1, "value")
    d = Data(here, near, value, b"")

    def reset() -> None:
        for node in cluster.nodes:
            cluster.call(node, "FLUSHALL")
        with n0.admin() as conn:
            conn.execute_many([
                ("SET", here, "h"), ("RPUSH", d.tagged("list"), "3", "1", "2"),
                ("SET", d.tagged("w_1"), "9"), ("SADD", d.tagged("set"), "a", "b"),
                ("GEOADD", d.tagged("geo"), "13.36", "38.11", "p"), ("WAIT", "1", "2000")])
        cluster.call(n1, "SET", value, "v")

    reset()
    dump = cluster.call(n0, "DUMP", here)
    assert isinstance(dump, Bulk)
    d.dump = dump.data
    yield checked, d, reset


def other_node_cases(d: Data, n1: Server) -> list[tuple[str, Command]]:
    L, S, G = d.tagged("list"), d.tagged("set"), d.tagged("geo")
    port = str(n1.port)
    return [
        # patterns of SORT: the command's own cluster rules, the same on both
        ("run", ("SORT", L, "BY", "w_*")),
        ("run", ("SORT", L, "GET", "w_*")),
        ("run", ("SORT", L, "BY", d.tagged("w_*"), "GET", d.tagged("w_*"))),
        ("refused", ("SORT", L, "STORE", d.value)),
        ("refused", ("SORT", L, "STORE", d.near)),
        # keys behind options and counts
        ("refused", ("GEORADIUS", G, "15", "37", "200", "km", "STORE", d.value)),
        ("refused", ("GEOSEARCHSTORE", d.value, G, "FROMMEMBER", "p", "BYRADIUS", "200", "km")),
        ("refused", ("ZUNIONSTORE", d.tagged("z"), "2", S, d.value)),
        ("refused", ("LMPOP", "2", L, d.value, "LEFT")),
        ("refused", ("SINTERCARD", "2", S, d.near)),
        ("refused", ("MIGRATE", "127.0.0.1", port, "", "0", "1000", "KEYS", d.value)),
        ("refused", ("MIGRATE", "127.0.0.1", port, d.value, "0", "1000")),
        # two keys, two slots
        ("refused", ("COPY", d.here, d.value)),
        ("refused", ("COPY", d.here, d.near)),
        ("refused", ("RENAME", d.here, d.near)),
        ("refused", ("SMOVE", S, d.value, "a")),
        ("refused", ("LMOVE", L, d.value, "LEFT", "LEFT")),
        ("refused", ("SINTERSTORE", d.value, S)),
        ("refused", ("BITOP", "AND", d.value, d.here)),
        ("refused", ("PFMERGE", d.value, d.here)),
        ("refused", ("MSETNX", d.here, "1", d.near, "2")),
        # one key of another node, whatever the command does with it
        ("refused", ("OBJECT", "ENCODING", d.value)),
        ("refused", ("MEMORY", "USAGE", d.value)),
        ("refused", ("DUMP", d.value)),
        ("refused", ("RESTORE", d.value, "0", d.dump)),
        ("refused", ("RESTORE-ASKING", d.value, "0", d.dump)),  # no importing slot here
        ("refused", ("PFDEBUG", "GETREG", d.value)),
        ("refused", ("SPUBLISH", d.value, "m")),  # a shard channel is a key
        # the node's own keys and keyless commands run
        ("run", ("COPY", d.here, d.tagged("copy"))),
        ("run", ("RESTORE-ASKING", d.near, "0", d.dump)),
        ("run", ("GEORADIUS", G, "15", "37", "200", "km", "STORE", d.tagged("g"))),
        ("run", ("MIGRATE", "127.0.0.1", port, d.here, "0", "1000", "COPY")),  # node 1 says MOVED
        ("run", ("SPUBLISH", d.here, "m")),
        ("run", ("PUBLISH", d.value, "m")),
        ("run", ("GET", "")),  # slot 0: node 0's
        ("run", ("DBSIZE",)),
        ("run", ("FLUSHALL",)),  # node 0's keys only, as on its socket
        # connection state, scripts, blocking: never over shm
        ("refused", ("ASKING",)),
        ("refused", ("READONLY",)),
        ("refused", ("CLUSTER", "COUNTKEYSINSLOT", "0")),
        ("refused", ("EVAL", "return redis.call('GET', KEYS[1])", "1", d.here)),
        ("refused", ("XREADGROUP", "GROUP", "g", "c", "STREAMS", d.tagged("s"), ">")),
        ("refused", ("SSUBSCRIBE", d.here)),
    ]


def test_keys_behind_arguments(data: tuple[Nodes, Data, Callable[[], None]]) -> None:
    nodes, d, reset = data
    n0, n1, _ = nodes.cluster.nodes
    assert nodes.cluster.owner(nodes.cluster.slot("")) is n0
    wrong = []
    with RawSession(n0) as session:
        for expected, command in other_node_cases(d, n1):
            got, theirs, ours = outcome(nodes, n0, command, reset, session)
            if got != expected:
                wrong.append(f"{command!r}: expected {expected}, shm {ours!r}, socket {theirs!r}")
            elif got == "refused" and command[0] not in ("ASKING", "READONLY", "CLUSTER", "EVAL",
                                                       "XREADGROUP", "SSUBSCRIBE"):
                if theirs.startswith(b"-CROSSSLOT "):
                    assert ours in (NOT_SERVED, SEVERAL_SLOTS), (command, ours)
                else:
                    assert (ours, theirs[:7]) == (NOT_SERVED, b"-MOVED "), (command, theirs)
    assert not wrong, "\n".join(wrong)


# ---- a slot being migrated ----

@pytest.fixture
def migrating(checked: Nodes) -> Iterator[tuple[Nodes, str, Callable[[], None]]]:
    """A slot of node 0 MIGRATING to node 2 (IMPORTING): node 0 still has
    {k}exists; node 2 already has {k}absent (which node 0 no longer has)."""
    cluster = checked.cluster
    n0, _, n2 = cluster.nodes
    tag = cluster.key_on(n0, "mig")
    slot = cluster.slot(tag)

    def reset() -> None:
        for node in cluster.nodes:
            cluster.call(node, "FLUSHALL")
        cluster.call(n0, "CLUSTER", "SETSLOT", slot, "STABLE")
        cluster.call(n0, "SET", f"{{{tag}}}exists", "e")
        cluster.call(n0, "CLUSTER", "SETSLOT", slot, "MIGRATING", cluster.node_id(n2))
        with n2.admin() as conn:
            assert conn.execute_many([("ASKING",), ("SET", f"{{{tag}}}absent", "a")]) == \
                [Status(b"OK"), Status(b"OK")]

    cluster.call(n2, "CLUSTER", "SETSLOT", slot, "IMPORTING", cluster.node_id(n0))
    try:
        reset()
        yield checked, tag, reset
    finally:
        for node in cluster.nodes:
            cluster.call(node, "FLUSHALL")
            cluster.call(node, "CLUSTER", "SETSLOT", slot, "STABLE")


def test_migrating_slot(migrating: tuple[Nodes, str, Callable[[], None]]) -> None:
    """The source serves the keys it still has, alone; anything needing a
    key it lost is ASK or TRYAGAIN on its socket.  The target serves
    nothing of the slot without ASKING, except RESTORE-ASKING, which the
    server lets in by itself on the socket too."""
    nodes, tag, reset = migrating
    n0, _, n2 = nodes.cluster.nodes
    ex, ab, new = f"{{{tag}}}exists", f"{{{tag}}}absent", f"{{{tag}}}new"
    dump = nodes.cluster.call(n0, "DUMP", ex)
    assert isinstance(dump, Bulk)
    cases: list[tuple[Server, str, Command, bytes]] = [
        (n0, "run", ("GET", ex), b"$1\r\ne\r\n"),
        (n0, "run", ("SET", ex, "x"), b"+OK\r\n"),
        (n0, "run", ("MIGRATE", "127.0.0.1", str(n2.port), ex, "0", "1000", "COPY", "REPLACE"),
         b"+OK\r\n"),
        (n0, "refused", ("GET", ab), b"-ASK "),
        (n0, "refused", ("SET", ab, "x"), b"-ASK "),
        (n0, "refused", ("RESTORE-ASKING", ab, "0", dump.data), b"-ASK "),
        (n0, "refused", ("MGET", ex, ab), b"-TRYAGAIN "),
        (n0, "refused", ("RENAME", ex, ab), b"-TRYAGAIN "),
        (n0, "refused", ("COPY", ex, ab), b"-TRYAGAIN "),
        (n2, "refused", ("GET", ab), b"-MOVED "),
        (n2, "refused", ("SET", new, "x"), b"-MOVED "),
        (n2, "refused", ("RESTORE", new, "0", dump.data), b"-MOVED "),
        (n2, "run", ("RESTORE-ASKING", new, "0", dump.data), b"+OK\r\n"),
    ]
    sessions = {n0.port: RawSession(n0), n2.port: RawSession(n2)}
    try:
        for node, expected, command, socket_starts in cases:
            got, theirs, ours = outcome(nodes, node, command, reset, sessions[node.port])
            assert (got, theirs[:len(socket_starts)]) == (expected, socket_starts), \
                (node.port, command, theirs, ours)
            if got == "refused":
                assert ours == NOT_SERVED, (command, ours)  # one slot: the server's check
    finally:
        for session in sessions.values():
            session.close()


# ---- the ACL first, then the slot ----

def test_acl_is_checked_before_the_slot(data: tuple[Nodes, Data, Callable[[], None]]) -> None:
    """As on the socket: a key the user may not touch is -NOPERM even in
    another node's slot (never a redirection that tells the key's owner
    first); a key it may touch there is the socket's MOVED."""
    nodes, d, reset = data
    n0 = nodes.cluster.nodes[0]
    set_user(n0, "limited", "on", ">pw", "~here:*", "~value:*", "+@all")
    forbidden = nodes.cluster.key_on(nodes.cluster.nodes[1], "secret")
    try:
        with RawSession(n0, "limited", "pw") as session:
            sock = socket_as(n0, "limited", "pw")
            try:
                theirs, ours = sock.call("GET", forbidden), session.call("GET", forbidden)
                assert theirs.startswith(b"-NOPERM ")
                # 7.2+ and Valkey word the denial as the socket does; 7.0 refuses it
                assert ours == theirs or ours.startswith(b"-SHMFALLBACK denied by ACL"), ours
                assert sock.call("GET", d.value).startswith(b"-MOVED ")
                assert session.call("GET", d.value) == NOT_SERVED
                assert session.call("GET", d.here) == b"$1\r\nh\r\n"
            finally:
                sock.close()
    finally:
        with n0.admin() as conn:
            conn.execute("ACL", "DELUSER", "limited")


# ---- a replica, READONLY, and a failover under open sessions ----

def test_replica_serves_only_what_its_socket_serves(checked: Nodes) -> None:
    """Keys of its master's slots are MOVED on a replica's socket (READONLY
    is the connection's own flag: it does not reach the session), keyless
    writes are READONLY errors; a shard channel of its master is served."""
    nodes = checked
    n0, replica = nodes.cluster.nodes[0], nodes.replica
    here = nodes.cluster.key_on(n0, "here")
    nodes.cluster.call(n0, "SET", here, "h")
    nodes.cluster.call(n0, "WAIT", "1", "2000")
    with RawSession(replica) as session:
        assert session.ctl.execute("READONLY") == Status(b"OK")  # the socket's flag
        assert session.ctl.execute("GET", here) == Bulk(b"h")
        sock = socket_as(replica)
        try:
            for command, socket_starts in [
                    (("GET", here), b"-MOVED "), (("SET", here, "x"), b"-MOVED "),
                    (("EXISTS", here), b"-MOVED "), (("FLUSHALL",), b"-READONLY "),
                    (("SPUBLISH", here, "m"), b":"), (("DBSIZE",), b":")]:
                theirs, ours = sock.call(*command), session.call(*command)
                assert theirs.startswith(socket_starts), (command, theirs)
                if socket_starts.startswith(b"-"):
                    assert is_refusal(ours), (command, ours)
                else:
                    assert ours == theirs, (command, ours)
        finally:
            sock.close()
    assert nodes.cluster.call(n0, "GET", here) == Bulk(b"h")


def failover(nodes: Nodes, to: Server, old: Server, *how: str) -> None:
    nodes.cluster.call(to, "CLUSTER", "FAILOVER", *how)
    wait_until(lambda: role(to) == "master" and role(old) == "slave", "the failover", timeout=30)
    wait_until(lambda: old.info("replication").get("master_link_status") == "up",
               "the old master's link", timeout=30)


def test_sessions_across_a_failover(checked: Nodes) -> None:
    """Sessions opened before CLUSTER FAILOVER follow the roles: the old
    master's refuses its old keys (MOVED on its socket), the new master's
    writes them."""
    nodes = checked
    n0, replica = nodes.cluster.nodes[0], nodes.replica
    here = nodes.cluster.key_on(n0, "here")
    old, new = RawSession(n0), RawSession(replica)
    try:
        assert old.call("SET", here, "before") == b"+OK\r\n"
        assert new.call("SET", here, "x") != b"+OK\r\n"
        failover(nodes, replica, n0)
        for command in (("SET", here, "after"), ("GET", here), ("DEL", here), ("FLUSHALL",)):
            assert is_refusal(old.call(*command)), command
        assert new.call("GET", here) == b"$6\r\nbefore\r\n"
        assert new.call("SET", here, "after") == b"+OK\r\n"
        sock = socket_as(n0)
        try:
            assert sock.call("SET", here, "x").startswith(b"-MOVED ")
        finally:
            sock.close()
    finally:
        old.close()
        new.close()
        # Back as the other tests expect it.  TAKEOVER: the masters would not
        # vote for a replica of the same shard again within 2 node timeouts.
        wait_until(lambda: n0.info("replication").get("slave_repl_offset")
                   == replica.info("replication").get("master_repl_offset"),
                   "node 0 in sync", timeout=30)
        failover(nodes, n0, replica, "TAKEOVER")
    assert nodes.master_of_node_0() is n0
    assert nodes.cluster.call(n0, "GET", here) == Bulk(b"after")


# ---- slots that change owner under open sessions ----

def test_sessions_follow_slot_changes(data: tuple[Nodes, Data, Callable[[], None]]) -> None:
    nodes, d, reset = data
    cluster = nodes.cluster
    n0, _, n2 = cluster.nodes
    slot = cluster.slot(d.here)
    s0, s2 = RawSession(n0), RawSession(n2)
    try:
        assert s0.call("GET", d.here) == b"$1\r\nh\r\n"
        assert s2.call("GET", d.here) == NOT_SERVED
        cluster.call(n0, "FLUSHALL")
        for node in cluster.nodes:  # the slot goes to node 2
            cluster.call(node, "CLUSTER", "SETSLOT", slot, "NODE", cluster.node_id(n2))
        assert s0.call("SET", d.here, "x") == NOT_SERVED
        assert s2.call("SET", d.here, "on-2") == b"+OK\r\n"
        cluster.call(n2, "FLUSHALL")
        for node in cluster.nodes:  # and back
            cluster.call(node, "CLUSTER", "SETSLOT", slot, "NODE", cluster.node_id(n0))
        assert s2.call("SET", d.here, "x") == NOT_SERVED
        cluster.call(n0, "CLUSTER", "DELSLOTS", slot)  # nobody serves it, for node 0
        assert s0.call("SET", d.here, "x") == NOT_SERVED
        sock = socket_as(n0)
        try:
            assert sock.call("SET", d.here, "x").startswith(b"-CLUSTERDOWN ")
        finally:
            sock.close()
        cluster.call(n0, "CLUSTER", "ADDSLOTS", slot)
        wait_until(lambda: cluster.cluster_info(n0).get("cluster_state") == "ok",
                   "cluster_state:ok on node 0", timeout=30)
        assert s0.call("SET", d.here, "back") == b"+OK\r\n"
    finally:
        s0.close()
        s2.close()
    assert cluster.call(n0, "GET", d.here) == Bulk(b"back")


# ---- the connection-flag commands under other names ----

class RenamingNode(Server):
    def argv(self) -> list[str]:
        return [*super().argv(), "--rename-command", "ASKING", "myasking",
                "--rename-command", "READONLY", "myreadonly",
                "--rename-command", "CLUSTER", "mycluster"]


@pytest.fixture(scope="module")
def lone_renaming_node() -> Iterator[Server]:
    """A one-node cluster (it serves every slot) with ASKING, READONLY and
    CLUSTER renamed."""
    node = make_cluster_node(RenamingNode("redis", load_module=True, name="cluster-renamed"),
                             "renamed")
    try:
        node.start()
        with node.admin() as conn:
            assert conn.execute("mycluster", "ADDSLOTSRANGE", "0", "16383") == Status(b"OK")
        yield node
    finally:
        node.cleanup()


@pytest.mark.parametrize("command", [("myasking",), ("MyReadOnly",), ("mycluster", "info")])
def test_renamed_connection_flag_commands_are_refused(lone_renaming_node: Server,
                                                      command: Command) -> None:
    with RawSession(lone_renaming_node) as session:
        assert is_refusal(session.call(*command)), command
        assert session.call("PING") == b"+PONG\r\n"
    assert lone_renaming_node.alive()


# ---- one session's cross-slot command and everyone's next call ----

def lone_node(flavour: str, name: str) -> Server:
    """A one-node cluster: it serves every slot (cluster_state:ok)."""
    node = cluster_node(flavour, name)
    node.start()
    try:
        Cluster.call(node, "CLUSTER", "ADDSLOTSRANGE", "0", "16383")
        wait_until(lambda: Cluster.call(node, "CLUSTER", "INFO").data.startswith(  # type: ignore[attr-defined]
            b"cluster_state:ok"), "cluster_state:ok", timeout=30)
    except BaseException:
        node.cleanup()
        raise
    return node


@pytest.mark.parametrize("flavour", list(FLAVOURS))
def test_a_crossslot_command_leaves_nothing_behind(flavour: str) -> None:
    """Valkey 9's RedisModule_Call marks its pooled client cross-slot and
    never clears the mark: after one session's CROSSSLOT, every later
    RedisModule_Call on the node (every session's, keyless ones too, and
    other modules') failed as not served.  A cross-slot command must never
    reach it; on the socket it is only that command's error."""
    node = lone_node(flavour, "cluster-lone-crossslot")
    try:
        with RawSession(node) as attacker, RawSession(node) as victim:
            for command in (("MGET", "a", "b"), ("MSET", "a", "1", "b", "2"), ("DEL", "a", "b"),
                            ("SUNIONSTORE", "a", "b", "c"), ("RENAME", "a", "b")):
                sock = socket_as(node)
                try:
                    assert sock.call(*command).startswith(b"-CROSSSLOT "), command
                finally:
                    sock.close()
                assert is_refusal(attacker.call(*command)), command
                for session in (victim, attacker):
                    assert session.call("PING") == b"+PONG\r\n", command
                    assert session.call("SET", "a", "1") == b"+OK\r\n", command
                    assert session.call("DBSIZE") == b":1\r\n", command
        assert node.alive(), node.log()[-3000:]
    finally:
        node.cleanup()
