"""`shmcli --pipe` against the real `redis-cli --pipe`.

Each differential case runs both tools on the same input against the same
server, from an empty server each time, and compares stdout, stderr, the exit
status and the data left behind (every key of every db, DUMPed), over shared
memory and with --shm off.  Other tests check what a comparison cannot: that
the commands really went through shared memory, that refused commands keep
their place in the order, the splitter against the Python splitargs, input
cut anywhere, large values, and servers that are gone.
"""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys

import pytest
from cli_diff import REDIS_CLI, SHMCLI, run_tool
from servers import Server, shm_stat, wait_until

from shmcli.channel import PipeBuffer
from shmcli.pipe_mode import PipeRun
from shmcli.resp import Array, Bulk, Integer, encode_command, parse_one
from shmcli.splitargs import split_args


def resp(*args: bytes | str) -> bytes:
    return encode_command(*args)


BINARY = bytes(range(256)) + b"\r\n\r\n\x00end"

# Inputs whose runs end at once (no --pipe-timeout wait).
FAST_CASES: list[tuple[str, bytes, list[str]]] = [
    ("errors", resp("SET", "k1", "v1") + resp("PING") + resp("FOO") + b"INCR k1\r\n", []),
    ("empty", b"", []),
    ("inline and RESP mixed, LF only, no final newline",
     b"SET a 1\r\n" + resp("INCR", "a") + b"SET x 1\nGET x\n  \r\n\nAPPEND x 2", []),
    ("binary values", resp("SET", "bin", BINARY) + resp("GET", "bin")
     + b'SET q "\\x00\\r\\n\\xff\\"" \'it\\\'s\'\r\nRPUSH bl "a b" \'c d\' e\r\n', []),
    ("type errors", b"INCR a\r\nSET a x\r\nINCR a\r\nLPUSH a 1\r\nHSET\r\nGET a\r\n", []),
    ("refused MULTI in the middle keeps the order",
     b"RPUSH l 1\r\nMULTI\r\nRPUSH l 2\r\nEXEC\r\nRPUSH l 3\r\n", []),
    ("blocking commands with data", b"RPUSH q a b c\r\nBLPOP q 0\r\nBRPOP q 0\r\n"
     b"RPUSH l x\r\nBLMOVE q l LEFT RIGHT 0\r\nRPUSH l y\r\nXADD s 1-1 f v\r\n"
     b"XREAD COUNT 1 STREAMS s 0\r\nXREAD BLOCK 0 STREAMS s 0\r\nRPUSH l z\r\n", []),
    ("SELECT in the middle", b"SET a 1\r\nSELECT 2\r\nSET b 2\r\nSELECT 0\r\nSET c 3\r\n", []),
    ("SELECT inside MULTI", b"MULTI\r\nSELECT 3\r\nEXEC\r\nSET k v\r\nINCR n\r\n", []),
    ("WATCH, DISCARD", b"WATCH a\r\nSET a 1\r\nMULTI\r\nINCR a\r\nEXEC\r\n"
     b"MULTI\r\nINCR a\r\nDISCARD\r\nINCR a\r\nUNWATCH\r\n", []),
    ("HELLO in the middle", b"HELLO 3\r\nHSET h f v\r\nHGETALL h\r\nHELLO 2\r\nFOO\r\n", []),
    ("refused by the module, not by name",
     b"SET a 1\r\nCONFIG SET maxmemory-samples 5\r\nSET b 2\r\nWAIT 0 0\r\nSET c 3\r\n", []),
    ("empty commands", b"*0\r\n*-1\r\n\r\n\n   \r\nPING\r\n*1\r\n$4\r\nPING\r\n", []),
    ("bytes after a bulk are skipped unchecked",
     b"*3\r\n$3\r\nSET\r\n$1\r\nkxx$1\r\nvyyPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", []),
    ("RESP3 connection", b"HSET h f v\r\nHGETALL h\r\nFOO\r\n" + resp("ECHO", BINARY), ["-3"]),
    ("db chosen with -n", b"SET a 1\r\nINCR n\r\nSELECT 4\r\nSET b 2\r\n", ["-n", "2"]),
    ("long stream with refusals",
     b"".join(b"SET k%d %d\r\n" % (i, i) for i in range(3000)) + b"RPUSH l 1\r\n"
     + b"CONFIG SET maxmemory-samples 5\r\nRPUSH l 2\r\nMULTI\r\nRPUSH l 3\r\nEXEC\r\n"
     + b"".join(resp("SET", f"m{i}", BINARY) for i in range(3000)) + b"RPUSH l 4\r\n", []),
]

