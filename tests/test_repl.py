"""The interactive shell, driven through a real pseudo-terminal (pexpect).

prompt_toolkit draws with cursor movements, so expectations match the
visible text (e.g. the prompt without its trailing space).  The terminal
has a fixed size and PROMPT_TOOLKIT_NO_CPR=1, so no cursor-position
requests make the tests flaky.  Where what stays on the screen matters
(scrollback, colours, the completion menu), the output is also fed to a
terminal emulator (pyte) and its screen is read.  Each shell gets its own
cache directory (XDG_CACHE_HOME), so no test sees another's command table.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pexpect
import pyte
import pytest
from cli_diff import REDIS_CLI, SHMCLI, run_tool
from servers import Server, free_port

from shmcli.resp import Bulk

TIMEOUT = 15
ROWS, COLUMNS = 40, 160


def spawn(argv: list[str], history: Path | str, term: str = "xterm-256color",
          extra_env: dict[str, str] | None = None,
          tool: list[str] | None = None) -> pexpect.spawn:
    env = {k: v for k, v in os.environ.items() if k not in ("FAKETTY", "REDISCLI_AUTH")}
    env.update(PROMPT_TOOLKIT_NO_CPR="1", TERM=term, REDISCLI_HISTFILE=str(history),
               XDG_CACHE_HOME=str(Path(history).parent / "cache") if isinstance(history, Path)
               else tempfile.mkdtemp(prefix="shmcli-test-cache-"),
               **(extra_env or {}))
    tool = tool or SHMCLI
    return pexpect.spawn(tool[0], [*tool[1:], *argv], env=env,
                         dimensions=(ROWS, COLUMNS), timeout=TIMEOUT, encoding="utf-8",
                         codec_errors="replace")


class Screen:
    """The terminal as the user sees it: everything the shell writes, fed
    to a VT100 emulator.  Attach it before the first expect."""

    def __init__(self, child: pexpect.spawn) -> None:
        self.child = child
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self.stream = pyte.Stream(self.screen)
        child.logfile_read = self  # pexpect writes what it reads here

    def write(self, data: str) -> None:
        self.stream.feed(data)

    def flush(self) -> None:
        pass

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display]

    def wait_for(self, condition: Callable[[list[str]], bool], what: str) -> list[str]:
        """Read the shell's output until condition(lines) holds."""
        deadline = time.monotonic() + TIMEOUT
        while not condition(self.lines()):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the screen:\n"
                                     + "\n".join(self.lines()))
            try:
                self.child.read_nonblocking(65536, timeout=0.1)
            except pexpect.TIMEOUT:
                pass
        return self.lines()

    def row(self, text: str) -> int:
        """The last row that contains text."""
        rows = [n for n, line in enumerate(self.lines()) if text in line]
        assert rows, f"{text!r} is not on the screen"
        return rows[-1]

    def colours(self, row: int, start: int, end: int) -> set[str]:
        line = self.screen.buffer[row]
        return {line[column].fg for column in range(start, end)}


def finish(child: pexpect.spawn) -> int:
    """Ctrl-D at the prompt.  A Ctrl-D typed while a command still runs is
    eaten by the terminal's line discipline, so it is repeated."""
    for _ in range(TIMEOUT * 4):
        child.sendcontrol("d")
        try:
            child.expect(pexpect.EOF, timeout=0.25)
            break
        except pexpect.TIMEOUT:
            continue
    child.close()
    return child.exitstatus


@pytest.fixture
def srv(make_server) -> Server:
    return make_server("redis")


@pytest.fixture
def history(tmp_path: Path) -> Path:
    return tmp_path / "history"


def test_prompt_tracks_db_and_transaction(srv: Server, history: Path) -> None:
    child = spawn(["-p", str(srv.port)], history)
    prompt = f"127.0.0.1:{srv.port}"
    child.expect_exact(f"{prompt}>")
    child.sendline("select 3")
    child.expect_exact(f"{prompt}[3]>")
    child.sendline("multi")
    child.expect_exact(f"{prompt}[3](TX)>")
    child.sendline("select 4")
    child.expect_exact("QUEUED")
    child.sendline("exec")
    child.expect_exact(f"{prompt}[4]>")  # the queued SELECT took effect at EXEC
    child.sendline("multi")
    child.expect_exact("(TX)>")
    child.sendline("discard")
    child.expect_exact(f"{prompt}[4]>")
    assert finish(child) == 0


