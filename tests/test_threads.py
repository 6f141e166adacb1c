"""One Connection shared by many threads (issue 12): the C session is never
entered from two threads at once, and every reply reaches the thread that
asked for it.  Four threads on one shared-memory Connection used to crash
Python (SIGSEGV) or hand replies to the wrong thread.

The work runs in a child process, so that a crash is a failed test with the
signal named, not a dead test run.  Each thread owns its keys and checks
every reply against what only it could have caused, for a bounded time.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from servers import Server

THREADS = 8
SECONDS = 2.0

CHILD = r"""
import sys, threading, time
from shmcli import connect
from shmcli.resp import Array, Bulk, Integer, Status

conn = connect(unix_socket=sys.argv[1], shm=sys.argv[2], timeout=30.0)
threads, seconds = int(sys.argv[3]), float(sys.argv[4])
assert conn.transport == ("shm" if sys.argv[2] == "require" else "socket")
errors, counts = [], [0] * threads
start = threading.Barrier(threads)

def work(me):
    start.wait()
    deadline = time.monotonic() + seconds
    n = 0
    try:
        while time.monotonic() < deadline:
            n += 1
            value = b"%d:%d" % (me, n)
            assert conn.execute("SET", f"t{me}", value) == Status(b"OK")
            assert conn.execute("GET", f"t{me}") == Bulk(value)
            assert conn.execute("INCR", f"n{me}") == Integer(n)
            got = conn.execute_many([("ECHO", value), ("GET", f"t{me}")])
            assert got == [Bulk(value), Bulk(value)], got
            assert conn.timed_ping() > 0
    except BaseException as exc:
        errors.append(f"thread {me}: {exc!r}")
    counts[me] = n

pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
for t in pool:
    t.start()
for t in pool:
    t.join()
print(" ".join(map(str, counts)))
print("\n".join(errors))
sys.exit(1 if errors else 0)
"""


@pytest.mark.parametrize("shm", ["require", "off"])
def test_threads_sharing_one_connection_each_get_their_own_replies(
        server: Server, shm: str) -> None:
    done = subprocess.run([sys.executable, "-c", CHILD, server.unix_socket, shm,
                           str(THREADS), str(SECONDS)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr[-3000:])
    counts = [int(n) for n in done.stdout.split("\n")[0].split()]
    assert len(counts) == THREADS and all(n > 0 for n in counts), done.stdout
    with server.admin() as admin:
        for me, n in enumerate(counts):
            assert admin.execute("GET", f"n{me}").data == str(n).encode()  # type: ignore[union-attr]
