"""No write runs over shared memory while the server pauses writes.

With appendonly on, a module write during CLIENT PAUSE trips the server's
assertion and kills it, so every case here both checks the refusal and that
the server lives.  The pause is the server's own state, not a copy the
module keeps: an 18-digit timeout, a shorter second pause (the longer one
holds), a pause queued in MULTI (it runs from EXEC, not from when it was
queued) and CLIENT UNPAUSE (writes go through shared memory again).  Reads
during a write pause may be refused or answered, never wrongly; during a
pause of all clients nothing runs over shared memory.

Two cases depend on when a pause ends (the MULTI one, and a pause of all
clients, which nothing can end early).  Each observation counts only when it
is conclusive: the command went out and came back inside the window where the
server certainly was paused (measured from before the pause was asked for,
so a slow machine only shortens the window).  A stalled machine makes an
observation inconclusive, never a pass: the scenario then runs again, a
bounded number of times, and the test fails if none was conclusive.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from sec_raw import RawSession, is_refusal
from servers import Server

from shmcli.resp import Bulk, Nil, Status


@pytest.fixture
def aof_server(flavour_mode: tuple[str, str],
               custom_server: Callable[..., Server]) -> Iterator[Server]:
    srv = custom_server(*flavour_mode, config={"appendonly": "yes"})
    yield srv
    assert srv.alive(), f"the server died:\n{srv.log()[-3000:]}"


def admin_ok(srv: Server, *cmd: str) -> None:
    with srv.admin() as admin:
        reply = admin.execute(*cmd)
    assert reply == Status(b"OK"), (cmd, reply)


def assert_write_refused(srv: Server, session: RawSession, key: str) -> None:
    reply = session.call("SET", key, "written-during-pause")
    assert srv.alive(), f"a write ran during the pause and the server died:\n{srv.log()[-3000:]}"
    assert is_refusal(reply), f"SET during a pause answered {reply!r}"
    with srv.admin() as admin:
        assert isinstance(admin.execute("GET", key), Nil), f"{key} was written during a pause"


def test_an_18_digit_pause_holds(aof_server: Server) -> None:
    srv = aof_server
    with RawSession(srv) as session:
        admin_ok(srv, "CLIENT", "PAUSE", "100000000000000000", "WRITE")
        assert_write_refused(srv, session, "k18")
        assert session.call("INCR", "counter").startswith(b"-SHMFALLBACK")
        admin_ok(srv, "CLIENT", "UNPAUSE")
        assert session.call("SET", "k18", "after") == b"+OK\r\n"


def test_a_shorter_second_pause_does_not_shorten_the_first(aof_server: Server) -> None:
    srv = aof_server
    with RawSession(srv) as session:
        admin_ok(srv, "CLIENT", "PAUSE", "10000", "WRITE")
        admin_ok(srv, "CLIENT", "PAUSE", "10", "WRITE")
        time.sleep(0.05)
        assert_write_refused(srv, session, "kshort")
        admin_ok(srv, "CLIENT", "UNPAUSE")


ATTEMPTS = 4  # of a scenario whose observation a stalled machine made inconclusive


def test_a_pause_queued_in_multi_runs_from_exec(aof_server: Server) -> None:
    """A 6 s pause queued 3 s before EXEC: a module timing it from the
    queuing would let writes through 3 s after EXEC; the server holds it 6 s.
    The write is sent 4.5 s after EXEC and must come back refused while the
    server's pause certainly lasts (before EXEC was sent, plus 6 s)."""
    srv = aof_server
    for _ in range(ATTEMPTS):
        with RawSession(srv) as session, srv.admin() as tx:
            assert tx.execute("MULTI") == Status(b"OK")
            assert tx.execute("CLIENT", "PAUSE", "6000", "WRITE") == Status(b"QUEUED")
            time.sleep(3.0)
            exec_sent = time.monotonic()
            exec_reply = tx.execute("EXEC")
            assert exec_reply.items == (Status(b"OK"),), exec_reply  # type: ignore[union-attr]
            time.sleep(max(0.0, exec_sent + 4.5 - time.monotonic()))
            reply = session.call("SET", "kmulti", "x")
            conclusive = time.monotonic() < exec_sent + 5.9
            assert srv.alive(), f"a write ran during the pause:\n{srv.log()[-3000:]}"
            if conclusive:
                assert is_refusal(reply), f"SET 4.5 s into a 6 s pause answered {reply!r}"
            admin_ok(srv, "CLIENT", "UNPAUSE")
            if conclusive:
                assert session.call("SET", "kmulti", "after") == b"+OK\r\n"
                return
    pytest.fail(f"the machine stalled in all {ATTEMPTS} attempts: nothing was proven")


def test_unpause_lets_writes_through_again(aof_server: Server) -> None:
    srv = aof_server
    with RawSession(srv) as session:
        admin_ok(srv, "CLIENT", "PAUSE", "100000", "WRITE")
        assert_write_refused(srv, session, "kun")
        admin_ok(srv, "CLIENT", "UNPAUSE")
        assert session.call("SET", "kun", "v") == b"+OK\r\n"
        assert session.call("GET", "kun") == b"$1\r\nv\r\n"
    with srv.admin() as admin:
        assert admin.execute("GET", "kun") == Bulk(b"v")


def test_reads_during_pauses(aof_server: Server) -> None:
    srv = aof_server
    with RawSession(srv) as session:
        assert session.call("SET", "r", "v") == b"+OK\r\n"
        admin_ok(srv, "CLIENT", "PAUSE", "100000", "WRITE")
        reply = session.call("GET", "r")
        assert reply == b"$1\r\nv\r\n" or is_refusal(reply), reply
        admin_ok(srv, "CLIENT", "UNPAUSE")

        # a pause of all clients: the socket would hold every command, so
        # nothing may run over shared memory (CLIENT UNPAUSE would be held
        # too, so the pause is short and runs out)
        for _ in range(ATTEMPTS):
            asked = time.monotonic()
            admin_ok(srv, "CLIENT", "PAUSE", "3000", "ALL")
            get, setr = session.call("GET", "r"), session.call("SET", "r", "during")
            conclusive = time.monotonic() < asked + 2.9
            assert srv.alive(), f"a command ran during the pause:\n{srv.log()[-3000:]}"
            with srv.admin() as admin:  # held until the pause ends
                assert admin.execute("GET", "r") == Bulk(b"v") or not conclusive
            if conclusive:
                assert is_refusal(get), f"GET during CLIENT PAUSE ALL answered {get!r}"
                assert is_refusal(setr), f"SET during CLIENT PAUSE ALL answered {setr!r}"
                return
            session.call("SET", "r", "v")  # put the value back for the next attempt
        pytest.fail(f"the machine stalled in all {ATTEMPTS} attempts: nothing was proven")