def test_unix_socket_prompt_and_not_connected(srv: Server, history: Path) -> None:
    child = spawn(["-s", srv.unix_socket], history)
    child.expect_exact(f"redis {srv.unix_socket}>")
    assert finish(child) == 0
    child = spawn(["-p", str(free_port())], history)
    child.expect_exact("Could not connect to Redis at 127.0.0.1:")
    child.expect_exact("not connected>")
    child.sendline("ping")
    child.expect_exact("Could not connect to Redis at")
    child.expect_exact("not connected>")
    assert finish(child) == 0


def test_replies_use_the_human_format_and_the_toolbar_shows_the_transport(
        srv: Server, history: Path) -> None:
    child = spawn(["-s", srv.unix_socket], history)
    child.sendline("rpush l a b")
    child.expect_exact("(integer) 2")
    child.sendline("lrange l 0 -1")
    child.expect_exact('1) "a"')
    child.expect_exact('2) "b"')
    child.expect(r"shm · last [\d,]+ µs")
    child.sendline("blpop nothing 0.01")
    child.expect(r"socket · last [\d,]+ µs")  # blocking commands go over the socket
    assert finish(child) == 0


def test_hint_and_completion_from_command_docs(srv: Server, history: Path) -> None:
    child = spawn(["-s", srv.unix_socket], history)
    child.expect_exact(">")
    child.send("set k v ")
    child.expect_exact("[NX|XX] [GET] [EX seconds|PX milliseconds")
    child.sendcontrol("u")
    child.send("hge\t")
    child.expect_exact("HGET")
    child.sendcontrol("u")
    child.send("config ge\t")
    child.expect_exact("GET")
    child.sendcontrol("u")
    child.send("shm.hand\t")  # module commands come from COMMAND DOCS too
    child.expect_exact("SHM.HANDSHAKE")
    child.sendcontrol("u")
    assert finish(child) == 0


def test_keys_complete_from_what_was_typed(srv: Server, history: Path) -> None:
    """SCAN MATCH on the typed prefix: found among 30,000 keys, on the
    first Tab, the exact key offered with the longer ones; a key with a
    space is inserted quoted."""
    with srv.admin() as conn:
        for start in range(0, 30_000, 5_000):
            conn.execute("MSET", *(f"mass:{i}".encode() if n % 2 == 0 else b"x"
                                   for i in range(start, start + 5_000) for n in range(2)))
        conn.execute("MSET", "uni:a", "1", "uni:b", "2", "uni:c", "3", "uni:d", "4",
                     "sp ace:1", "spaced")
    child = spawn(["-s", srv.unix_socket], history)
    screen = Screen(child)
    child.expect_exact(">")
    child.send("get uni:\t")  # one Tab: the menu lists the four
    screen.wait_for(lambda lines: all(f"uni:{c}" in "".join(lines) for c in "abcd"),
                    "the uni: keys in the completion menu")
    child.sendcontrol("u")
    child.send("get mass:2999\t")
    # the menu shows as many as fit under the line: the exact key comes first
    menu = screen.wait_for(lambda lines: sum("mass:2999" in line for line in lines) >= 6,
                           "the mass:2999* keys in the completion menu")
    entries = [line.strip() for line in menu if line.strip().startswith("mass:2999")]
    assert entries == ["mass:2999", *(f"mass:2999{d}" for d in range(len(entries) - 1))]
    child.sendcontrol("u")
    child.send("get sp\t")
    child.expect_exact('ace:1"')  # the one key, inserted as "sp ace:1"
    child.sendline("")
    child.expect_exact('"spaced"')
    assert finish(child) == 0


def test_history_file_rules(srv: Server, history: Path) -> None:
    child = spawn(["-s", srv.unix_socket], history)
    for line in ("set a 1", "set a 1", "auth nobody wrong", "get a", 'get "bad',
                 "config set requirepass x", "0 ping"):
        child.sendline(line)
        child.expect_exact(">")
    assert finish(child) == 0
    assert history.read_text() == 'set a 1\nget a\nget "bad\n'
    assert oct(history.stat().st_mode & 0o777) == "0o600"
    child = spawn(["-s", srv.unix_socket], history)  # loaded again: Up recalls it
    child.expect_exact(">")
    child.send("\x1b[A")
    child.expect_exact('"bad')
    child.sendcontrol("u")
    assert finish(child) == 0


