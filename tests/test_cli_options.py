"""Option parsing against the real redis-cli: messages, their order, exit codes.

Most cases need no server (they fail before connecting) or point at a
closed port; the ones that run a command use a throwaway server.
"""

from __future__ import annotations

import pytest
from cli_diff import SHMCLI, Case, differences, run_tool
from servers import Server, free_port

CLOSED = ["-p", str(free_port())]

# Each fails (or warns) while reading the options, before any connection.
PARSE_CASES = [
    ["--bogus", "PING"], ["-"], ["-p"], ["-n"], ["-r"], ["-i"], ["-X"], ["-d"], ["-D"],
    ["-s"], ["-a"], ["--user"], ["--pass"], ["-u"], ["--eval"], ["--pattern"],
    ["--show-pushes"], ["--pipe-timeout"], ["--count"], ["--quoted-pattern"],
    ["-p", "1", "-p"], ["--raw", "--bogus"], ["--bogus", "--help"],
    ["-x", "-X", "tag", "PING"], ["-X", "tag", "-x", "PING"],
    ["-2", "-3", "PING"], ["-3", "-2", "PING"],
    ["-c", "-s", "/nonexistent", "PING"], ["-s", "/nonexistent", "-c", "PING"],
    ["-a", "pw", "-x", "-X", "t", "PING"], ["-a", "pw", "-2", "-3", "PING"],
    ["-u", "http://x", "-x", "-X", "t"], ["-x", "-X", "t", "-u", "http://x"],
    ["--quoted-pattern", '"unterminated', "--scan"],
    ["--quoted-pattern", "two words", "--scan"],
]


def test_parse_errors_match_redis_cli() -> None:
    differ = differences([Case(argv) for argv in PARSE_CASES])
    assert not differ, "\n".join(differ)


# Warnings that do not stop the run, then a connection failure (rc 1).
WARNING_CASES = [
    [*CLOSED, "-a", "pw", "PING"], [*CLOSED, "--pass", "pw", "PING"],
    [*CLOSED, "--no-auth-warning", "-a", "pw", "PING"], [*CLOSED, "-a", "pw", "--no-auth-warning"],
    [*CLOSED, "-u", "redis://:pw@127.0.0.1:1", "PING"],
    [*CLOSED, "--show-pushes", "maybe", "PING"], [*CLOSED, "--show-pushes", "", "PING"],
    [*CLOSED, "--show-pushes", "YES", "PING"],
    ["-h", "127.0.0.1", *CLOSED, "PING"], ["-p", "abc", "PING"], [*CLOSED, "-n", "3", "PING"],
    ["-s", "/nonexistent/sock", "PING"],
    [*CLOSED, "--eval", "/nonexistent.lua"], [*CLOSED, "-x", "-r", "3", "ECHO"],
]


def test_warnings_and_unreachable_servers_match_redis_cli() -> None:
    differ = differences([Case(argv) for argv in WARNING_CASES])
    assert not differ, "\n".join(differ)


# Ports redis-cli keeps in a C int and hiredis resolves with getaddrinfo():
# 99999 is port 34463 to glibc (nothing is there to answer), -5 is refused
# with glibc's reason, 2^32 wraps to 0; the message names the typed port.
PORT_CASES = [
    ["-p", "99999", "PING"], ["-p", "-5", "PING"], ["-p", "65536", "PING"],
    ["-p", "100000", "PING"], ["-p", "-100000", "PING"], ["-p", "4294967296", "PING"],
    ["-p", "99999999999999999999", "PING"], ["-h", "localhost", "-p", "99999", "PING"],
    ["-u", "redis://127.0.0.1:99999", "PING"], ["-u", "redis://127.0.0.1:-5/3", "PING"],
    ["-u", "redis://127.0.0.1:4294967296", "PING"],
    ["-p", "99999", "--stat"], ["-p", "-5", "--scan"], ["-p", "99999", "--bigkeys"],
    ["-p", "-5", "--latency"], ["-p", "99999", "--latency-dist"], ["-p", "-5", "--pipe"],
    ["-p", "99999", "--eval", "/dev/null"], ["-p", "-5", "-r", "2", "PING"],
]


