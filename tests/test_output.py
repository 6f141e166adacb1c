"""Differential tests of shmcli.output against the real redis-cli 7.0.15.

For every command of a corpus that covers each reply type (status, error,
integer, bulk strings with binary bytes, quotes, unicode and newlines, nil,
empty and nested aggregates, and under RESP3 maps, sets, doubles, booleans,
null, verbatim strings, big numbers, attributes and pushes), in RESP2 and
RESP3 and in every output mode, the bytes ``redis-cli`` writes to a pipe must
equal ``format_reply()`` of the typed reply shmcli reads for the same
command.  ``--no-raw`` gives the TTY format on a pipe; ``FAKETTY`` is unset
except in the push test, where it makes redis-cli print pushes.

One plain redis-server (no module: this is about formatting, not transport)
serves the whole file, with DEBUG enabled for ``DEBUG PROTOCOL``.

Where redis-cli 7.0.15 cannot print a reply at all (big numbers: "Unknown
reply type: 13"; attributes: hiredis protocol error) the test checks that it
still fails that way, and checks shmcli's rendering against redis-cli's output
for the RESP2 form of the same reply, which the server sends as a plain bulk
string.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator

import pytest
from reply_corpus import CORPUS, SEED

from shmcli import connect
from shmcli.connection import Connection
from shmcli.output import MODES, forces_raw, format_reply
from shmcli.resp import (
    NOT_ENOUGH,
    Array,
    Attribute,
    BigNumber,
    BlobError,
    Bulk,
    Error,
    Push,
    Reader,
    Reply,
    encode_command,
)
from shmcli.testing import Server

MODE_FLAGS = {"tty": "--no-raw", "raw": "--raw", "csv": "--csv", "json": "--json",
              "quoted-json": "--quoted-json"}

# RESP3 replies redis-cli 7.0.15 cannot print (see module docstring).
UNPRINTABLE_RESP3 = {"bignum": "Unknown reply type: 13",
                     "attrib": 'Protocol error, got "|" as reply type byte'}


@pytest.fixture(scope="module")
def srv() -> Iterator[Server]:
    server = Server("redis", load_module=False,
                    config={"enable-debug-command": "yes"}).start()
    try:
        with server.admin() as conn:
            for cmd in SEED:
                assert not isinstance(conn.execute(*cmd), Exception)
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def conns(srv: Server) -> Iterator[dict[int, Connection]]:
    opened = {p: connect(unix_socket=srv.unix_socket, shm="off", protocol=p, timeout=30.0)
              for p in (2, 3)}
    yield opened
    for conn in opened.values():
        conn.close()


def redis_cli(srv: Server, protocol: int, mode: str, argv: list[str],
              faketty: bool = False) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "FAKETTY"}
    if faketty:
        env["FAKETTY"] = "1"
    return subprocess.run(
        ["redis-cli", "-s", srv.unix_socket, f"-{protocol}", MODE_FLAGS[mode], *argv],
        capture_output=True, stdin=subprocess.DEVNULL,
        env=env, timeout=60, check=False)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("argv", [c[1] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_matches_redis_cli(srv: Server, conns: dict[int, Connection], argv: list[str],
                           protocol: int, mode: str) -> None:
    expected = redis_cli(srv, protocol, mode, argv)
    assert expected.returncode == 0, expected.stderr
    reply = conns[protocol].execute(*argv)
    assert format_reply(reply, mode) == expected.stdout


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ["bignum", "attrib", "push"])
def test_resp2_forms_of_resp3_only_types(srv: Server, conns: dict[int, Connection],
                                         kind: str, mode: str) -> None:
    argv = ["DEBUG", "PROTOCOL", kind]
    expected = redis_cli(srv, 2, mode, argv)
    assert expected.returncode == 0, expected.stderr
    assert format_reply(conns[2].execute(*argv), mode) == expected.stdout


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", sorted(UNPRINTABLE_RESP3))
def test_resp3_types_redis_cli_cannot_print(srv: Server, conns: dict[int, Connection],
                                            kind: str, mode: str) -> None:
    """Excluded from the differential corpus because redis-cli 7.0.15 exits 1
    on them; shmcli renders them like their RESP2 form instead (a big number
    like a double, an attribute by the reply it annotates)."""
    argv = ["DEBUG", "PROTOCOL", kind]
    broken = redis_cli(srv, 3, mode, argv)
    assert broken.returncode == 1
    assert UNPRINTABLE_RESP3[kind].encode() in broken.stderr

    reply = conns[3].execute(*argv)
    resp2 = conns[2].execute(*argv)
    assert isinstance(resp2, Bulk)
    if kind == "attrib":
        assert isinstance(reply, Attribute) and reply.value == resp2
        assert format_reply(reply, mode) == redis_cli(srv, 2, mode, argv).stdout
    else:
        assert isinstance(reply, BigNumber) and reply.text == resp2.data
        label = b"(big number) " if mode == "tty" else b""
        assert format_reply(reply, mode) == label + resp2.data + b"\n"


@pytest.mark.parametrize("mode", MODES)
def test_push_as_printed_on_a_tty(srv: Server, mode: str) -> None:
    """With FAKETTY redis-cli prints a push that comes before the reply in
    its output mode; one that comes after (Redis 7.2+, Valkey send the reply
    first) is left unread by a one-shot command."""
    argv = ["DEBUG", "PROTOCOL", "push"]
    expected = redis_cli(srv, 3, mode, argv, faketty=True)
    assert expected.returncode == 0, expected.stderr
    with socket.socket(socket.AF_UNIX) as raw:  # the order the server sends them in
        raw.connect(srv.unix_socket)
        raw.sendall(encode_command("HELLO", 3) + encode_command(*argv))
        reader = Reader()
        replies: list[Reply] = []
        while len(replies) < 3:
            reader.feed(raw.recv(65536))
            while (got := reader.gets()) is not NOT_ENOUGH:
                replies.append(got)  # type: ignore[arg-type]
    push_first = isinstance(replies[1], Push)
    push, reply = (replies[1], replies[2]) if push_first else (replies[2], replies[1])
    assert isinstance(push, Push) and not isinstance(reply, Push)
    printed = format_reply(reply, mode)
    assert (format_reply(push, mode) + printed if push_first else printed) == expected.stdout


def test_raw_delimiters(srv: Server, conns: dict[int, Connection]) -> None:
    for argv in (["LRANGE", "l12", "0", "3"], ["HGETALL", "h"], ["GET", "missing"],
                 ["NOSUCHCOMMAND"]):
        for protocol in (2, 3):
            expected = subprocess.run(
                ["redis-cli", "-s", srv.unix_socket, f"-{protocol}", "--raw",
                 "-d", "<d>", "-D", "<D>", *argv],
                capture_output=True, timeout=60, check=True,
                env={k: v for k, v in os.environ.items() if k != "FAKETTY"})
            got = format_reply(conns[protocol].execute(*argv), "raw",
                               delimiter=b"<d>", reply_delimiter=b"<D>")
            assert got == expected.stdout, argv


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("argv", [["INFO", "keyspace"], ["LATENCY", "DOCTOR"]])
def test_commands_printed_raw_in_every_mode(srv: Server, conns: dict[int, Connection],
                                            argv: list[str], mode: str) -> None:
    """redis-cli prints these raw, without the -D delimiter, in every mode."""
    assert forces_raw(argv)
    expected = redis_cli(srv, 3, mode, argv)
    assert expected.returncode == 0, expected.stderr
    reply = conns[3].execute(*argv)
    assert format_reply(reply, "raw", reply_delimiter=b"") == expected.stdout


def test_forces_raw_rules() -> None:
    assert forces_raw([b"info"]) and forces_raw(["Client", "LIST"])
    assert forces_raw(["latency", "graph", "x"]) and not forces_raw(["latency", "graph"])
    assert forces_raw(["cluster", "nodes"]) and not forces_raw(["cluster", "nodes", "x"])
    assert not forces_raw(["get", "info"]) and not forces_raw([])


def test_unknown_mode() -> None:
    with pytest.raises(ValueError):
        format_reply(Bulk(b"x"), "yaml")


@pytest.mark.parametrize("mode", MODES)
def test_blob_error_and_nested_attribute_like_their_plain_forms(mode: str) -> None:
    """No server command sends these, so they are checked against the forms
    redis-cli does print: a blob error as a simple error, an attribute by the
    reply it annotates, also inside an aggregate."""
    plain = Array([Error(b"ERR x"), Bulk(b"v")])
    fancy = Array([BlobError(b"ERR x"), Attribute([(Bulk(b"a"), Bulk(b"b"))], Bulk(b"v"))])
    assert format_reply(fancy, mode) == format_reply(plain, mode)