def test_no_history_file_with_dev_null(srv: Server, tmp_path: Path) -> None:
    child = spawn(["-s", srv.unix_socket], "/dev/null", extra_env={"HOME": str(tmp_path)})
    child.sendline("ping")
    child.expect_exact("PONG")
    assert finish(child) == 0
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_at_the_prompt_exits_0_and_in_a_blocking_command_exits_1(
        srv: Server, history: Path) -> None:
    child = spawn(["-s", srv.unix_socket], history)
    child.expect_exact(">")
    child.send("get half-typed")
    child.sendcontrol("c")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    child = spawn(["-s", srv.unix_socket], history)
    child.expect_exact(">")
    child.sendline("blpop nothing 0")
    time.sleep(0.5)
    child.sendcontrol("c")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1


def test_subscribe_streams_until_ctrl_c_then_the_prompt_returns(srv: Server,
                                                                 history: Path) -> None:
    child = spawn(["-s", srv.unix_socket, "-n", "2"], history)
    child.sendline("subscribe ch")
    child.expect_exact("Reading messages... (press Ctrl-C to quit)")
    child.expect_exact("(integer) 1")
    with srv.admin() as conn:
        conn.execute("PUBLISH", "ch", "hello")
    child.expect_exact('3) "hello"')
    time.sleep(0.6)  # long enough for the duration line
    child.sendcontrol("c")
    child.expect(r"\(\d+\.\d\ds\)")
    child.expect_exact(f"redis {srv.unix_socket}[2]>")
    child.sendline("ping")  # a normal connection again, still on db 2
    child.expect_exact("PONG")
    assert finish(child) == 0


def test_reconnect_restores_db_protocol_user_and_name(make_server, history: Path) -> None:
    srv = make_server("redis", config={"appendonly": "no"})
    with srv.admin() as conn:
        conn.execute("ACL", "SETUSER", "alice", "on", ">pw", "~*", "+@all")
        conn.execute("CONFIG", "SET", "save", "")
    child = spawn(["-p", str(srv.port)], history)
    prompt = f"127.0.0.1:{srv.port}"
    for line, reply in (("select 6", "OK"), ("hello 3", "proto"), ("auth alice pw", "OK"),
                        ("client setname mine", "OK")):
        child.sendline(line)
        child.expect_exact(reply)
    child.expect_exact(f"{prompt}[6]>")
    srv.restart()
    with srv.admin() as conn:
        conn.execute("ACL", "SETUSER", "alice", "on", ">pw", "~*", "+@all")
    child.sendline("set marker 1")  # the old connection is gone: an error, then reconnect
    child.expect_exact(f"{prompt}")
    child.sendline("set marker 1")
    child.expect_exact("OK")
    child.expect_exact(f"{prompt}[6]>")
    child.sendline("client info")
    child.expect(r"name=mine .*db=6 .*user=alice .*resp=3")
    child.sendline("ping")
    child.expect_exact("shm · last")  # the shared-memory session is back too
    child.sendline("hset h f v")
    child.sendline("hgetall h")  # RESP3 really is on: a map
    child.expect_exact('1# "f" => "v"')
    assert finish(child) == 0
    with srv.admin() as conn:
        assert conn.execute_many([("SELECT", "6"), ("GET", "marker")])[1].data == b"1"


def test_term_dumb_prints_a_plain_prompt(srv: Server, history: Path) -> None:
    child = spawn(["-p", str(srv.port)], history, term="dumb")
    child.expect_exact(f"127.0.0.1:{srv.port}> ")
    child.sendline("incr counter")
    child.expect_exact("(integer) 1")
    child.expect_exact(f"127.0.0.1:{srv.port}> ")
    assert finish(child) == 0
    assert history.read_text() == "incr counter\n"


def test_help_in_the_shell(srv: Server, history: Path) -> None:
    """The summary is the server's own (its wording changed in Redis 7.2)."""
    with srv.admin() as conn:
        docs = conn.execute("COMMAND", "DOCS", "get")
    fields = dict(zip(docs.items[1].items[::2], docs.items[1].items[1::2], strict=True))  # type: ignore[attr-defined]
    summary = fields[Bulk(b"summary")].data.decode()
    child = spawn(["-s", srv.unix_socket], history)
    child.sendline("help get")
    child.expect_exact("summary:")
    child.expect_exact(summary)
    assert finish(child) == 0


