"""Valkey 9's atomic slot migration (CLUSTER MIGRATESLOTS) with the module
loaded on every node.

The server refuses the migration while any loaded module has not declared
it handles one; the module declares it where the server has the command
(native/module/shm_module.c).  Here, on each server under test that has
CLUSTER MIGRATESLOTS, a slot holding keys written through shared memory
moves from node 0 to node 1, and afterwards redis-py over shared memory
sees what redis-py over the socket sees on both nodes: MOVED on the old
owner, the values on the new one (there through the session).  A server
without the command answers it as it would without the module.
"""

from __future__ import annotations

import pytest
import redis
from cluster_nodes import Cluster
from redis_py_helpers import seen, shm_info
from servers import FLAVOURS, wait_until

from shmcli import redis_py
from shmcli.resp import Nil

VALKEYS = [flavour for flavour in FLAVOURS if flavour.startswith("valkey-")]


def outcome(call):
    try:
        return seen(call())
    except redis.RedisError as exc:
        return seen(exc)


def has_migrateslots(node) -> bool:
    reply = Cluster.call(node, "COMMAND", "INFO", "CLUSTER|MIGRATESLOTS")
    return not isinstance(reply.items[0], Nil)


@pytest.fixture(params=VALKEYS)
def cluster(request: pytest.FixtureRequest):
    cluster = Cluster(module=(True, True, True), flavour=request.param).start()
    yield cluster
    cluster.cleanup()


def test_a_slot_migrates_atomically_with_the_module_loaded(cluster: Cluster) -> None:
    source, target = cluster.nodes[0], cluster.nodes[1]
    key = cluster.key_on(source, "moving")
    slot = cluster.slot(key)
    keys = [key] + [f"{{{key}}}:{n}" for n in range(20)]  # all in the same slot
    shm_source = redis_py.Redis(unix_socket_path=source.unix_socket)
    for name in keys:
        shm_source.set(name, f"value of {name}")
    assert shm_info(source)["shm_commands"] >= len(keys)

    plain = redis.Redis(unix_socket_path=source.unix_socket)
    migrate = ("CLUSTER", "MIGRATESLOTS", "SLOTSRANGE", slot, slot,
               "NODE", cluster.node_id(target))
    if not has_migrateslots(source):
        assert outcome(lambda: plain.execute_command(*migrate))[0] is redis.ResponseError
        assert "unknown subcommand" in outcome(lambda: plain.execute_command(*migrate))[1]
        return
    assert plain.execute_command(*migrate) in (b"OK", "OK")

    target_plain = redis.Redis(unix_socket_path=target.unix_socket)

    def migrated() -> bool:
        jobs = plain.execute_command("CLUSTER", "GETSLOTMIGRATIONS")
        states = [dict(zip(job[::2], job[1::2], strict=True)) if isinstance(job, list) else job
                  for job in jobs]
        return any(state.get(b"state") == b"success" for state in states)
    wait_until(migrated, "the migration's success on node 0", timeout=30)
    assert target_plain.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == len(keys)

    shm_target = redis_py.Redis(unix_socket_path=target.unix_socket)
    before = shm_info(target)["shm_commands"]
    for name in keys:
        assert outcome(lambda n=name: shm_source.get(n)) == outcome(lambda n=name: plain.get(n))
        assert issubclass(outcome(lambda n=name: shm_source.get(n))[0], redis.ResponseError)
        assert shm_target.get(name) == target_plain.get(name) == f"value of {name}".encode()
    assert shm_info(target)["shm_commands"] >= before + len(keys)
