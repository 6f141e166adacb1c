"""Client and server on one CPU: a one-CPU machine or container, or both
pinned there with taskset.

There, whoever spins keeps the other off the CPU: a server spinning for a
client's next request delays that request, and a client woken after each
reply of a batch preempts the server once per reply.  So the fast path's
worker does not spin for clients that wait on its only CPU, and a pass wakes
such a client once, after its batch (docs/latency.md, "One CPU").  These
check both through what the kernel and the server count, never timing:
the worker's spin (INFO shm's worker_spin_ns), and the test thread's
voluntary context switches.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from servers import EXEC_MODES, FLAVOURS, Server, placed, raw_session, shm_stat

from shmcli.resp import Status, encode_command

CPUS = sorted(os.sched_getaffinity(0))


def worker_serves(srv: Server) -> None:
    assert srv.info()["shm_exec_mode"] == "fast-path", "this server runs no worker"


def spin_while_pinging(srv: Server, count: int) -> int:
    """Send `count` PINGs back to back; the ns the worker spun meanwhile."""
    with srv.connect(shm="require") as conn:
        for _ in range(50):  # the worker learns where it and the client run
            assert conn.execute("PING") == Status(b"PONG")
        spun = shm_stat(srv, "worker_spin_ns")
        for _ in range(count):
            assert conn.execute("PING") == Status(b"PONG")
        assert conn.transport == "shm"
        return shm_stat(srv, "worker_spin_ns") - spun


@pytest.mark.parametrize("flavour", list(FLAVOURS))
def test_the_worker_does_not_spin_for_a_client_on_its_only_cpu(
        flavour: str, make_server: Callable[..., Server]) -> None:
    srv = make_server(flavour, "fast-path")
    worker_serves(srv)
    with placed(srv, server_cpus={CPUS[0]}, test_cpus={CPUS[0]}):
        # Spinning, it caught about 6 requests in 10, each only once the
        # client got the CPU back from it.
        assert spin_while_pinging(srv, 1000) == 0


@pytest.mark.parametrize("flavour", list(FLAVOURS))
def test_the_worker_spins_for_a_client_on_another_cpu(
        flavour: str, make_server: Callable[..., Server]) -> None:
    """Pinned to one CPU, the worker still spins for a client elsewhere."""
    assert len(CPUS) >= 2, "this test needs two CPUs"
    srv = make_server(flavour, "fast-path")
    worker_serves(srv)
    with placed(srv, server_cpus={CPUS[0]}, test_cpus={CPUS[1]}):
        assert spin_while_pinging(srv, 1000) > 0


def voluntary_switches() -> int:
    """How often this thread has given up its CPU to wait."""
    with open("/proc/thread-self/status") as status:
        for line in status:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches in /proc/thread-self/status")


@pytest.mark.parametrize("flavour", list(FLAVOURS))
@pytest.mark.parametrize("mode", EXEC_MODES)
def test_a_batch_wakes_a_client_on_the_servers_cpu_once(
        flavour: str, mode: str, make_server: Callable[..., Server]) -> None:
    srv = make_server(flavour, mode)
    ctl, channel = raw_session(srv)
    batch = [encode_command("INCR", "n")] * 200  # under shm.batch-max: one pass
    switches = []
    try:
        with placed(srv, server_cpus={CPUS[0]}, test_cpus={CPUS[0]}):
            for round_ in range(25):
                before = voluntary_switches()
                channel.send_batch(batch)
                replies = [channel.recv() for _ in batch]
                if round_ >= 5:  # the first ones tell the server where we wait
                    switches.append(voluntary_switches() - before)
        assert replies[-1] == b":5000\r\n", replies[-1]
    finally:
        channel.close()
        ctl.close()
    # Once to wait for the batch, and woken once for it.  Woken after each
    # reply, the client took the CPU from the server and gave it back up to
    # 22 times per batch.
    assert max(switches) <= 1, switches
