"""Wrong arity and impossible key positions: the socket's error, never a crash.

A user restricted to keys `~app:*` makes the server check key positions.  If
the module checks ACLs before arity, or trusts a numkeys argument, a bare
`SET` or `ZUNIONSTORE app:d 5 app:a` reads past the argument array.  Each of
these must get what the same user's socket gets (the server checks unknown
command and arity first), and the server lives.  Over a raw session the
module may answer the socket's bytes or refuse (-SHMFALLBACK, the design's
escape hatch); through a shmcli Connection the reply is the socket's exactly.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sec_raw import PASSWORD, RawSession, del_users, is_refusal, set_user, socket_reply
from servers import Server

from shmcli.resp import parse_one

USER = "arity"

CASES: list[tuple[str, ...]] = [
    ("SET",), ("SET", "app:k"), ("GET",), ("MSET",), ("MSET", "app:a"), ("GETEX",),
    ("SETRANGE", "app:k"), ("APPEND",), ("INCRBY", "app:k"), ("EXPIRE",), ("DEL",),
    ("BITFIELD",), ("BITFIELD_RO",), ("BITOP",), ("BITOP", "AND"), ("BITCOUNT",),
    ("ZUNIONSTORE",), ("ZUNIONSTORE", "app:d"), ("ZUNIONSTORE", "app:d", "5", "app:a"),
    ("ZUNIONSTORE", "app:d", "-1", "app:a"), ("ZINTERSTORE", "app:d", "9999999999", "app:a"),
    ("ZINTER", "3", "app:a"), ("ZDIFF",), ("ZADD", "app:z"), ("SINTERCARD", "4", "app:a"),
    ("LMPOP", "5", "app:a"), ("ZMPOP", "2", "app:a"), ("LMOVE", "app:a"),
    ("OBJECT",), ("OBJECT", "ENCODING"), ("OBJECT", "FREQ"), ("MEMORY", "USAGE"),
    ("CLIENT",), ("CLIENT", "SETNAME"), ("CLIENT", "KILL"), ("CLIENT", "NO-EVICT"),
    ("SELECT",), ("SELECT", "0", "1"), ("AUTH",), ("HELLO", "3", "AUTH"),
    ("XREAD",), ("XREAD", "STREAMS"), ("XREAD", "STREAMS", "app:s"),
    ("XREAD", "COUNT"), ("XREADGROUP", "GROUP"), ("XADD", "app:s"), ("XINFO", "STREAM"),
    ("EVAL",), ("EVAL", "return 1", "5"), ("EVAL", "return 1", "-1"), ("FCALL", "f", "3"),
    ("SORT",), ("SORT", "app:l", "BY"), ("SORT", "app:l", "GET"), ("SORT_RO",),
    ("GEORADIUS", "app:g"), ("GEOSEARCHSTORE", "app:d"), ("MIGRATE",), ("PFCOUNT",),
    ("PFMERGE",), ("RENAME", "app:a"), ("COPY", "app:a"), ("LCS", "app:a"),
    ("COMMAND", "GETKEYS"), ("COMMAND", "GETKEYS", "SET"), ("CONFIG", "GET"),
    ("WATCH",), ("EXISTS",), ("TOUCH",), ("UNLINK",), ("HSET", "app:h", "f"),
    ("SPUBLISH",), ("PUBLISH", "c"), ("DEBUG",), ("MODULE",), ("LATENCY",),
]


@pytest.fixture
def restricted(server: Server) -> Iterator[Server]:
    set_user(server, USER, "on", f">{PASSWORD}", "~app:*", "&*", "+@all")
    yield server
    del_users(server, USER)


@pytest.mark.parametrize("cmd", CASES, ids=[" ".join(c) for c in CASES])
def test_bad_arity_gets_the_sockets_reply(restricted: Server, cmd: tuple[str, ...]) -> None:
    srv = restricted
    expected = socket_reply(srv, USER, PASSWORD, *cmd)
    with RawSession(srv, USER, PASSWORD) as session:
        reply = session.call(*cmd)
        assert srv.alive(), f"{cmd} killed the server:\n{srv.log()[-3000:]}"
        assert reply == expected or is_refusal(reply), \
            f"{cmd}: shm {reply!r} != socket {expected!r}"
        assert session.call("PING") == b"+PONG\r\n"
    with srv.connect(shm="require", username=USER, password=PASSWORD) as conn:
        assert conn.execute(*cmd) == parse_one(expected), cmd
        assert srv.alive(), f"{cmd} killed the server:\n{srv.log()[-3000:]}"
        assert conn.transport == "shm"
