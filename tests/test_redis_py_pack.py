"""shmcli.redis_py packs requests faster than redis-py does (redis_py_pack),
and must send the very bytes redis-py would, or fail the way redis-py fails:
compared here for many kinds of argument, with the sync and the asyncio
connection and several encodings (also run on the oldest redis-py, by
test_redis_py_suite.py)."""

from __future__ import annotations

import enum

import pytest
import redis

from shmcli import redis_py, redis_py_asyncio
from shmcli.redis_py_pack import quick_packer


class Colour(enum.IntEnum):
    RED = 1


class Text(str):
    pass


ARGUMENTS = [
    ("GET", "k"),
    (b"GET", b"k"),
    ("SET", "k", "v", "EX", 100),
    ("SET", "clé", "ünïcode ✓", "PX", -1),
    ("SET", "", b""),
    ("SET", b"with space", "tab\tand\nnewline"),
    ("INCRBY", "k", 10 ** 30),
    ("INCRBY", "k", -(2 ** 63)),
    ("INCRBY", "k", -(2 ** 63) - 1),
    ("INCRBY", "k", 2 ** 64 - 1),
    ("INCRBY", "k", 2 ** 64),
    ("get", "k"),
    ("CLIENT SETNAME", "x"),        # a first argument of two words
    (b"CLIENT SETNAME", b"x"),
    ("CLIENT\tID",),
    (b"GET\tX", b"k"),              # bytes are split on spaces only
    (" GET ", "k"),
    ("", "k"),                      # no word at all
    (b"", "k"),
    ("GET\u00a0", "k"),              # not a space to bytes.split()
    ("ÿ", "k"),
    ("GET",),
    ("SET", "k", 1.5),              # floats: redis-py's own packer
    ("SET", "k", 0.1), ("SET", "k", 1e100), ("SET", "k", float("nan")),
    ("SET", "k", True),             # refused by redis-py
    ("SET", "k", None),
    ("SET", "k", memoryview(b"mv")),
    ("SET", "k", bytearray(b"ba")),
    ("SET", "k", Colour.RED),       # an int subclass: redis-py encodes its repr
    ("SET", Text("k"), "v"),        # a str subclass
    (Text("GET"), "k"),
    ("SET", "k", "\udc80"),         # not encodable strictly
    ("SET", "k", ["a list"]),
    (memoryview(b"GET"), "k"),
    (bytearray(b"GET"), "k"),
    (5, "k"),
]

ENCODINGS = [("utf-8", "strict"), ("UTF8", "strict"), ("latin-1", "strict"),
             ("utf-8", "replace"), ("utf-8", "surrogateescape")]


def packed_or_error(pack, args: tuple) -> tuple:
    try:
        return ("bytes", pack(args))
    except Exception as exc:  # noqa: BLE001 - what a caller of redis-py would see
        return ("error", type(exc), str(exc))


CLASSES = {"sync": redis_py.ShmUnixConnection, "asyncio": redis_py_asyncio.ShmUnixConnection}


@pytest.mark.parametrize("kind", list(CLASSES))
@pytest.mark.parametrize("encoding,errors", ENCODINGS)
def test_requests_are_the_bytes_redis_py_packs(kind: str, encoding: str, errors: str) -> None:
    connection = CLASSES[kind](path="/nowhere", encoding=encoding, encoding_errors=errors)
    pack = quick_packer(connection)
    for args in ARGUMENTS:
        expected = packed_or_error(lambda a: b"".join(connection.pack_command(*a)), args)
        assert packed_or_error(pack, args) == expected, args
        assert packed_or_error(pack, args) == expected, args  # and when remembered


@pytest.mark.parametrize("kind", list(CLASSES))
def test_the_common_arguments_skip_redis_pys_packer(monkeypatch, kind: str) -> None:
    """Where hiredis is there and the encoding is UTF-8, plain str, int and
    bytes never reach redis-py's packer (else this module saves nothing)."""
    pytest.importorskip("hiredis")
    connection = CLASSES[kind](path="/nowhere")
    calls = []
    monkeypatch.setattr(connection, "pack_command", lambda *a: calls.append(a) or [b""])
    pack = quick_packer(connection)
    for args in (("GET", "k"), (b"SET", "k", b"v", "EX", 10), ("INCRBY", "n", -5)):
        pack(args)
    assert calls == []
    # a float, and an int hiredis must never see (10**4300 crashes hiredis 3.5)
    for args in (("SET", "k", 1.5), ("SET", "k", 10 ** 4300)):
        pack(args)
    assert calls == [("SET", "k", 1.5), ("SET", "k", 10 ** 4300)]


def test_a_pipeline_packs_what_redis_py_would() -> None:
    """A pipeline's batch holds redis-py's own packing, command by command."""
    commands = [args for args in ARGUMENTS if packed_or_error(
        lambda a: redis.Connection().pack_command(*a), args)[0] == "bytes"]
    batch = redis_py.ShmUnixConnection(path="/nowhere").pack_commands(commands)
    expected = redis.Connection()
    assert list(batch) == [b"".join(expected.pack_command(*args)) for args in commands]
