"""A real local Redis Cluster of three masters for the `-c` tests.

Each node is a throwaway shmcli.testing.Server (its own directory, a free
loopback port, a unix socket) started with `--cluster-enabled yes`, its own
`nodes-N.conf` and a free cluster-bus port (`cluster-port`, so the bus port is
not port + 10000, which may be taken or beyond 65535).  The shm module is
loaded on the nodes asked for.  The slots are split in three ranges with
CLUSTER ADDSLOTSRANGE, the nodes meet through the first one, and the cluster
is ready once every node says `cluster_state:ok` and knows the other two
(polled with a deadline, never slept on).
"""

from __future__ import annotations

from collections.abc import Sequence

from servers import Server, free_port, wait_until

from shmcli.resp import Bulk, Error, Integer

SLOT_RANGES = ((0, 5460), (5461, 10922), (10923, 16383))


def make_cluster_node(node: Server, name: str) -> Server:
    """Configure a not yet started `node` as a cluster node: its own
    nodes-<name>.conf and a free bus port.  Returns it."""
    node.config.update({
        "cluster-enabled": "yes",
        "cluster-config-file": str(node.dir / f"nodes-{name}.conf"),
        "cluster-port": str(free_port()),
        "cluster-node-timeout": "15000",
    })
    return node


class Cluster:
    """Three masters; `module[i]` says whether node i loads the shm module."""

    def __init__(self, module: Sequence[bool] = (True, False, True),
                 flavour: str = "redis") -> None:
        assert len(module) == len(SLOT_RANGES)
        self.nodes: list[Server] = []
        for index, load in enumerate(module):
            node = Server(flavour, load_module=load, name=f"cluster-node-{index}")
            self.nodes.append(make_cluster_node(node, str(index)))

    def start(self) -> Cluster:
        try:
            for node in self.nodes:
                node.start()
            for node, (first, last) in zip(self.nodes, SLOT_RANGES, strict=True):
                self.call(node, "CLUSTER", "ADDSLOTSRANGE", first, last)
            for node in self.nodes[1:]:
                self.call(self.nodes[0], "CLUSTER", "MEET", "127.0.0.1", node.port,
                          node.config["cluster-port"])
            wait_until(self.ready, "cluster_state:ok on the three nodes", timeout=30)
        except BaseException:
            self.cleanup()
            raise
        return self

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()

    # ---- asking the nodes ----

    @staticmethod
    def call(node: Server, *command: str | int | bytes) -> object:
        with node.admin() as conn:
            reply = conn.execute(*command)
        if isinstance(reply, Error):
            raise RuntimeError(f"{command!r} on {node.port}: {reply.message}")
        return reply

    def cluster_info(self, node: Server) -> dict[str, str]:
        reply = self.call(node, "CLUSTER", "INFO")
        assert isinstance(reply, Bulk)
        return dict(line.split(":", 1) for line in reply.data.decode().splitlines()
                    if ":" in line)

    def ready(self) -> bool:
        for node in self.nodes:
            info = self.cluster_info(node)
            if (info.get("cluster_state") != "ok" or info.get("cluster_known_nodes") != "3"
                    or info.get("cluster_slots_ok") != "16384"):
                return False
        return True

    def node_id(self, node: Server) -> str:
        reply = self.call(node, "CLUSTER", "MYID")
        assert isinstance(reply, Bulk)
        return reply.data.decode()

    def slot(self, key: str) -> int:
        reply = self.call(self.nodes[0], "CLUSTER", "KEYSLOT", key)
        assert isinstance(reply, Integer)
        return reply.value

    def owner(self, slot: int) -> Server:
        for node, (first, last) in zip(self.nodes, SLOT_RANGES, strict=True):
            if first <= slot <= last:
                return node
        raise ValueError(slot)

    def key_on(self, node: Server, prefix: str = "key") -> str:
        """A key whose slot the node serves (the first of prefix:0, prefix:1...)."""
        for number in range(10_000):
            key = f"{prefix}:{number}"
            if self.owner(self.slot(key)) is node:
                return key
        raise AssertionError(f"no {prefix}:N key on node {node.port}")

    def errors(self, node: Server) -> dict[str, str]:
        """INFO errorstats of a node: {"errorstat_ERR": "count=1", ...}."""
        return node.info("errorstats")