# Protocol errors on some servers (which ones differ: Valkey 9.1 checks every
# CR LF and accepts a closing quote glued to the next word, Redis 7.0 does
# neither): the server answers one and closes the connection.
MALFORMED_CASES: list[tuple[str, bytes]] = [
    ("bad multibulk count", b"PING\r\n*abc\r\n"),
    ("not a bulk", b"SET a 1\r\n*1\r\nx4\r\nPING\r\n"),
    ("unbalanced quotes", b'PING\r\nSET "a b\r\nPING\r\n'),
    ("negative bulk length", b"SET a 1\r\n*1\r\n$-5\r\n"),
    ("leading zero", b"*01\r\n$4\r\nPING\r\n"),
    ("truncated at the end", resp("SET", "x", "1") + b"*3\r\n$3\r\nSET\r\n$2\r\nk1\r\n"),
    ("closing quote glued", b"SET a 1\r\nSET 'a'b c\r\n"),
    # the byte after the count's CR is skipped unchecked, so "3" is read where "$" belongs
    ("count line ended by CR alone", b"*2\r$3\r\nGET\r\n$1\r\nk\r\nPING\r\n"),
]

# Inputs after which no reply ends the run: --pipe-timeout 1 decides.
TIMEOUT_CASES: list[tuple[str, bytes]] = [
    ("SUBSCRIBE", b"SET a 1\r\nSUBSCRIBE c1 c2\r\nSET k v\r\n"),
    ("BLPOP with no data", b"SET a 1\r\nBLPOP nolist 0\r\nSET b 2\r\n"),
    ("MULTI without EXEC", b"MULTI\r\nSET a b\r\n"),
    ("CLIENT REPLY OFF", b"SET a 1\r\nCLIENT REPLY OFF\r\nSET b 2\r\nPING\r\n"),
    ("NUL in an inline command", b"PING\r\nSET a\0b\r\n"),
]


def snapshot(srv: Server) -> dict[int, dict[bytes, bytes]]:
    """Every key of every db and its DUMP."""
    data: dict[int, dict[bytes, bytes]] = {}
    with srv.admin() as conn:
        for db in range(16):
            conn.execute("SELECT", db)
            keys = conn.execute("KEYS", "*")
            assert isinstance(keys, Array)
            for key in keys.items:
                assert isinstance(key, Bulk)
                dump = conn.execute("DUMP", key.data)
                assert isinstance(dump, Bulk)
                data.setdefault(db, {})[key.data] = dump.data
    return data


def flush(srv: Server) -> None:
    with srv.admin() as conn:
        conn.execute("FLUSHALL")


def run_both(srv: Server, stdin: bytes, shm: str, argv: list[str] | None = None,
             timeout: int = 5) -> tuple[tuple[object, ...] | None, tuple[object, ...]]:
    """(redis-cli, shmcli): outputs, exit status and data, each from an empty
    server.  redis-cli itself sometimes dies of SIGPIPE when the server closes
    the connection (it does not ignore it): such a run is repeated, and when
    it keeps dying so, its result is None."""
    args = ["-s", srv.unix_socket, *(argv or []), "--pipe", "--pipe-timeout", str(timeout)]
    theirs = None
    for _ in range(10):
        flush(srv)
        theirs = run_tool(REDIS_CLI, args, stdin)
        if theirs.returncode != -13:
            break
    assert theirs is not None
    expected = (theirs.stdout, theirs.stderr, theirs.returncode, snapshot(srv))
    if theirs.returncode == -13:
        expected = None
    flush(srv)
    ours = run_tool([*SHMCLI, "--shm", shm], args, stdin)
    return expected, (ours.stdout, ours.stderr, ours.returncode, snapshot(srv))


def differs(theirs: tuple[object, ...] | None, ours: tuple[object, ...]) -> bool:
    """ours is not what redis-cli did; when redis-cli died of SIGPIPE, the
    server had hung up on a protocol error, and ours must say so."""
    if theirs is None:
        return not (ours[2] == 1 and b"ERR Protocol error" in ours[1])  # type: ignore[operator]
    return theirs != ours


def describe(name: str, theirs: tuple[object, ...] | None, ours: tuple[object, ...]) -> str:
    if theirs is None:
        return f"{name}: redis-cli died of SIGPIPE each time; shmcli: {ours[:3]!r}"
    return (f"{name}:\n  redis-cli rc={theirs[2]} out={theirs[0]!r} err={theirs[1]!r}\n"
            f"  shmcli    rc={ours[2]} out={ours[0]!r} err={ours[1]!r}\n"
            f"  same data: {theirs[3] == ours[3]}")


