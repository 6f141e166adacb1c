"""The reply corpus shared by the output tests: data to load, and commands
whose replies cover every reply type (RESP2 and RESP3) once that data is in."""

from __future__ import annotations

BINARY = b"\x00\x01\xff\xf0\x7f q\"uo'te\\ \t\r\n\a\b\f\x1b end"
UNICODE = "h\u00e9llo \u2603 \U0001f600".encode()

LUA_NESTED = "return {1, {2, {3, {}}, 'a'}, {}, 'b'}"
LUA_ERROR_IN_ARRAY = "return {1, redis.error_reply('boom'), 'x'}"
LUA_STATUS = "return redis.status_reply('FINE')"
LUA_MAP = ("redis.setresp(3); return {map={k1={1}, k2={1, 2}, k3={map={x={1, 2}}},"
           " k4={map={y=1}}, k5={}}}")
LUA_MAP_NUMERIC_KEYS = "redis.setresp(3); return {map={[1]='one', [2.5]='x'}}"
LUA_SET = "redis.setresp(3); return {set={a=true}}"
LUA_TRUE = "redis.setresp(3); return true"
LUA_FALSE = "redis.setresp(3); return false"
LUA_DOUBLE = "redis.setresp(3); return {double=3.25}"
LUA_NEGATIVE = "return -9007199254740991"

# (id, argv): every command is read-only once the data is loaded, so that
# redis-cli and shmcli see the same reply.
CORPUS: list[tuple[str, list[str]]] = [
    ("status", ["PING"]),
    ("status-set", ["SET", "ok-key", "v"]),
    ("status-lua", ["EVAL", LUA_STATUS, "0"]),
    ("error-unknown", ["NOSUCHCOMMAND", "a", "b"]),
    ("error-wrongtype", ["LLEN", "s"]),
    ("integer", ["STRLEN", "s"]),
    ("integer-negative", ["EVAL", LUA_NEGATIVE, "0"]),
    ("bulk", ["GET", "s"]),
    ("bulk-binary", ["GET", "bin"]),
    ("bulk-unicode", ["GET", "uni"]),
    ("bulk-newlines", ["GET", "nl"]),
    ("bulk-empty", ["GET", "empty"]),
    ("nil", ["GET", "missing"]),
    ("nil-array", ["BLPOP", "missing-list", "0.01"]),
    ("array-9", ["LRANGE", "l12", "0", "8"]),
    ("array-12", ["LRANGE", "l12", "0", "-1"]),
    ("array-100", ["LRANGE", "l100", "0", "-1"]),
    ("array-binary", ["MGET", "bin", "uni", "missing", "nl"]),
    ("array-empty", ["LRANGE", "missing", "0", "-1"]),
    ("array-nested", ["EVAL", LUA_NESTED, "0"]),
    ("array-error-inside", ["EVAL", LUA_ERROR_IN_ARRAY, "0"]),
    ("xrange", ["XRANGE", "st", "-", "+"]),
    ("hgetall", ["HGETALL", "h"]),
    ("hgetall-empty", ["HGETALL", "missing"]),
    ("smembers", ["SMEMBERS", "set"]),
    ("smembers-empty", ["SMEMBERS", "missing"]),
    ("zrange-withscores", ["ZRANGE", "z", "0", "-1", "WITHSCORES"]),
    ("zscore", ["ZSCORE", "z", "b"]),
    ("zscore-inf", ["ZSCORE", "z", "c"]),
    ("xinfo-stream", ["XINFO", "STREAM", "st"]),
    ("command-info", ["COMMAND", "INFO", "get"]),
    ("config-get", ["CONFIG", "GET", "maxmemory-policy"]),
    ("lua-map", ["EVAL", LUA_MAP, "0"]),
    ("lua-map-numeric-keys", ["EVAL", LUA_MAP_NUMERIC_KEYS, "0"]),
    ("lua-set", ["EVAL", LUA_SET, "0"]),
    ("lua-true", ["EVAL", LUA_TRUE, "0"]),
    ("lua-false", ["EVAL", LUA_FALSE, "0"]),
    ("lua-double", ["EVAL", LUA_DOUBLE, "0"]),
    *[(f"debug-{kind}", ["DEBUG", "PROTOCOL", kind])
      for kind in ("string", "integer", "double", "null", "array", "set", "map",
                   "verbatim", "true", "false")],
]

# Load this first (every CORPUS command is read-only afterwards).
SEED: list[list[str | bytes]] = [
    ["SET", "s", "hello world"], ["SET", "bin", BINARY], ["SET", "uni", UNICODE],
    ["SET", "nl", "line1\nline2\r\n"], ["SET", "empty", ""],
    ["RPUSH", "l12", *"abcdefghijkl"],
    ["RPUSH", "l100", *[str(i) for i in range(100)]],
    ["HSET", "h", "f1", "v1", "f2", BINARY],
    ["SADD", "set", "3", "1", "2"],
    ["ZADD", "z", "1", "a", "2.5", "b", "inf", "c"],
    ["XADD", "st", "1-1", "f1", "v1", "f2", "v2"], ["XADD", "st", "2-1", "f", "v"],
]