def test_out_of_range_ports_match_redis_cli() -> None:
    cases = [Case(argv) for argv in PORT_CASES]
    cases += [Case(["-p", "99999"], b"PING\n"), Case(["-p", "-5"], b"PING\nPING\n")]
    differ = differences(cases)
    assert not differ, "\n".join(differ)


def test_out_of_range_numbers_are_no_tracebacks(make_server) -> None:
    """-i and --pipe-timeout beyond what a sleep or a socket timeout holds
    behave as redis-cli's C types make them (-i NaN sleeps 0)."""
    srv = make_server("redis")
    cases = [Case(["-r", "2", "-i", "1e400", "PING"]), Case(["-r", "2", "-i", "nan", "PING"]),
             Case(["-r", "2", "-i", "-inf", "PING"]), Case(["-n", "4294967296", "PING"]),
             Case(["--pipe-timeout", "99999999999999", "--pipe"], b"PING\r\n"),
             Case(["--pipe-timeout", "-1", "--pipe"], b"PING\r\n")]
    differ = differences(cases, target=["-s", srv.unix_socket])
    assert not differ, "\n".join(differ)


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "1 ", " "])
def test_t_refuses_what_redis_cli_7_4_refuses(value: str) -> None:
    ours = run_tool(SHMCLI, ["-t", value, *CLOSED, "PING"])
    assert (ours.stdout, ours.stderr, ours.returncode) == \
        (b"", b"Invalid connection timeout for -t.\n", 1)


@pytest.mark.parametrize("value", ["1e400", "inf", "0", ""])
def test_t_without_a_bound_waits_as_connect_does(make_server, value: str) -> None:
    srv = make_server("redis")
    ours = run_tool(SHMCLI, ["-t", value, "-s", srv.unix_socket, "PING"])
    assert (ours.stdout, ours.stderr, ours.returncode) == (b"PONG\n", b"", 0)


def test_uri_then_flags_override_in_order(make_server) -> None:
    """-u fills host and port where it stands: a later -p wins, an earlier one loses."""
    srv = make_server("redis")
    good = f"redis://127.0.0.1:{srv.port}"
    cases = [Case([*CLOSED, "-u", good, "PING"]), Case(["-u", good, *CLOSED, "PING"])]
    differ = differences(cases)
    assert not differ, "\n".join(differ)
    ours = run_tool(SHMCLI, ["-n", "1", "-u", f"{good}/2", "CLIENT", "INFO"])
    assert b" db=2 " in ours.stdout


@pytest.mark.parametrize("argv", [["--help"], ["-h"], ["PING", "--help"], ["-p", "1", "--help"]])
def test_help_is_printed_on_stdout_with_status_0(argv: list[str]) -> None:
    ours = run_tool(SHMCLI, argv)
    if argv == ["PING", "--help"]:  # after the command it is an argument: a connection error
        assert ours.returncode == 1 and b"Could not connect" in ours.stderr
        return
    assert ours.returncode == 0 and ours.stderr == b""
    assert ours.stdout.startswith(b"shmcli ")
    for flag in (b"--pipe", b"--scan", b"--eval", b"-X <tag>", b"--shm", b"--quoted-input"):
        assert flag in ours.stdout


@pytest.mark.parametrize("flag", ["-v", "--version"])
def test_version(flag: str) -> None:
    ours = run_tool(SHMCLI, [flag, "PING"])
    assert ours.returncode == 0
    assert ours.stdout.startswith(b"shmcli 0.") and b"redis-cli 7.0.15 compatible" in ours.stdout


@pytest.mark.parametrize("flag", ["--replica", "--hotkeys", "--lru-test", "--cluster",
                                  "--cluster-yes", "--cluster-replicas", "--cluster-copy"])
def test_unsupported_modes_say_so(flag: str) -> None:
    valued = ("--lru-test", "--cluster", "--cluster-replicas")
    argv = [flag, "10"] if flag in valued else [flag]
    ours = run_tool(SHMCLI, [*CLOSED, *argv, "PING"])
    assert ours.returncode == 1
    assert ours.stderr == f"shmcli: {flag} is not supported (see docs/compatibility.md)\n".encode()


