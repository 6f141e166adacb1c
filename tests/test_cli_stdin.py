"""Commands read from stdin, one per line, against the real redis-cli.

Each case feeds the same lines to both tools on the same server (stdout a
pipe, so raw output; FAKETTY for the human format), over shared memory and
with --shm off.  Lines that write use keys only that case touches, and the
data is reset before each tool runs, so both see the same state.
"""

from __future__ import annotations

import re

import pytest
from cli_diff import REDIS_CLI, SHMCLI, Case, run_tool
from servers import Server, free_port

SEED = [("SET", "s", "hello"), ("RPUSH", "l", "a", "b", "c"), ("HSET", "h", "f", "v"),
        ("SET", "bin", b"\x00\x01\xff\r\n")]

# (lines, extra flags, env)
LINE_CASES: list[tuple[bytes, list[str], dict[str, str]]] = [
    (b'set a 1\nget a\n\nfoo\n2 incr cnt2\nget "a\nlrange l 0 -1\n', [], {}),
    (b"get s\nGET s\r\nget missing\nlrange l 0 -1\nhgetall h\nget bin\n", [], {}),
    (b"echo \"a\\x41\\n\\t\\\\\" 'it\\'s' \"x\\q\"\n", [], {}),
    (b"echo \"a\"b\necho 'a'b\necho \"open\necho 'open\necho a\"b c\" d\n", [], {}),
    (b"echo \"\\x4\" \"\\xZZ\" \"\\\"\"\n", [], {}),
    (b"  \t \n\t echo   spaced   out  \n", [], {}),
    (b"3 ping\n0 ping\n-1 ping\n99999999999999999999 ping\n\"\" ping\n+ ping\n3\n", [], {}),
    (b":set hints\n:set nohints\n:set foo\n:foo bar\nrestart\nping\n", [], {}),
    (b"ping\nquit\nping\n", [], {}),
    (b"ping\nEXIT now\nping\n", [], {}),
    (b"set e1 x\nincr e1\nget e1\n", ["-e"], {}),
    (b"get s\nlrange l 0 -1\nget missing\nfoo\nhgetall h\nincr s\nget bin\n", [], {"FAKETTY": "1"}),
    (b"get s\nlrange l 0 -1\nhgetall h\n", ["--csv"], {}),
    (b"get s\nlrange l 0 -1\nhgetall h\nfoo\n", ["--json"], {}),
    (b"lrange l 0 -1\nget s\n", ["-d", ",", "-D", "|"], {}),
    (b"info keyspace\nclient getname\n", ["--csv"], {}),
    (b"select 3\nset in3 x\nget in3\nselect 0\nget in3\n", [], {}),
    (b"hello 3\nhgetall h\nhello 2\nhgetall h\n", [], {"FAKETTY": "1"}),
    (b"multi\nincr m\nincr m\nexec\nget m\n", [], {}),
    (b"ping\nping\n", ["-i", "0.01"], {}),
    (b"ping\n", ["-r", "3"], {}),
    (b"clear\nping\n", [], {}),
    (b"ping", [], {}),  # no final newline
    (b"", [], {}),
]


def without_client_ids(out: bytes) -> bytes:
    """HELLO's reply carries the connection's id, which differs per run."""
    return re.sub(rb'("id" => | 8\) )\(integer\) \d+', rb"\1(integer) N", out)


def reset(srv: Server) -> None:
    with srv.admin() as conn:
        conn.execute("FLUSHALL")
        conn.execute_many(SEED)


def compare_lines(srv: Server, shm: str) -> list[str]:
    differ = []
    for lines, flags, env in LINE_CASES:
        case = Case(["-s", srv.unix_socket, *flags], stdin=lines, env=env)
        reset(srv)
        theirs = run_tool(REDIS_CLI, case.argv, case.stdin, case.env)
        reset(srv)
        ours = run_tool([*SHMCLI, "--shm", shm], case.argv, case.stdin, case.env)
        if (without_client_ids(ours.stdout), ours.stderr, ours.returncode) != \
                (without_client_ids(theirs.stdout), theirs.stderr, theirs.returncode):
            differ.append(f"{lines!r} {flags} {env}:\n  shmcli    {ours!r}\n  redis-cli {theirs!r}")
    return differ


@pytest.mark.parametrize("shm", ["auto", "off"])
def test_lines_from_stdin_match_redis_cli(server: Server, shm: str) -> None:
    differ = compare_lines(server, shm)
    assert not differ, "\n".join(differ)


def test_no_server_prints_the_error_per_command_and_exits_0() -> None:
    port = str(free_port())
    for stdin in (b"ping\nping\n", b"", b"quit\n"):
        theirs = run_tool(REDIS_CLI, ["-p", port], stdin)
        ours = run_tool(SHMCLI, ["-p", port], stdin)
        assert (ours.stdout, ours.stderr, ours.returncode) == \
            (theirs.stdout, theirs.stderr, theirs.returncode)
    assert ours.returncode == 0