# redis-cli's own interactive cases (tests/integration/redis-cli.tcl, 7.0.15):
# FAKETTY output with commands on a pipe, compared with the real redis-cli.
PORTED = [
    b"info\n", b"set key foo\n", b"incr counter\n", b"set key foo\nget key\n",
    b"rpush list foo\nrpush list bar\nlrange list 0 -1\n",
    b'set key "bar"\nget key\nset key " bar "\nget key\nset key "\\"bar\\""\nget key\n'
    b'set key "\\tbar\\t"\nget key\nget ""key\nget "key"x\nset key"" bar\nget key\n',
]


@pytest.mark.parametrize("lines", PORTED)
def test_redis_cli_interactive_cases(srv: Server, lines: bytes) -> None:
    runs = []
    for tool in (REDIS_CLI, SHMCLI):
        with srv.admin() as conn:
            conn.execute("FLUSHALL")
        runs.append(run_tool(tool, ["-s", srv.unix_socket], lines, {"FAKETTY": "1",
                                                                    "TERM": "dumb"}))
    theirs, ours = runs
    if lines == b"info\n":  # INFO differs run to run; both print it raw
        assert all(re.fullmatch(rb"|#.*|[^#:]+:.*", line.rstrip(b"\r"))
                   for line in ours.stdout.split(b"\n"))
        return
    assert (ours.stdout, ours.returncode) == (theirs.stdout, theirs.returncode)


def shell_with_pager(srv: Server, history: Path, tmp_path: Path, script: str) -> pexpect.spawn:
    """A shell whose PAGER is `script`, on a server with a 100-item list "long"."""
    pager = tmp_path / "pager.sh"
    pager.write_text("#!/bin/sh\n" + script)
    pager.chmod(0o755)
    with srv.admin() as conn:
        conn.execute("RPUSH", "long", *[f"item-{i}" for i in range(100)])
    return spawn(["-s", srv.unix_socket], history, extra_env={"PAGER": str(pager)})


def test_long_replies_go_through_the_pager_when_asked(srv: Server, history: Path,
                                                      tmp_path: Path) -> None:
    child = shell_with_pager(srv, history, tmp_path, "echo PAGER-START\ncat\necho PAGER-END\n")
    child.sendline("lrange long 0 -1")  # off by default, as redis-cli
    child.expect_exact('100) "item-99"')
    child.sendline(":set pager")
    child.sendline("lrange long 0 -1")
    child.expect_exact("PAGER-START")
    child.expect_exact('100) "item-99"')
    child.expect_exact("PAGER-END")
    child.sendline("ping")  # short replies stay on the terminal
    child.expect_exact("PONG")
    assert finish(child) == 0


def test_the_duration_shown_leaves_out_the_pager(srv: Server, history: Path,
                                                 tmp_path: Path) -> None:
    child = shell_with_pager(srv, history, tmp_path, "cat\nsleep 3\necho PAGER-END\n")
    child.sendline(":set pager")
    child.sendline("lrange long 0 -1")
    child.expect_exact("PAGER-END")
    child.sendline("ping")
    child.expect_exact("PONG")
    durations = [float(d) for d in re.findall(r"\((\d+\.\d\d)s\)", child.before)]
    assert all(d < 3 for d in durations), durations  # the 3 s were the pager's
    assert finish(child) == 0


def test_rc_file_preferences(srv: Server, history: Path, tmp_path: Path) -> None:
    rc = tmp_path / "rc"
    rc.write_text(":set nohints\n:set bogus\n")
    child = spawn(["-s", srv.unix_socket], history, extra_env={"REDISCLI_RCFILE": str(rc)})
    child.expect_exact(".redisclirc: unknown redis-cli preference 'bogus'")
    child.send("set k v ")
    with pytest.raises(pexpect.TIMEOUT):
        child.expect_exact("[NX|XX]", timeout=1)
    child.sendcontrol("u")
    child.sendline(":set hints")
    child.send("set k v ")
    child.expect_exact("[NX|XX]")
    child.sendcontrol("u")
    assert finish(child) == 0