def test_our_shm_flag_is_checked() -> None:
    ours = run_tool(SHMCLI, ["--shm", "sometimes", "PING"])
    assert ours.returncode == 1
    assert ours.stderr == b"--shm must be auto, require or off, not 'sometimes'\n"


def test_shm_require_fails_clearly_without_the_module(make_server) -> None:
    srv: Server = make_server("redis", load_module=False)
    ours = run_tool(SHMCLI, ["--shm", "require", "-s", srv.unix_socket, "PING"])
    assert ours.returncode == 1 and ours.stdout == b""
    assert ours.stderr.startswith(b"shmcli: shared memory is not available")
    fallback = run_tool(SHMCLI, ["--verbose", "-s", srv.unix_socket, "PING"])
    assert (fallback.stdout, fallback.stderr) == (b"PONG\n", b"# transport: socket\n")
    # Looking for the module is no error on a server without it.
    assert srv.info("stats")["total_error_replies"] == "0"
    assert srv.info("errorstats") == {}


def test_askpass_reads_the_password_from_stdin_without_a_terminal(make_server) -> None:
    srv = make_server("redis", config={"requirepass": "s3cret"})
    cases = [Case(["--askpass", "PING"], b"s3cret\n"), Case(["--askpass", "PING"], b"wrong\n"),
             Case(["-a", "wrong", "--askpass", "PING"], b"s3cret\n"),
             Case(["--askpass", "PING"], b"s3cret\nmore\n"),
             Case(["--askpass"], b"s3cret\nping\nget x\n")]
    differ = differences(cases, target=["-s", srv.unix_socket])
    assert not differ, "\n".join(differ)
    env_auth = [Case(["PING"], env={"REDISCLI_AUTH": "s3cret"}),
                Case(["-a", "wrong", "PING"], env={"REDISCLI_AUTH": "s3cret"})]
    differ = differences(env_auth, target=["-s", srv.unix_socket])
    assert not differ, "\n".join(differ)


def test_t_bounds_the_connect_only(make_server) -> None:
    """-t (redis-cli 7.4) is a connect timeout: a longer BLPOP still gets its reply."""
    srv = make_server("redis")
    for shm in ("auto", "off"):
        ours = run_tool(SHMCLI, ["--shm", shm, "-t", "0.2", "-s", srv.unix_socket,
                                 "BLPOP", "nothing", "0.6"])
        assert (ours.stdout, ours.stderr, ours.returncode) == (b"\n", b"", 0)


def test_connection_flags_match_redis_cli(make_server) -> None:
    srv = make_server("redis", config={"requirepass": "dpw"})
    with srv.admin() as conn:
        conn.execute_many([("ACL", "SETUSER", "alice", "on", ">apw", "~*", "+@all"),
                           ("SELECT", "2"), ("SET", "in2", "two"), ("HSET", "h2", "f", "v")])
    uri = f"redis://alice:apw@127.0.0.1:{srv.port}/2"
    argvs = [["--user", "alice", "--pass", "apw", "ACL", "WHOAMI"],
             ["--user", "alice", "-a", "bad", "ACL", "WHOAMI"],
             ["--user", "alice", "ACL", "WHOAMI"],
             ["-a", "dpw", "-n", "2", "GET", "in2"], ["-a", "dpw", "-n", "99", "PING"],
             ["-a", "bad", "-n", "2", "-3", "PING"],
             ["-a", "dpw", "-n", "2", "-3", "HGETALL", "h2"],
             ["-a", "dpw", "-n", "2", "--json", "HGETALL", "h2"],
             ["-a", "dpw", "-n", "2", "-2", "--json", "HGETALL", "h2"],
             ["--no-auth-warning", "-u", uri, "ACL", "WHOAMI"], ["-u", uri, "GET", "in2"]]
    for shm in ("auto", "off"):
        differ = differences([Case(argv) for argv in argvs], target=["-p", str(srv.port)],
                             shm=shm)
        assert not differ, "\n".join(differ)
