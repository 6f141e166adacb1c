"""Only a plain eventfd is a doorbell.

An eventfd made with EFD_SEMAPHORE reads back 1 per read, so a server that
drains it in a loop spins on it (issue 9: a core at 100% while the attacker
sits idle).  The hello that carries one must be refused: the answer starts
with "ERR", no session opens, and a normal session opens afterwards.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from sec_raw import RawSession, handshake
from servers import Server, shm_stat


def test_a_semaphore_doorbell_is_refused_at_the_hello(server: Server, racer: Path) -> None:
    srv = server
    opened = shm_stat(srv, "sessions_opened")
    with srv.connect(shm="off") as ctl:
        token, path, ring = handshake(ctl)
        done = subprocess.run([str(racer), path, token, str(ring), "--semaphore"],
                              capture_output=True, text=True, timeout=60)
    hello = [line for line in done.stdout.splitlines() if line.startswith("HELLO ")]
    assert hello, (done.stdout, done.stderr)
    answer = hello[0][len("HELLO "):]
    assert answer.startswith("ERR"), f"a semaphore doorbell was accepted: {answer!r}"
    assert done.returncode == 2
    assert shm_stat(srv, "sessions_opened") == opened
    assert srv.alive()
    with RawSession(srv) as session:
        assert session.call("PING") == b"+PONG\r\n"