def test_a_slow_command_reports_its_duration_in_the_human_format(make_server) -> None:
    srv = make_server("redis")
    for tool in (REDIS_CLI, SHMCLI):
        run = run_tool(tool, ["-s", srv.unix_socket], b"blpop nothing 0.6\nping\n",
                       {"FAKETTY": "1"})
        # the duration's format, and a lower bound (a busy machine may add to it)
        duration = re.fullmatch(rb"\(nil\)\n\((\d+\.\d\d)s\)\nPONG\n", run.stdout)
        assert duration and float(duration.group(1)) >= 0.6, (tool, run.stdout)
        raw = run_tool(tool, ["-s", srv.unix_socket], b"blpop nothing 0.6\n")
        assert raw.stdout == b"\n"


def test_connect_switches_server(make_server) -> None:
    first, second = make_server("redis"), make_server("valkey")
    with second.admin() as conn:
        conn.execute("SET", "where", "second")
    lines = f"set where first\nconnect 127.0.0.1 {second.port}\nget where\n".encode()
    for tool in (REDIS_CLI, SHMCLI):
        run = run_tool(tool, ["-p", str(first.port)], lines)
        assert run.stdout == b"OK\nsecond\n", (tool, run)


def test_server_gone_mid_stream_reconnects_per_command(make_server) -> None:
    srv = make_server("redis")
    lines = b"ping\nshutdown nosave\nping\nping\n"
    ours = run_tool(SHMCLI, ["-p", str(srv.port)], lines)
    srv.start()  # restore for the oracle run
    theirs = run_tool(REDIS_CLI, ["-p", str(srv.port)], lines)
    assert (ours.stdout, ours.stderr, ours.returncode) == \
        (theirs.stdout, theirs.stderr, theirs.returncode)
    assert ours.stdout == b"PONG\n" and ours.stderr.count(b"Could not connect") == 2


def test_help_matches_redis_cli_apart_from_the_version_line(make_server, tmp_path) -> None:
    """help, help <command>, help <command> <subcommand>, help @group, ? and an
    unknown topic, from the server's COMMAND DOCS (module commands included)."""
    srv = make_server("redis")
    env = {"XDG_CACHE_HOME": str(tmp_path)}  # no table kept by another test
    lines = (b"help set\nhelp @hyperloglog\nhelp config\nhelp CONFIG get\nhelp nosuch\n"
             b"? get\nhelp @string\nhelp\n")
    theirs = run_tool(REDIS_CLI, ["-s", srv.unix_socket], lines)
    ours = run_tool(SHMCLI, ["-s", srv.unix_socket], lines, env)
    assert ours.stdout.replace(b"shmcli 0.1.0\n", b"redis-cli 7.0.15\n") == theirs.stdout
    assert b"\x1b[1mSET\x1b[0m" in ours.stdout
    # A module command without docs: redis-cli prints "(null)" as its summary.
    module = run_tool(SHMCLI, ["-s", srv.unix_socket], b"help shm.handshake\n", env).stdout
    assert b"\x1b[1mSHM.HANDSHAKE\x1b[0m" in module and b"(null)" not in module
    one_shot = run_tool(SHMCLI, ["-s", srv.unix_socket, "help", "get"], env=env)
    assert one_shot.stdout == run_tool(REDIS_CLI, ["-s", srv.unix_socket, "help", "get"]).stdout
    # in a transaction, help is still answered (COMMAND DOCS is not queued)
    queued = run_tool(SHMCLI, ["-s", srv.unix_socket], b"multi\nhelp get\ndiscard\n", env)
    assert queued.stdout.startswith(b"OK\n\r\n  \x1b[1mGET\x1b[0m")


def test_help_without_a_server_uses_the_table_kept_from_the_last_one(make_server,
                                                                    tmp_path) -> None:
    """redis-cli has a table built in; shmcli keeps the COMMAND DOCS of the
    servers it saw in its cache directory, and uses the last one."""
    srv = make_server("redis")
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    run_tool(SHMCLI, ["-s", srv.unix_socket], b"help get\n", env)  # reads and keeps the table
    assert [path.name.startswith("commands-redis-") for path in (tmp_path / "shmcli").iterdir()] \
        == [True]
    port = str(free_port())
    lines = (b"help get\nhelp set\nhelp @hyperloglog\nhelp config get\nhelp @string\n"
             b"help nosuch\n3 help echo\nhelp\n")
    theirs = run_tool(REDIS_CLI, ["-p", port], lines)
    ours = run_tool(SHMCLI, ["-p", port], lines, env)
    assert (ours.stderr, ours.returncode) == (theirs.stderr, theirs.returncode)
    if srv.version == "7.0.15":  # the version whose table redis-cli 7.0.15 has built in
        assert ours.stdout.replace(b"shmcli 0.1.0\n", b"redis-cli 7.0.15\n") == theirs.stdout
    assert b"\x1b[1mSET\x1b[0m" in ours.stdout and b"\x1b[1mPFADD\x1b[0m" in ours.stdout