def test_keys_strings_and_commands_are_highlighted(srv: Server, history: Path) -> None:
    child = spawn(["-s", srv.unix_socket], history)
    screen = Screen(child)
    child.expect_exact(">")
    child.send('set mykey "a value" \'it is\'')
    # the command in bold blue, the key in cyan, the quoted strings in green
    child.expect_exact("\x1b[0;38;5;75;1mset")
    child.expect_exact("\x1b[0;38;5;80mmykey")
    line = screen.wait_for(lambda lines: any("'it is'" in line for line in lines),
                           "the typed line")[screen.row("mykey")]
    for quoted in ('"a value"', "'it is'"):  # spaces and all
        start = line.index(quoted)
        assert screen.colours(screen.row("mykey"), start, start + len(quoted)) == {"87af87"}
    child.sendcontrol("u")
    child.send("help nosuch")  # a shell command is a command; an unknown one is red
    line = screen.wait_for(lambda lines: any("help nosuch" in line for line in lines),
                           "the typed line")[screen.row("help nosuch")]
    start = line.index("help nosuch")
    assert screen.colours(screen.row("help nosuch"), start, start + 4) == {"5fafff"}
    child.sendcontrol("u")
    child.send("nosuch")
    line = screen.wait_for(lambda lines: any("> nosuch " in line + " " for line in lines),
                           "the typed line")[screen.row("> nosuch")]
    start = line.index("nosuch")
    assert screen.colours(screen.row("> nosuch"), start, start + 6) == {"d75f5f"}
    child.sendcontrol("u")
    assert finish(child) == 0


def test_accepted_lines_keep_neither_hint_nor_right_prompt(srv: Server,
                                                            history: Path) -> None:
    """In the scrollback a line reads as typed: redis-cli erases the hint on
    Enter, and the right prompt would show the previous command's time."""
    child = spawn(["-s", srv.unix_socket], history)
    screen = Screen(child)
    child.sendline("ping")
    child.expect_exact("PONG")
    child.expect(r"last [\d,]+ µs")
    child.send("hget myhash")
    screen.wait_for(lambda lines: any("hget myhash field" in line for line in lines),
                    "the hint")
    child.send("\r")
    child.expect_exact("(error) ERR wrong number of arguments")
    lines = screen.wait_for(lambda lines: any("wrong number" in line for line in lines),
                            "the reply")
    accepted = lines[screen.row("hget myhash")]
    assert accepted.endswith("> hget myhash"), accepted
    assert finish(child) == 0


def test_resp3_shell(srv: Server, history: Path) -> None:
    """-3: the command table comes as a RESP3 map."""
    child = spawn(["-3", "-s", srv.unix_socket], history)
    child.expect_exact(">")
    child.send("set k v ")
    child.expect_exact("[NX|XX]")
    child.sendcontrol("u")
    child.sendline("hset h f v")
    child.sendline("hgetall h")
    child.expect_exact('1# "f" => "v"')
    child.sendline("help get")
    child.expect_exact("summary:")
    assert finish(child) == 0


def expect_help_hints_and_completion(child, prompt: str | None = None) -> None:
    """`help get` prints its summary (then `prompt`, when given), a hint
    follows `set k v `, Tab completes `hge`; the line is left empty."""
    child.sendline("help get")
    child.expect_exact("summary:")
    if prompt is not None:
        child.expect_exact(prompt)
    child.send("set k v ")
    child.expect_exact("[NX|XX]")
    child.sendcontrol("u")
    child.send("hge\t")
    child.expect_exact("HGET")
    child.sendcontrol("u")


def test_a_typed_auth_keeps_help_hints_and_completion(make_server, history: Path) -> None:
    srv = make_server("redis", config={"requirepass": "pw"})
    with srv.admin() as conn:
        conn.execute("SET", "user:alpha", "1")
    child = spawn(["-s", srv.unix_socket], history)
    child.sendline("auth pw")
    child.expect_exact("OK")
    expect_help_hints_and_completion(child)
    child.send("get user:al\t")
    child.expect_exact("pha")  # the scan logs in as the typed AUTH did
    child.sendline("")
    child.expect_exact('"1"')
    assert finish(child) == 0