@pytest.mark.parametrize("shm", ["require", "off"])
def test_pipe_matches_redis_cli(server: Server, shm: str) -> None:
    differ = []
    for name, stdin, argv in FAST_CASES:
        theirs, ours = run_both(server, stdin, shm, argv)
        if differs(theirs, ours):
            differ.append(describe(name, theirs, ours))
    assert not differ, "\n".join(differ)


@pytest.mark.parametrize("shm", ["require", "off"])
def test_pipe_malformed_input_matches_redis_cli(server: Server, shm: str) -> None:
    differ = []
    for name, stdin in MALFORMED_CASES:
        theirs, ours = run_both(server, stdin, shm)
        if differs(theirs, ours):
            differ.append(describe(name, theirs, ours))
    assert not differ, "\n".join(differ)


@pytest.mark.parametrize("flavour,exec_mode,shm", [("redis", "main-thread", "require"),
                                                    ("valkey", "fast-path", "require"),
                                                    ("redis", "fast-path", "off")])
def test_pipe_timeouts_match_redis_cli(make_server, flavour: str, exec_mode: str,
                                       shm: str) -> None:
    srv = make_server(flavour, exec_mode)
    differ = []
    for name, stdin in TIMEOUT_CASES:
        theirs, ours = run_both(srv, stdin, shm, timeout=1)
        if theirs != ours:
            differ.append(describe(name, theirs, ours))
        assert ours[2] == 1 and b"No replies for 1 seconds: exiting.\n" in ours[1]
    assert not differ, "\n".join(differ)


def test_pipe_input_ending_inside_a_bulk(make_server) -> None:
    """The final ECHO then lands inside the bulk, as it does for redis-cli:
    the rest of it runs as odd inline commands and no last reply comes.  What
    those do depends on the ECHO's random bytes (a quote in them is a protocol
    error), so only what does not is compared."""
    server = make_server("redis", "fast-path")
    stdin = b"SET a 1\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\nab"
    for shm in ("require", "off"):
        theirs, ours = run_both(server, stdin, shm, timeout=1)
        if theirs is None:
            continue
        assert (ours[2], ours[3]) == (theirs[2], theirs[3]) == (1, theirs[3])
        assert isinstance(ours[0], bytes) and isinstance(ours[1], bytes)
        assert ours[0].startswith(b"All data transferred. Waiting for the last reply...\n")
        assert b"Last reply" not in ours[0]
        assert ours[1].startswith(b"ERR wrong number of arguments for 'echo' command\n")


def test_pipe_command_too_big_for_a_request_record(server: Server) -> None:
    """More arguments than the module parses: from there on, the raw socket."""
    args = [b"RPUSH", b"many", *([b"x"] * (1024 * 1024 + 1))]
    stdin = b"SET a 1\r\n" + resp(*args) + b"LLEN many\r\nSET b 2\r\nFOO\r\n"
    theirs, ours = run_both(server, stdin, "require")
    assert theirs == ours, describe("many arguments", theirs, ours)
    assert ours[2] == 1 and isinstance(ours[0], bytes)
    assert ours[0].endswith(b"errors: 1, replies: 5\n")


