"""Reply parity: shared memory must answer exactly what the socket answers.

This is the differential backbone of the semantics contract (DESIGN §4): for a
corpus that touches every data type, every RESP2 and RESP3 reply type
(status, error, integer, bulk with NUL and CRLF inside, empty bulk, nil of
each kind, empty and nested arrays, maps, sets, doubles, booleans, big
numbers, verbatim strings), errors of each kind and Lua scripts, the same
requests are sent

* as raw RESP bytes through a raw ShmChannel and through a raw unix socket,
  and the reply bytes must be identical (the strongest check: it sees the
  wire, not a parser's view of it), and
* through the connection layer, shm="require" against shm="off", and the
  typed replies must be equal while INFO shm proves that every one of them
  was executed over shared memory (no silent fallback to the socket).

Read-only commands run interleaved against one data set.  Writing commands
run as a sequence on a freshly populated data set per transport, so both
sides see the same state.  Commands whose reply is random or time-dependent
are compared by shape only.  Big values (1 MB, 64 MB) cross transports both
ways.

Every test uses the `server` fixture: Redis 7.0 and Valkey 8, each with the
main-thread and the fast-path executor.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from servers import RawSocket, expected_refusals

from shmcli.channel import ShmChannel
from shmcli.resp import (
    Array,
    BigNumber,
    Boolean,
    Bulk,
    Double,
    Error,
    Integer,
    Map,
    Nil,
    Reply,
    Set,
    Status,
    Verbatim,
    encode_command,
)

PROTOCOLS = [2, 3]
BIN = b"a\x00b\r\nc\x00\r\n"  # NUL and CRLF inside a value
MB = 1024 * 1024

Command = Sequence[bytes | str | int | float]


# ---------------------------------------------------------------------------
# raw transports
# ---------------------------------------------------------------------------


def raw_channel(server, protocol: int):
    """A raw session; its control connection has `protocol` (returned too,
    it must stay open: the session lives as long as it does)."""
    control = server.connect(shm="off", protocol=protocol)
    hs = control.execute("SHM.HANDSHAKE")
    assert isinstance(hs, Array), hs
    token, path, ring = hs.items[0], hs.items[1], hs.items[2]
    channel = ShmChannel(path.data.decode(), token.data.decode(), ring.value, 60)
    return control, channel


def shm_counters(server) -> tuple[int, int]:
    info = server.info("shm")
    return int(info["shm_commands"]), int(info["shm_refused"])


# ---------------------------------------------------------------------------
# the corpus
# ---------------------------------------------------------------------------


def populate(server) -> None:
    """One data set with every type, several encodings of each."""
    with server.admin() as c:
        c.execute("FLUSHALL")
        cmds: list[Command] = [
            ("SET", "s:bin", BIN), ("SET", "s:empty", ""), ("SET", "s:int", "12345"),
            ("SET", "s:text", "hello world"), ("SET", "s:text2", "yellow wood"),
            ("SET", "s:float", "3.5"),
            ("RPUSH", "l:list", "a", "b", "c", "", BIN, "1", "2", "b"),
            ("RPUSH", "l:big", *[f"item-{i}" * 3 for i in range(300)]),
            ("HSET", "h:small", "f1", "v1", "f2", "", "f3", BIN),
            ("HSET", "h:big", *[x for i in range(300) for x in (f"f{i}", f"v{i}")]),
            ("SADD", "set:int", "1", "2", "3", "10", "-7"),
            ("SADD", "set:str", "a", "b", "c", BIN),
            ("SADD", "set:big", *[f"m{i}" for i in range(300)]),
            ("ZADD", "z", "1", "a", "2.5", "b", "-3.25", "c", "1e20", "d", "inf", "e",
             "0.1", "f"),
            ("ZADD", "z:big", *[x for i in range(300) for x in (str(i / 7), f"m{i}")]),
            ("XADD", "st", "1-1", "f", "v"), ("XADD", "st", "2-0", "a", "b", "c", "d"),
            ("XADD", "st", "3-5", "bin", BIN), ("XGROUP", "CREATE", "st", "g", "0"),
            ("PFADD", "hll", "a", "b", "c", "d", "e"),
            ("SETBIT", "bm", "7", "1"), ("SETBIT", "bm", "100", "1"),
            ("GEOADD", "geo", "13.361389", "38.115556", "Palermo", "15.087269", "37.502669",
             "Catania"),
        ]
        replies = c.execute_many(cmds)
        assert not any(isinstance(r, Error) for r in replies), replies


# Read-only commands: deterministic replies from the populated data.
READ_CORPUS: list[Command] = [
    # strings, binary and empty values, nils
    ("GET", "s:bin"), ("GET", "s:empty"), ("GET", "missing"), ("MGET", "s:bin", "missing", "s:int"),
    ("STRLEN", "s:bin"), ("GETRANGE", "s:bin", "1", "5"), ("GETRANGE", "s:text", "100", "200"),
    ("EXISTS", "s:bin", "missing", "s:int"), ("LCS", "s:text", "s:text2"),
    ("LCS", "s:text", "s:text2", "IDX", "WITHMATCHLEN"), ("ECHO", BIN), ("PING",), ("PING", BIN),
    ("TTL", "s:bin"), ("TTL", "missing"), ("PTTL", "s:bin"), ("EXPIRETIME", "s:bin"),
    # types, encodings, DUMP (binary payload)
    *[("TYPE", k) for k in ("s:bin", "l:list", "h:small", "set:int", "z", "st", "hll", "missing")],
    *[("OBJECT", "ENCODING", k) for k in ("s:int", "s:text", "s:float", "l:list", "l:big",
                                          "h:small", "h:big", "set:int", "set:str", "set:big",
                                          "z", "z:big", "st", "hll", "missing")],
    ("DUMP", "s:bin"), ("DUMP", "l:list"), ("DUMP", "z"), ("DUMP", "st"), ("DUMP", "missing"),
    ("MEMORY", "USAGE", "s:text"), ("OBJECT", "FREQ", "s:text"), ("OBJECT", "NOPE"),
    # lists
    ("LRANGE", "l:list", "0", "-1"), ("LRANGE", "missing", "0", "-1"),
    ("LRANGE", "l:big", "5", "20"),
    ("LINDEX", "l:list", "4"), ("LINDEX", "l:list", "99"), ("LLEN", "l:big"),
    ("LPOS", "l:list", "b", "COUNT", "0"), ("LPOS", "l:list", "zz"),
    ("SORT_RO", "set:int"), ("SORT_RO", "l:list", "ALPHA", "LIMIT", "0", "3"),
    # hashes (maps in RESP3, empty map for a missing key)
    ("HGETALL", "h:small"), ("HGETALL", "missing"), ("HGETALL", "h:big"), ("HGET", "h:small", "f2"),
    ("HGET", "h:small", "nope"), ("HMGET", "h:small", "f1", "nope", "f3"), ("HKEYS", "h:small"),
    ("HVALS", "h:small"), ("HLEN", "h:big"), ("HEXISTS", "h:small", "f3"),
    ("HSTRLEN", "h:small", "f3"), ("HSCAN", "h:small", "0"),
    # sets (sets in RESP3)
    ("SMEMBERS", "set:int"), ("SMEMBERS", "set:str"), ("SMEMBERS", "set:big"),
    ("SMEMBERS", "missing"), ("SISMEMBER", "set:str", BIN), ("SMISMEMBER", "set:int", "1", "9"),
    ("SCARD", "set:big"), ("SINTER", "set:int", "set:str"), ("SUNION", "set:int", "set:str"),
    ("SDIFF", "set:str", "set:int"), ("SSCAN", "set:int", "0"),
    # sorted sets (doubles in RESP3, inf, 1e20, 0.1)
    ("ZRANGE", "z", "0", "-1", "WITHSCORES"), ("ZRANGE", "z", "0", "-1"),
    ("ZRANGE", "z:big", "0", "-1", "WITHSCORES"),
    ("ZRANGEBYSCORE", "z", "-inf", "+inf", "WITHSCORES", "LIMIT", "1", "2"),
    ("ZREVRANGE", "z", "0", "1", "WITHSCORES"), ("ZSCORE", "z", "b"), ("ZSCORE", "z", "e"),
    ("ZSCORE", "z", "d"), ("ZSCORE", "z", "f"), ("ZSCORE", "z", "missing"),
    ("ZMSCORE", "z", "a", "nope", "e"), ("ZRANK", "z", "c"), ("ZRANK", "z", "missing"),
    ("ZCARD", "z"), ("ZCOUNT", "z", "0", "10"), ("ZRANGE", "z", "[a", "[c", "BYLEX"),
    ("ZSCAN", "z", "0"),
    # streams (nested arrays, maps in RESP3)
    ("XRANGE", "st", "-", "+"), ("XRANGE", "st", "-", "+", "COUNT", "1"),
    ("XREVRANGE", "st", "+", "-"), ("XRANGE", "missing", "-", "+"), ("XLEN", "st"),
    ("XINFO", "STREAM", "st"), ("XINFO", "STREAM", "st", "FULL"), ("XINFO", "GROUPS", "st"),
    ("XPENDING", "st", "g"), ("XINFO", "STREAM", "missing"),
    # HyperLogLog and bitmaps
    ("PFCOUNT", "hll"), ("GETBIT", "bm", "7"), ("GETBIT", "bm", "8"), ("BITCOUNT", "bm"),
    ("BITPOS", "bm", "1"), ("BITFIELD_RO", "bm", "GET", "u8", "0", "GET", "i5", "96"),
    # geo (doubles in RESP3, nested arrays with a nil inside)
    ("GEOPOS", "geo", "Palermo", "Catania", "nope"), ("GEODIST", "geo", "Palermo", "Catania", "km"),
    ("GEODIST", "geo", "Palermo", "nope"), ("GEOHASH", "geo", "Palermo", "nope"),
    ("GEORADIUS", "geo", "15", "37", "200", "km", "WITHDIST", "WITHCOORD", "ASC"),
    ("GEORADIUSBYMEMBER_RO", "geo", "Palermo", "300", "km", "WITHDIST", "WITHHASH", "ASC"),
    ("GEOSEARCH", "geo", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km", "ASC",
     "WITHCOORD", "WITHDIST", "WITHHASH"),
    # keyspace, server
    ("SCAN", "0", "MATCH", "s:bin", "COUNT", "1000"), ("DBSIZE",),
    ("COMMAND", "INFO", "get"), ("COMMAND", "INFO", "get", "nope", "zadd"),
    ("COMMAND", "GETKEYS", "SET", "a", "b"), ("COMMAND", "COUNT"),
    ("CONFIG", "GET", "maxmemory-policy"), ("CONFIG", "GET", "nope*"),
    ("MEMORY", "DOCTOR"), ("LATENCY", "DOCTOR"), ("FUNCTION", "LIST"), ("CLIENT", "GETNAME"),
    # errors: wrong type, unknown command, arity, syntax, bad integer
    ("GET", "l:list"), ("LRANGE", "s:bin", "0", "-1"), ("NOSUCHCMD", "a", BIN), ("GET",),
    ("GET", "a", "b"), ("HGET", "h:small"), ("ZRANGE", "z", "0", "-1", "BADOPT"),
    ("LRANGE", "l:list", "a", "b"), ("CONFIG", "NOPE"), ("XRANGE", "st", "bad", "+"),
    # Lua: nested tables, every type a script can produce, errors
    ("EVAL", "return {1, 'two', {3, 'four', {}}, {}, -5}", "0"),
    ("EVAL", "return {1, 2, false, 4}", "0"),
    ("EVAL", "return redis.status_reply('FINE')", "0"),
    ("EVAL", "return redis.error_reply('MYERR custom')", "0"),
    ("EVAL", "return 3.99", "0"), ("EVAL", "return 'x'", "0"), ("EVAL", "return nil", "0"),
    ("EVAL", "return true", "0"), ("EVAL", "return false", "0"),
    ("EVAL", "redis.setresp(3); return true", "0"), ("EVAL", "redis.setresp(3); return false", "0"),
    ("EVAL", "return {double=3.5}", "0"), ("EVAL", "return {double=-0.125}", "0"),
    ("EVAL", "return {big_number='123456789012345678901234567890'}", "0"),
    ("EVAL", "return {map={a=1}}", "0"), ("EVAL", "return {set={x=true}}", "0"),
    ("EVAL", "return {verbatim_string={format='txt', string='hi\\r\\nthere'}}", "0"),
    ("EVAL", "redis.setresp(3); return redis.call('HGETALL', KEYS[1])", "1", "h:small"),
    ("EVAL", "redis.setresp(3); return redis.call('ZSCORE', KEYS[1], 'b')", "1", "z"),
    ("EVAL", "redis.setresp(3); return redis.call('SMEMBERS', KEYS[1])", "1", "set:int"),
    ("EVAL", "return redis.call('GET', KEYS[1])", "1", "s:bin"),
    ("EVAL", "return redis.call('XRANGE', KEYS[1], '-', '+')", "1", "st"),
    ("EVAL", "return redis.pcall('INCR', KEYS[1])", "1", "l:list"),
    ("EVAL", "return redis.call('INCR', KEYS[1])", "1", "l:list"),
    ("EVAL", "error('boom')", "0"), ("EVAL", "this is not lua", "0"),
    ("EVAL_RO", "return redis.call('LRANGE', KEYS[1], 0, -1)", "1", "l:list"),
    ("EVAL_RO", "return redis.call('DEL', KEYS[1])", "1", "s:bin"),
]

# Writing commands, run in this order on a fresh copy of the data set.
WRITE_CORPUS: list[Command] = [
    # strings
    ("SET", "w:a", BIN), ("SET", "w:a", "x", "GET"), ("SET", "w:a", "y", "NX"),
    ("SET", "w:a", "y", "NX", "GET"), ("SET", "w:a", "y", "XX", "GET"), ("SET", "w:empty", ""),
    ("GET", "w:empty"), ("APPEND", "w:a", BIN), ("GET", "w:a"), ("SETRANGE", "w:a", "20", "q"),
    ("GET", "w:a"), ("GETDEL", "w:a"), ("GETDEL", "w:a"), ("INCR", "w:n"), ("INCRBY", "w:n", "41"),
    ("DECRBY", "w:n", "100"), ("INCRBYFLOAT", "w:f", "1.1"), ("INCRBYFLOAT", "w:f", "2.0e3"),
    ("INCRBYFLOAT", "w:f", "-1001.1"), ("INCR", "s:text"), ("INCRBYFLOAT", "s:text", "1"),
    ("INCR", "w:max", ), ("INCRBY", "w:max", "9223372036854775806"), ("INCR", "w:max"),
    ("MSET", "w:m1", "1", "w:m2", BIN), ("MSETNX", "w:m1", "x", "w:m3", "y"),
    ("SETNX", "w:m3", "z"),
    ("GETEX", "s:int", "PERSIST"), ("SET", "w:a", "v", "EX", "0"), ("SET", "w:a", "v", "BADOPT"),
    # lists
    ("LPUSH", "w:l", "a", "b", "c"), ("RPUSH", "w:l", BIN, ""), ("LPOP", "w:l"),
    ("LPOP", "w:l", "2"), ("RPOP", "missing"), ("RPOP", "missing", "2"), ("LPOP", "w:l", "0"),
    ("LMOVE", "l:list", "w:l", "LEFT", "RIGHT"), ("LINSERT", "w:l", "BEFORE", "a", "ins"),
    ("LREM", "w:l", "0", "a"), ("LSET", "w:l", "0", "X"), ("LSET", "w:l", "99", "X"),
    ("LRANGE", "w:l", "0", "-1"), ("LTRIM", "w:l", "1", "-1"), ("LPUSH", "s:bin", "x"),
    ("RPUSH", "w:lbig", *[f"{i:0200d}" for i in range(200)]), ("OBJECT", "ENCODING", "w:lbig"),
    ("LMPOP", "2", "missing", "w:l", "RIGHT", "COUNT", "2"), ("LMPOP", "1", "missing", "LEFT"),
    # hashes
    ("HSET", "w:h", "a", "1", "b", "2"), ("HINCRBY", "w:h", "a", "5"),
    ("HINCRBYFLOAT", "w:h", "b", "0.5"), ("HSETNX", "w:h", "a", "x"), ("HDEL", "w:h", "a", "nope"),
    ("HGETALL", "w:h"), ("HINCRBY", "h:small", "f1", "1"),
    # sets
    ("SADD", "w:s", "a", "b", "c", "a"), ("SREM", "w:s", "a", "z"), ("SMOVE", "w:s", "w:s2", "b"),
    ("SINTERSTORE", "w:s3", "set:int", "set:int"), ("SMEMBERS", "w:s3"), ("SMEMBERS", "w:s"),
    ("SINTERCARD", "2", "set:int", "w:s3"),
    # sorted sets
    ("ZADD", "w:z", "1", "a", "2", "b"), ("ZADD", "w:z", "INCR", "5", "a"),
    ("ZADD", "w:z", "XX", "CH", "3", "b"), ("ZINCRBY", "w:z", "0.1", "b"),
    ("ZADD", "w:z", "nan", "x"), ("ZADD", "w:z", "NX", "INCR", "1", "a"),
    ("ZPOPMIN", "w:z"), ("ZADD", "w:z", "1", "p", "2", "q", "3", "r"), ("ZPOPMAX", "w:z", "2"),
    ("ZUNIONSTORE", "w:z2", "2", "z", "w:z", "WEIGHTS", "2", "0.5"),
    ("ZRANGE", "w:z2", "0", "-1", "WITHSCORES"), ("ZRANGESTORE", "w:z3", "z", "0", "2"),
    ("ZMPOP", "1", "w:z3", "MIN"), ("ZMPOP", "2", "missing", "w:z2", "MAX", "COUNT", "2"),
    ("ZINTER", "2", "z", "w:z2", "WITHSCORES"),
    # streams
    ("XADD", "w:st", "5-1", "f", "v"), ("XADD", "w:st", "5-1", "f", "v"),
    ("XADD", "w:st", "MAXLEN", "1", "6-0", "a", BIN), ("XADD", "w:st", "7-*", "b", "c"),
    ("XRANGE", "w:st", "-", "+"), ("XDEL", "w:st", "6-0", "99-0"), ("XTRIM", "w:st", "MAXLEN", "0"),
    ("XGROUP", "CREATE", "w:st2", "g2", "$", "MKSTREAM"),
    ("XGROUP", "CREATE", "w:st2", "g2", "$"), ("XAUTOCLAIM", "st", "g", "c", "0", "0"),
    ("XGROUP", "DELCONSUMER", "st", "g", "c"),  # its seen-time would make DUMP differ
    ("XACK", "st", "g", "1-1"), ("XSETID", "w:st2", "10-0"), ("XINFO", "STREAM", "w:st2"),
    ("XGROUP", "CREATECONSUMER", "st", "g", "alice"), ("XGROUP", "DELCONSUMER", "st", "g", "alice"),
    # HyperLogLog
    ("PFADD", "w:hll", "a", "b"), ("PFADD", "w:hll", "a", "b"),
    ("PFMERGE", "w:hll2", "w:hll", "hll"),
    ("PFCOUNT", "w:hll2"), ("PFADD", "s:text", "a"),
    # bitmaps
    ("SETBIT", "w:bm", "3", "1"), ("SETBIT", "w:bm", "3", "0"), ("SETBIT", "w:bm", "-1", "1"),
    ("BITOP", "OR", "w:bm2", "w:bm", "bm"), ("GET", "w:bm2"),
    ("BITFIELD", "w:bm", "INCRBY", "u8", "0", "300", "OVERFLOW", "FAIL", "INCRBY", "u2", "8", "7",
     "GET", "u8", "0"),
    # geo
    ("GEOADD", "w:geo", "2.35", "48.85", "Paris"), ("GEOADD", "w:geo", "200", "100", "Nowhere"),
    ("GEODIST", "w:geo", "Paris", "Paris"),
    ("GEOSEARCHSTORE", "w:geo2", "geo", "FROMMEMBER", "Palermo", "BYBOX", "400", "400", "km",
     "ASC", "STOREDIST"), ("ZRANGE", "w:geo2", "0", "-1", "WITHSCORES"),
    # keys
    ("SET", "w:k", "1"), ("EXPIRE", "w:k", "1000"), ("PERSIST", "w:k"), ("TTL", "w:k"),
    ("RENAME", "w:k", "w:k2"), ("RENAME", "missing", "x"), ("COPY", "w:k2", "w:k3"),
    ("COPY", "w:k2", "w:k3"), ("DEL", "w:k2", "w:k3", "missing"), ("UNLINK", "w:n", "missing"),
    ("EXISTS", "w:k2"), ("RENAMENX", "s:int", "s:text"),
    # Lua writing and failing scripts
    ("EVAL", "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('GET', KEYS[1])", "1",
     "w:e", BIN),
    ("EVAL", "return redis.call('INCRBYFLOAT', KEYS[1], '0.5')", "1", "w:e2"),
    ("EVAL", "redis.setresp(3); return redis.call('ZINCRBY', KEYS[1], '1.5', 'm')", "1", "w:ez"),
    ("EVAL", "redis.call('SET', KEYS[1], 'v'); return redis.call('LPUSH', KEYS[1], 'x')", "1",
     "w:e3"), ("GET", "w:e3"),
    ("EVAL", "return redis.call('HSET', KEYS[1], unpack(ARGV))", "1", "w:eh", "a", "1", "b"),
]

# Commands of the corpora that the module refuses (the client then sends them
# over its socket), with the reason.  Anything else refused is a failure.

# Random or time-dependent replies: compared by shape (types and sizes) only.
SHAPE_CORPUS: list[Command] = [
    ("TIME",), ("RANDOMKEY",), ("SRANDMEMBER", "set:big", "3"), ("SRANDMEMBER", "set:big"),
    ("ZRANDMEMBER", "z", "2", "WITHSCORES"), ("HRANDFIELD", "h:big", "2", "WITHVALUES"),
    ("INFO", "server"), ("LOLWUT",), ("SPOP", "set:big"), ("XADD", "w:auto", "*", "a", "b"),
    ("OBJECT", "IDLETIME", "s:text"), ("MEMORY", "STATS"),
]


def shape(reply: Reply) -> object:
    if isinstance(reply, Map):
        return ("Map", tuple((shape(k), shape(v)) for k, v in reply.pairs))
    items = getattr(reply, "items", None)
    if items is not None:
        return (type(reply).__name__, tuple(shape(i) for i in items))
    return type(reply).__name__


def reply_types(reply: Reply, into: set[type]) -> set[type]:
    todo = [reply]
    while todo:
        r = todo.pop()
        into.add(type(r))
        if isinstance(r, Nil):
            into.add(("Nil", r.kind))  # type: ignore[arg-type]
        kids = r._children()
        if kids:
            todo.extend(kids)
    return into


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 300 else text[:300] + "..."


def mismatches(corpus: Sequence[Command], left: Sequence[object], right: Sequence[object]) -> str:
    lines = [f"{_short(cmd)}:\n    shm:    {_short(a)}\n    socket: {_short(b)}"
             for cmd, a, b in zip(corpus, left, right, strict=True) if a != b]
    return f"{len(lines)} of {len(corpus)} replies differ:\n" + "\n".join(lines)


# ---------------------------------------------------------------------------
# raw bytes: ShmChannel vs a bare socket
# ---------------------------------------------------------------------------


REFUSAL = b"-SHMFALLBACK "


def call_raw(channel: ShmChannel, request: bytes, refused: list[bytes]) -> bytes:
    """One raw round trip; a refusal is noted and the session resumed, as the
    connection layer would do before sending the command over its socket."""
    reply = channel.call(request)
    if reply.startswith(REFUSAL):
        refused.append(request)
        channel.resume()
    return reply


def refused_commands(corpus: Sequence[Command], refused: Sequence[bytes]) -> list[Command]:
    return [cmd for cmd in corpus if encode_command(*cmd) in refused]


def compare_raw(server, corpus: Sequence[Command], via_shm: list[bytes], via_socket: list[bytes],
                refused: list[bytes]) -> None:
    # A refusal is the contract's escape hatch, not a difference; but only the
    # commands the module's policy refuses (as the server's table says) use it.
    expected = expected_refusals(server, corpus)
    assert refused_commands(corpus, refused) == [c for c in corpus if tuple(c) in expected]
    kept = [i for i, cmd in enumerate(corpus) if encode_command(*cmd) not in refused]
    left = [via_shm[i] for i in kept]
    right = [via_socket[i] for i in kept]
    assert left == right, mismatches([corpus[i] for i in kept], left, right)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_raw_bytes_read_corpus(server, protocol: int) -> None:
    populate(server)
    control, channel = raw_channel(server, protocol)
    sock = RawSocket(server.unix_socket, protocol)
    before = shm_counters(server)
    refused: list[bytes] = []
    try:
        via_shm, via_socket = [], []
        for cmd in READ_CORPUS:
            request = encode_command(*cmd)
            via_shm.append(call_raw(channel, request, refused))
            via_socket.append(sock.request(request))
    finally:
        channel.close()
        sock.close()
        control.close()
    compare_raw(server, READ_CORPUS, via_shm, via_socket, refused)
    after = shm_counters(server)
    assert after == (before[0] + len(READ_CORPUS) - len(refused), before[1] + len(refused))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_raw_bytes_write_corpus(server, protocol: int) -> None:
    populate(server)
    control, channel = raw_channel(server, protocol)
    before = shm_counters(server)
    refused: list[bytes] = []
    try:
        via_shm = []
        for cmd in WRITE_CORPUS:
            via_shm.append(call_raw(channel, encode_command(*cmd), refused))
            if encode_command(*cmd) in refused:  # as the connection layer does
                control.execute(*cmd)
    finally:
        channel.close()
        control.close()
    after = shm_counters(server)

    populate(server)
    sock = RawSocket(server.unix_socket, protocol)
    try:
        via_socket = [sock.call(*cmd) for cmd in WRITE_CORPUS]
    finally:
        sock.close()
    compare_raw(server, WRITE_CORPUS, via_shm, via_socket, refused)
    assert after == (before[0] + len(WRITE_CORPUS) - len(refused), before[1] + len(refused))


# ---------------------------------------------------------------------------
# typed replies through the connection layer
# ---------------------------------------------------------------------------


RESP2_TYPES = {Status, Error, Integer, Bulk, Array, ("Nil", "bulk"), ("Nil", "array")}
RESP3_TYPES = {Status, Error, Integer, Bulk, Array, Map, Set, Double, Boolean, BigNumber,
               Verbatim, ("Nil", "null")}


def expected_counters(server, before: tuple[int, int],
                      corpus: Sequence[Command]) -> tuple[int, int]:
    """INFO shm (commands, refused) after running `corpus` one by one."""
    refused = expected_refusals(server, corpus)
    refusals = sum(1 for cmd in corpus if tuple(cmd) in refused)
    return before[0] + len(corpus) - refusals, before[1] + refusals


def run_typed(server, protocol: int, corpus: Sequence[Command], shm: str,
              pipelined: bool = False) -> list[Reply]:
    with server.connect(shm=shm, protocol=protocol) as conn:
        assert conn.transport == ("shm" if shm == "require" else "socket")
        if pipelined:
            replies = conn.execute_many(corpus)
        else:
            replies = [conn.execute(*cmd) for cmd in corpus]
        assert conn.transport == ("shm" if shm == "require" else "socket")
        return replies


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_typed_read_corpus(server, protocol: int) -> None:
    populate(server)
    before = shm_counters(server)
    via_shm = run_typed(server, protocol, READ_CORPUS, "require")
    after = shm_counters(server)
    via_socket = run_typed(server, protocol, READ_CORPUS, "off")
    assert via_shm == via_socket, mismatches(READ_CORPUS, via_shm, via_socket)
    # every reply came from shared memory (but the expected refusals)
    assert after == expected_counters(server, before, READ_CORPUS)
    # the corpus really exercises every reply type of the protocol
    seen: set[type] = set()
    for reply in via_socket:
        reply_types(reply, seen)
    expected = RESP3_TYPES if protocol == 3 else RESP2_TYPES
    assert expected <= seen, f"corpus misses {expected - seen}"
    if protocol == 2:
        assert not seen & {Map, Set, Double, Boolean, BigNumber, Verbatim, ("Nil", "null")}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_typed_read_corpus_pipelined(server, protocol: int) -> None:
    populate(server)
    before = shm_counters(server)
    via_shm = run_typed(server, protocol, READ_CORPUS, "require", pipelined=True)
    after = shm_counters(server)
    via_socket = run_typed(server, protocol, READ_CORPUS, "off", pipelined=True)
    assert via_shm == via_socket, mismatches(READ_CORPUS, via_shm, via_socket)
    # each command executed once over shm; in a pipeline the commands sent
    # after a refusal are skipped (counted as refused) and sent again
    executed, _ = expected_counters(server, before, READ_CORPUS)
    assert after[0] == executed
    assert after[1] >= before[1] + len(expected_refusals(server, READ_CORPUS))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_typed_write_corpus(server, protocol: int) -> None:
    populate(server)
    before = shm_counters(server)
    via_shm = run_typed(server, protocol, WRITE_CORPUS, "require")
    after = shm_counters(server)
    populate(server)
    via_socket = run_typed(server, protocol, WRITE_CORPUS, "off")
    assert via_shm == via_socket, mismatches(WRITE_CORPUS, via_shm, via_socket)
    assert after == expected_counters(server, before, WRITE_CORPUS)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_write_corpus_leaves_the_same_data(server, protocol: int) -> None:
    """Same writes, same resulting data set (read back over the socket)."""
    def snapshot() -> list[Reply]:
        with server.admin() as admin:
            keys = admin.execute("KEYS", "*")
            assert isinstance(keys, Array)
            names = sorted(k.data for k in keys.items)  # type: ignore[attr-defined]
            return [admin.execute("DUMP", k) for k in names] + [Array([Bulk(n) for n in names])]

    populate(server)
    run_typed(server, protocol, WRITE_CORPUS, "require", pipelined=True)
    via_shm = snapshot()
    populate(server)
    run_typed(server, protocol, WRITE_CORPUS, "off", pipelined=True)
    via_socket = snapshot()
    assert via_shm[-1] == via_socket[-1]
    # w:auto-free corpus: every value is deterministic, DUMP payloads too
    assert via_shm == via_socket


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_nondeterministic_commands_have_the_same_shape(server, protocol: int) -> None:
    populate(server)
    before = shm_counters(server)
    via_shm = run_typed(server, protocol, SHAPE_CORPUS, "require")
    after = shm_counters(server)
    populate(server)
    via_socket = run_typed(server, protocol, SHAPE_CORPUS, "off")
    assert [shape(r) for r in via_shm] == [shape(r) for r in via_socket], \
        mismatches(SHAPE_CORPUS, via_shm, via_socket)
    assert after == (before[0] + len(SHAPE_CORPUS), before[1])
    assert not any(isinstance(r, Error) for r in via_shm), via_shm


# ---------------------------------------------------------------------------
# big values cross transports
# ---------------------------------------------------------------------------


def big_value(size: int) -> bytes:
    pattern = bytes(range(256)) + b"\r\n\x00$*-+:\r\n"
    return (pattern * (size // len(pattern) + 1))[:size]


@pytest.mark.parametrize("size", [MB, 64 * MB], ids=["1MB", "64MB"])
def test_big_values_cross_transports(server, size: int) -> None:
    value = big_value(size)
    tail = b"\x00tail\r\n"
    with server.connect(shm="require") as shm, server.connect(shm="off") as sock:
        before = shm_counters(server)
        # shm -> socket
        assert shm.execute("SET", "big:a", value) == Status(b"OK")
        assert sock.execute("GET", "big:a") == Bulk(value)
        # socket -> shm
        assert sock.execute("SET", "big:b", value) == Status(b"OK")
        assert shm.execute("GET", "big:b") == Bulk(value)
        # APPEND over shm, read back pieces on both
        assert shm.execute("APPEND", "big:a", tail) == Integer(size + len(tail))
        start, end = size - 3, size + len(tail) - 1
        expected = Bulk((value + tail)[start:end + 1])
        assert shm.execute("GETRANGE", "big:a", start, end) == expected
        assert sock.execute("GETRANGE", "big:a", start, end) == expected
        assert shm.execute("STRLEN", "big:a") == sock.execute("STRLEN", "big:a")
        assert shm.transport == "shm"
        after = shm_counters(server)
        # a request over shm.input-limit (64mb by default) is refused to the socket
        oversize = int(len(encode_command("SET", "big:a", value)) > 64 * MB)
        assert after == (before[0] + 5 - oversize, before[1] + oversize)


def test_big_value_raw_bytes(server) -> None:
    """A 1 MB reply fills the 1 MB reply ring more than once: bytes still equal."""
    value = big_value(MB + 12345)
    with server.admin() as admin:
        assert admin.execute("SET", "big", value) == Status(b"OK")
        admin.execute("RPUSH", "biglist", *([value[:300_000]] * 5))
    control, channel = raw_channel(server, 2)
    sock = RawSocket(server.unix_socket, 2)
    try:
        for cmd in [("GET", "big"), ("LRANGE", "biglist", "0", "-1"),
                    ("GETRANGE", "big", "1000", "-1000"), ("DUMP", "big")]:
            request = encode_command(*cmd)
            assert channel.call(request) == sock.request(request), cmd
        assert channel.call(encode_command("SET", "big2", value)) == b"+OK\r\n"
        assert sock.call("GET", "big2") == b"$%d\r\n%b\r\n" % (len(value), value)
    finally:
        channel.close()
        sock.close()
        control.close()