def test_help_hints_and_completion_without_a_server(srv: Server, history: Path) -> None:
    """The command table last used is kept in the cache directory."""
    child = spawn(["-s", srv.unix_socket], history)
    child.sendline("ping")  # the table is read once the first prompt is drawn
    child.expect_exact("PONG")
    assert finish(child) == 0
    child = spawn(["-p", str(free_port())], history)
    child.expect_exact("not connected>")
    expect_help_hints_and_completion(child, prompt="not connected>")
    assert finish(child) == 0
    kept = [path.name for path in (history.parent / "cache" / "shmcli").iterdir()]
    assert len(kept) == 1 and kept[0].startswith(f"commands-{srv.flavour}-{srv.version}-")


@pytest.mark.parametrize("tool", ["redis-cli", "shmcli"])
def test_connect_to_a_port_out_of_range_stays_not_connected(srv: Server, history: Path,
                                                            tool: str) -> None:
    child = spawn(["-p", str(srv.port)], history, tool=REDIS_CLI if tool == "redis-cli"
                  else SHMCLI)
    child.expect_exact(f"127.0.0.1:{srv.port}>")
    # 65536: redis-cli keeps 16 bits of it, port 0, which nothing can listen on
    # (99999 wrapped to 34463, the test server's own port one day)
    child.send("connect 127.0.0.1 65536\r")  # linenoise takes CR as Enter
    child.expect_exact("Could not connect to Redis at 127.0.0.1:65536")
    child.expect_exact("not connected>")
    child.send("ping\r")
    child.expect_exact("Could not connect to Redis at 127.0.0.1:65536")
    child.expect_exact("not connected>")
    child.send(f"connect 127.0.0.1 {srv.port}\r")
    child.expect_exact(f"127.0.0.1:{srv.port}>")
    child.send("ping\r")
    child.expect_exact("PONG")
    assert finish(child) == 0


def test_client_reply_off_or_skip_is_refused_and_the_shell_goes_on(srv: Server,
                                                                   history: Path) -> None:
    """redis-cli waits for ever for the reply that never comes."""
    child = spawn(["-s", srv.unix_socket], history)
    for mode in ("off", "SKIP"):
        child.sendline(f"client reply {mode}")
        child.expect_exact("CLIENT REPLY OFF and SKIP are not supported")
        child.sendline("ping")
        child.expect_exact("PONG")
    assert finish(child) == 0


def test_ctrl_r_searches_the_history_and_pastes_run_line_by_line(srv: Server,
                                                                 history: Path) -> None:
    history.write_text("set alpha 1\nincr counter\nget alpha\n")
    child = spawn(["-s", srv.unix_socket], history)
    child.expect_exact(">")
    child.sendcontrol("r")
    child.send("incr")
    child.expect_exact("(reverse-i-search)`")
    child.expect_exact("incr': ")  # drawn as the search string grows
    child.send("\r")  # leaves the search with the line found
    child.send("\r")
    child.expect_exact("(integer) 1")
    child.send("\x1b[200~echo one\r\necho two\r\n\x1b[201~\r")  # a bracketed paste
    child.expect_exact('"one"')
    child.expect_exact('"two"')
    assert finish(child) == 0


def test_faketty_with_prompt_prints_prompts_and_keeps_history(srv: Server,
                                                              history: Path) -> None:
    run = run_tool(SHMCLI, ["-s", srv.unix_socket], b"set a 1\nget a\n",
                   {"FAKETTY_WITH_PROMPT": "1", "FAKETTY": "1", "REDISCLI_HISTFILE": str(history)})
    prompt = f"redis {srv.unix_socket}> ".encode()
    assert run.stdout == prompt + b"OK\n" + prompt + b'"1"\n' + prompt
    assert history.read_text() == "set a 1\nget a\n"


def test_monitor_streams_until_ctrl_c_then_the_prompt_returns(srv: Server,
                                                               history: Path) -> None:
    child = spawn(["-s", srv.unix_socket], history)
    child.sendline("monitor")
    child.expect_exact("OK")
    with srv.admin() as conn:
        conn.execute("ECHO", "watched")
    child.expect_exact('"ECHO" "watched"')
    child.sendcontrol("c")
    child.expect_exact(f"redis {srv.unix_socket}>")
    child.sendline("ping")
    child.expect_exact("PONG")
    assert finish(child) == 0