def test_pipe_goes_through_shared_memory(server: Server) -> None:
    """The commands run over the session, refused ones included in order."""
    count = 20000
    stdin = (b"RPUSH order first\r\n"
             + b"".join(b"SET key:%d value:%d\r\n" % (i, i) for i in range(count // 2))
             + b"CONFIG SET maxmemory-samples 5\r\nRPUSH order second\r\n"
             + b"MULTI\r\nRPUSH order third\r\nEXEC\r\nRPUSH q x\r\nBLPOP q 0\r\n"
             + b"".join(resp("SET", f"key:{i}", f"value:{i}") for i in range(count // 2, count))
             + b"RPUSH order last\r\n")
    before = shm_stat(server, "commands")
    done = run_tool([*SHMCLI], ["--shm", "require", "-s", server.unix_socket, "--pipe"], stdin)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith(b"errors: 0, replies: %d\n" % (count + 9))
    assert shm_stat(server, "commands") - before >= count
    with server.admin() as conn:
        assert conn.execute("DBSIZE") == Integer(count + 1)
        assert conn.execute("LRANGE", "order", 0, -1) == Array(
            [Bulk(b"first"), Bulk(b"second"), Bulk(b"third"), Bulk(b"last")])
        for i in (0, count // 2 - 1, count // 2, count - 1):
            assert conn.execute("GET", f"key:{i}") == Bulk(f"value:{i}".encode())


def test_pipe_large_values(server: Server) -> None:
    """Requests and replies larger than a ring record, in fragments."""
    big = os.urandom(3 << 20)
    stdin = (resp("SET", "big", big) + resp("GET", "big") + resp("APPEND", "big", big)
             + resp("STRLEN", "big") + b"GET big\r\n")
    for shm in ("require", "off"):
        flush(server)
        done = run_tool([*SHMCLI, "--shm", shm], ["-s", server.unix_socket, "--pipe"], stdin)
        assert done.returncode == 0, done.stderr
        assert done.stdout.endswith(b"errors: 0, replies: 5\n")
        with server.admin() as conn:
            assert conn.execute("GET", "big") == Bulk(big + big)


class Trickle(io.RawIOBase):
    """An input that hands out a few bytes at a time."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step, self.pos = data, step, 0

    def readable(self) -> bool:
        return True

    def read1(self, size: int = -1) -> bytes:
        n = min(self.step, size if size > 0 else self.step)
        out = self.data[self.pos:self.pos + n]
        self.pos += len(out)
        return out

    read = read1


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_pipe_input_cut_anywhere(server: Server, chunk: int,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    stdin = (b"SET a 1\r\n" + resp("SET", "bin", BINARY) + b'SET "q x" "\\x41\\n"\r\n'
             + b"INCR bin\r\nSELECT 1\r\nSET b 2\r\nMULTI\r\nSET c 3\r\nEXEC\r\n"
             + resp("APPEND", "b", BINARY) + b"PING")
    with server.connect() as conn:
        assert conn.transport == "shm"
        code = PipeRun(conn, Trickle(stdin, 5), 10, chunk=chunk).run()  # type: ignore[arg-type]
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ("All data transferred. Waiting for the last reply...\n"
                   "Last reply received from server.\nerrors: 1, replies: 11\n")
    assert err == "ERR value is not an integer or out of range\n"
    with server.admin() as conn:
        assert conn.execute("GET", "bin") == Bulk(BINARY)
        assert conn.execute("GET", "q x") == Bulk(b"A\n")
        conn.execute("SELECT", 1)
        assert conn.execute("GET", "b") == Bulk(b"2" + BINARY)
        assert conn.execute("GET", "c") == Bulk(b"3")


def split_with_pipe(data: bytes, step: int) -> tuple[list[bytes], bytes | None]:
    """The commands split for the session, and the input handed over to the
    socket (None when nothing was)."""
    pipe = PipeBuffer([], b"m" * 20)
    commands: list[bytes] = []
    for start in range(0, len(data), step):
        count = pipe.feed(data[start:start + step])
        commands += [pipe.command(i) for i in range(count)]
        if pipe.handoff:
            return commands, pipe.tail() + data[start + step:]
    return commands, None


def is_plain_line(line: bytes) -> bool:
    """What the splitter carries: words of bytes no server's splitter reads
    differently (no quote, backslash, control byte), spaces and tabs."""
    return all(c in b" \t" or (c > 0x20 and c != 0x7f and c not in b"\"'\\") for c in line)


def test_splitter_carries_plain_lines_and_hands_off_the_rest() -> None:
    """A plain inline line is split as every server splits it (splitargs);
    any other goes, with all that follows, to the socket as it came."""
    rng = random.Random(7)
    alphabet = b'ab \t"\'\\xX0f\r\x00\x0b\xc3\xa9'
    lines = [bytes(rng.choice(alphabet) for _ in range(rng.randrange(1, 14)))
             for _ in range(3000)]
    lines += [b'"\\x41"', b"'a' b", b"\x0bv", b"a\rb", b"SET k v", b"  GET\tk  ", b"\t"]
    for line in lines:
        data = line + b"\nPING\n"
        commands, handed = split_with_pipe(data, len(data))
        if not is_plain_line(line.removesuffix(b"\r")):
            assert (commands, handed) == ([], data), line
            continue
        expected = split_args(line.removesuffix(b"\r"))
        assert expected is not None, line
        assert commands == ([resp(*expected)] if expected else []) + [resp("PING")], line
        assert handed is None, line


# Canonical multibulks and plain lines, then the first command in another form.
SPLIT_INPUT = (b"SET a 1\r\n" + resp("SET", "bin", BINARY) + b"\r\n\n  \n"
               + b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n" + b"ECHO x\tz\n" * 3)
ODD_TAILS = [b"*0\r\n", b"*-1\r\n", b"*01\r\n$4\r\nPING\r\n", b"*1\r$4\r\nPING\r\n",
             b"*1\r\n$4\rPING\r\n", b"*1\r\n$4\r\nPINGxx", b"*1\r\nx4\r\n",
             b"*1\r\n$+4\r\nPING\r\n", b"*1\r\n$%d\r\n" % (2 << 20), b"SET 'a' b\r\n",
             b'SET "a" b\n', b"SET a\\x b\n", b"SET a\x00b\n", b"X" * 20000 + b"\n"]


@pytest.mark.parametrize("tail", ODD_TAILS, ids=lambda t: repr(t[:12]))
def test_splitter_is_the_same_whatever_the_cut(tail: bytes) -> None:
    data = SPLIT_INPUT + tail + b"PING\r\n"
    whole, handed = split_with_pipe(data, len(data))
    assert len(whole) == 6 and handed == tail + b"PING\r\n"
    for command in whole:
        assert isinstance(parse_one(command), Array)
    for step in (1, 2, 3, 5, 11):
        assert split_with_pipe(data, step) == (whole, handed)


def test_pipe_server_gone_before(make_server) -> None:
    srv = make_server("redis", "main-thread")
    srv.kill()
    argv = ["-s", srv.unix_socket, "--pipe"]
    theirs = run_tool(REDIS_CLI, argv, b"SET a 1\r\n", timeout=30)
    ours = run_tool(SHMCLI, argv, b"SET a 1\r\n", timeout=30)
    assert ours.returncode == 1 and b"Could not connect to Redis at" in ours.stderr
    assert (ours.stdout, ours.stderr, ours.returncode) == \
        (theirs.stdout, theirs.stderr, theirs.returncode)


@pytest.mark.parametrize("shm", ["require", "off"])
def test_pipe_server_dies_during_the_run(make_server, tmp_path, shm: str) -> None:
    srv = make_server("redis", "main-thread")
    stdin_path = tmp_path / "input.resp"
    stdin_path.write_bytes(b"".join(resp("SET", f"k{i}", "v" * 50) for i in range(400000)))
    with open(stdin_path, "rb") as stdin:
        proc = subprocess.Popen([*SHMCLI, "--shm", shm, "-s", srv.unix_socket, "--pipe"],
                                stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            with srv.admin() as conn:
                wait_until(lambda: conn.execute("DBSIZE") != Integer(0), "the first keys")
            srv.kill()
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 1
    assert b"errors:" not in out
    if shm == "require":  # redis-cli says nothing; over the socket we do the same
        assert err == b"Error: Server closed the connection\n"


def test_pipe_takes_the_socket_unless_shared_memory_is_required(server: Server) -> None:
    """Mass insertion is server-bound and cheaper for the server from a socket
    (bench/pipe_bench.py), so --shm auto means the socket here."""
    stdin = b"".join(b"SET key:%d v\r\n" % i for i in range(1000))
    before = shm_stat(server, "commands")
    done = run_tool(SHMCLI, ["-s", server.unix_socket, "--pipe"], stdin)
    assert done.stdout.endswith(b"errors: 0, replies: 1000\n")
    assert shm_stat(server, "commands") == before


def test_pipe_timeout_zero_waits_for_the_last_reply(server: Server) -> None:
    """--pipe-timeout 0 never gives up; here the last reply comes."""
    done = run_tool(SHMCLI, ["-s", server.unix_socket, "--pipe", "--pipe-timeout", "0"],
                    b"RPUSH q a\r\nBLPOP q 0\r\nWAIT 0 0\r\nPING\r\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith(b"errors: 0, replies: 4\n")


def test_pipe_when_stdin_is_slow(server: Server) -> None:
    """Commands run as they arrive, not only at the end of the input."""
    proc = subprocess.Popen([*SHMCLI, "-s", server.unix_socket, "--pipe"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        assert proc.stdin is not None
        proc.stdin.write(b"SET early 1\r\n")
        proc.stdin.flush()
        with server.admin() as conn:
            wait_until(lambda: conn.execute("GET", "early") == Bulk(b"1"), "the first command")
        proc.stdin.write(b"SET late 2\r\n")
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out.endswith(b"errors: 0, replies: 2\n")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
