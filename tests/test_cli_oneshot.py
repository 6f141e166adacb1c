"""One-shot shmcli commands against the real redis-cli: same stdout, same exit code.

The groundwork of issue #3's differential suite: each case runs redis-cli and
shmcli with the same arguments against the same server (stdout a pipe, so
redis-cli prints raw), over shared memory and with --shm off.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from cli_diff import Case, differences, run_pair, run_tool
from servers import Server

# Read-only or idempotent commands, so both tools see the same data.
CASES = [
    ("GET", "s"), ("GET", "missing"), ("STRLEN", "s"), ("LRANGE", "l", "0", "-1"),
    ("HGETALL", "h"), ("SMEMBERS", "one"), ("ZRANGE", "z", "0", "-1", "WITHSCORES"),
    ("EXISTS", "s", "l"), ("TYPE", "h"), ("NOSUCHCOMMAND",), ("GET",), ("LPOP", "h"),
    ("INFO", "keyspace"), ("CLIENT", "GETNAME"), ("PING",), ("ECHO", "a\tb \"q\""),
    ("OBJECT", "ENCODING", "l"), ("SET", "s", "hello world"),
]


SAMPLE = [("SET", "s", "hello world"), ("RPUSH", "l", "a", "", "c d"),
          ("HSET", "h", "f", "v", "g", "w"), ("SADD", "one", "x"),
          ("ZADD", "z", "1.5", "m", "2", "n")]


@pytest.fixture
def data(server: Server) -> Server:
    with server.admin() as conn:
        conn.execute_many(SAMPLE)
    return server


def run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return run_tool([], argv, env=env)


def compare(server: Server, argvs: list[list[str]], shm: str) -> list[str]:
    return differences([Case(argv, stderr_matters=False) for argv in argvs],
                       target=["-s", server.unix_socket], shm=shm)


@pytest.mark.parametrize("shm", ["auto", "off"])
def test_one_shot_output_matches_redis_cli(data: Server, shm: str) -> None:
    differ = compare(data, [list(case) for case in CASES], shm)
    assert not differ, "\n".join(differ)


OUTPUT_FLAGS = [["--raw"], ["--no-raw"], ["--csv"], ["--json"], ["--quoted-json"],
                ["--csv", "--raw"], ["--raw", "--no-raw"], ["-3"], ["-3", "--no-raw"],
                ["--json", "-2"], ["-d", ","], ["-D", "|"]]
FLAG_CASES = [("LRANGE", "l", "0", "-1"), ("HGETALL", "h"), ("GET", "missing"),
              ("NOSUCHCOMMAND",), ("ZRANGE", "z", "0", "-1", "WITHSCORES")]


def test_output_flags_match_redis_cli(make_server) -> None:
    """Every output flag, and the last one winning, on one server (the
    formats themselves are covered reply type by reply type in test_output)."""
    srv = make_server("redis")
    with srv.admin() as conn:
        conn.execute_many(SAMPLE)
    differ = compare(srv, [[*flags, *case] for flags in OUTPUT_FLAGS for case in FLAG_CASES],
                     "auto")
    assert not differ, "\n".join(differ)


def test_faketty_selects_the_human_format(data: Server) -> None:
    for case in (("LRANGE", "l", "0", "-1"), ("GET", "missing"), ("HGETALL", "h")):
        theirs = run(["redis-cli", "-s", data.unix_socket, *case], env={"FAKETTY": "1"})
        ours = run([sys.executable, "-m", "shmcli", "-s", data.unix_socket, *case],
                   env={"FAKETTY": "1"})
        assert ours.stdout == theirs.stdout, case
        assert b")" in ours.stdout or b"(nil)" in ours.stdout  # really the human format


@pytest.mark.parametrize("argv", [["-r", "3", "ECHO", "x"], ["-r", "2", "-i", "0.01", "PING"],
                                  ["-r", "0", "PING"], ["-a", "nopass", "PING"],
                                  ["--no-auth-warning", "-a", "nopass", "PING"]])
def test_repeat_and_auth_warnings_match_redis_cli(make_server, argv: list[str]) -> None:
    srv = make_server("redis")
    theirs, ours = run_pair(argv, target=["-s", srv.unix_socket])
    assert (ours.stdout, ours.stderr, ours.returncode) == \
        (theirs.stdout, theirs.stderr, theirs.returncode)


def test_x_reads_the_last_argument_from_stdin(make_server) -> None:
    srv = make_server("redis")
    value = b"line one\nline two\n\x00binary"
    for tool, key in ((["redis-cli"], "theirs"), ([sys.executable, "-m", "shmcli"], "ours")):
        run = subprocess.run([*tool, "-s", srv.unix_socket, "-x", "SET", key], input=value,
                             capture_output=True, timeout=60)
        assert run.stdout == b"OK\n"
    with srv.admin() as conn:
        assert conn.execute("GET", "theirs") == conn.execute("GET", "ours")
        assert conn.execute("GET", "ours").data == value


def test_uris_match_redis_cli(make_server) -> None:
    srv = make_server("redis", config={"requirepass": "s3cret"})
    with srv.admin() as conn:
        conn.execute_many([("SELECT", "2"), ("SET", "in-db-2", "v")])
    base = f"127.0.0.1:{srv.port}"
    cases = [[f"redis://:s3cret@{base}/2", "DBSIZE"], [f"redis://default:s3cret@{base}", "PING"],
             [f"redis://:s%33cret@{base}/2", "GET", "in-db-2"], [f"redis://{base}", "PING"],
             ["http://x", "PING"], [f"redis://%zz@{base}", "PING"], [f"redis://%4@{base}", "PING"],
             [f"redis://:wrong@{base}/2", "DBSIZE"]]
    differ = []
    for uri, *command in cases:
        for extra in ([], ["--no-auth-warning"]):
            argv = [*extra, "-u", uri, *command]
            theirs = run(["redis-cli", *argv])
            ours = run([sys.executable, "-m", "shmcli", *argv])
            if (ours.stdout, ours.stderr, ours.returncode) != \
                    (theirs.stdout, theirs.stderr, theirs.returncode):
                differ.append(f"{argv}:\n  shmcli    {ours!r}\n  redis-cli {theirs!r}")
    assert not differ, "\n".join(differ)


@pytest.mark.parametrize("argv", [["--bogus", "PING"], ["-p"], ["-n"], ["-r"],
                                  ["-p", "abc", "PING"], ["-p", "1", "PING"]])
def test_bad_flags_and_unreachable_servers_match_redis_cli(argv: list[str]) -> None:
    theirs = run(["redis-cli", *argv])
    ours = run([sys.executable, "-m", "shmcli", *argv])
    assert (ours.stdout, ours.stderr, ours.returncode) == \
        (theirs.stdout, theirs.stderr, theirs.returncode)
    assert ours.returncode == 1


# Input flags, -e and --eval: (argv, stdin).  Run over shm and the socket.
INPUT_CASES = [
    (["-X", "TAG", "ECHO", "TAG"], b"from stdin\n"),
    (["-X", "TAG", "SET", "x1", "TAG"], b"\x00bin\xff"),
    (["-X", "TAG", "ECHO", "nothing"], b"unused"),
    (["-X", "TAG", "-r", "2", "ECHO", "TAG"], b"twice"),
    (["-x", "ECHO"], b""),
    (["-e", "GET"], b""), (["-e", "PING"], b""), (["-e", "-r", "3", "NOSUCH"], b""),
    (["-e", "--no-raw", "LPOP", "s"], b""), (["-e", "--json", "NOSUCH"], b""),
    (["--quoted-input", "ECHO", '"a\\x41\\n"'], b""),
    (["--quoted-input", "SET", "'k 1'", '"v\\x00"'], b""),
    (["--quoted-input", "ECHO", '"unterminated'], b""),
    (["--quoted-input", "ECHO", "a b"], b""), (["--quoted-input", "ECHO", ""], b""),
    (["--quoted-input", "-x", "ECHO"], b"tail"),
    (["-r", "2", "-D", "|", "SET", "cnt", "1"], b""),
    (["SHM.HANDSHAKE", "extra"], b""),
]


@pytest.mark.parametrize("shm", ["auto", "off"])
def test_input_flags_and_exit_codes_match_redis_cli(data: Server, shm: str) -> None:
    differ = differences([Case(argv, stdin) for argv, stdin in INPUT_CASES],
                         target=["-s", data.unix_socket], shm=shm)
    assert not differ, "\n".join(differ)


SCRIPTS = {
    "keys_args.lua": b"return {KEYS[1], KEYS[2], ARGV[1], ARGV[2], #KEYS, #ARGV}",
    "error.lua": b"return redis.call('INCR', KEYS[1])",
    "syntax.lua": b"return {",
    "nil.lua": b"return nil",
}


def test_eval_matches_redis_cli(data: Server, tmp_path) -> None:
    for name, body in SCRIPTS.items():
        (tmp_path / name).write_bytes(body)
    kv = str(tmp_path / "keys_args.lua")
    cases = [[kv, "k1", "k2", ",", "a1", "a2"], [kv, ",", "a1"], [kv, "k1", ",a1"],
             [kv, "k1", ",", ",", "a2"], [kv], [str(tmp_path / "error.lua"), "s"],
             ["--no-raw", str(tmp_path / "error.lua"), "s"], [str(tmp_path / "syntax.lua")],
             [str(tmp_path / "nil.lua")], [str(tmp_path / "missing.lua")], [str(tmp_path)]]
    argvs = [["--eval", *case] for case in cases]
    argvs += [["-e", "--eval", str(tmp_path / "error.lua"), "s"], ["--eval", kv, "-e", "x"],
              ["-n", "99", "--eval", kv], ["-a", "wrong", "--eval", kv]]
    for shm in ("auto", "off"):
        differ = differences([Case(argv) for argv in argvs], target=["-s", data.unix_socket],
                             shm=shm)
        assert not differ, "\n".join(differ)


@pytest.mark.parametrize("mode_env", [({}, ["--show-pushes", "y"]), ({"FAKETTY": "1"}, []),
                                      ({"FAKETTY": "1"}, ["--show-pushes", "no"]),
                                      ({}, ["--no-raw"]), ({}, ["--json"])])
def test_pushes_are_shown_as_redis_cli_shows_them(data: Server, mode_env) -> None:
    env, flags = mode_env
    lines = (b"set pk v\nclient tracking on\nget pk\nset pk changed\nping\n"
             b"rpush pl a\nlrange pl 0 -1\ndel pl\nping\n")  # leaves the data as it was
    for shm in ("auto", "off"):
        differ = differences([Case(["-3", *flags], lines, env)],
                             target=["-s", data.unix_socket], shm=shm)
        assert not differ, "\n".join(differ)


def stream_until(argv: list[str], server: Server, expect: int, publish) -> bytes:
    """Start a streaming command, run `publish` once it is listening, read
    `expect` lines, then interrupt it as a user would."""
    proc = subprocess.Popen([*argv, "-s", server.unix_socket, "SUBSCRIBE", "ch1", "ch2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={"FAKETTY": "1", "PATH": "/usr/bin:/bin"})
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline()]
        while len(lines) < expect:
            if len(lines) == 7:  # both confirmations are in (6 lines + the banner)
                publish()
            lines.append(proc.stdout.readline())
        return b"".join(lines)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_subscribe_streams_messages_like_redis_cli(data: Server) -> None:
    def publish() -> None:
        with data.admin() as conn:
            conn.execute("PUBLISH", "ch2", "hello")
            conn.execute("PUBLISH", "ch1", "bin\x00ary")
    outputs = [stream_until(tool, data, 13, publish)
               for tool in (["redis-cli"], [sys.executable, "-m", "shmcli"])]
    assert outputs[0] == outputs[1]
    assert outputs[1].startswith(b"Reading messages... (press Ctrl-C to quit)\n1) \"subscribe\"")
    assert b'3) "bin\\x00ary"' in outputs[1]


def test_shutdown_succeeds_silently(make_server) -> None:
    srv = make_server("redis")
    ours = run([sys.executable, "-m", "shmcli", "-s", srv.unix_socket, "SHUTDOWN", "NOSAVE"])
    assert (ours.stdout, ours.stderr, ours.returncode) == (b"", b"", 0)
    srv.process.wait(timeout=10)
    theirs_srv = make_server("redis")
    theirs = run(["redis-cli", "-s", theirs_srv.unix_socket, "SHUTDOWN", "NOSAVE"])
    assert (theirs.stdout, theirs.stderr, theirs.returncode) == (b"", b"", 0)


def test_monitor_streams_until_interrupted(data: Server) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "shmcli", "-s", data.unix_socket, "MONITOR"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"OK\n"
        with data.admin() as conn:
            conn.execute("ECHO", "seen by monitor")
        line = proc.stdout.readline()
        assert line.endswith(b'"ECHO" "seen by monitor"\n') and line[0:1].isdigit()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_verbose_names_the_transport_that_carried_the_command(data: Server) -> None:
    base = [sys.executable, "-m", "shmcli", "--verbose", "-s", data.unix_socket]
    assert run([*base, "PING"]).stderr == b"# transport: shm\n"
    assert run([*base, "BLPOP", "nothing", "0.01"]).stderr == b"# transport: socket\n"
    assert run([*base, "--shm", "off", "PING"]).stderr == b"# transport: socket\n"
