"""The command loop shared by the interactive shell and the stdin mode.

redis-cli runs one loop for both (its REPL, with or without a terminal), and
so does shmcli.  Per line, as redis-cli 7.0 does:
- the line is split like an interactive line (splitargs); bad quoting prints
  "Invalid argument(s)" on stdout and the loop goes on;
- blank lines are skipped; a leading number repeats the command ("3 incr n");
- quit and exit stop; ":set ..." preferences, connect, clear and restart are
  handled by the client, help by command_mode;
- errors never stop the loop and the exit status is 0, even when the server
  cannot be reached: each command then tries to connect again;
- in the human format a command that took 0.5 s or more is followed by its
  duration, "(0.60s)";
- with -c, a MOVED or ASK reply prints "-> Redirected to slot [N] located
  at host:port", and the command runs again on that node, which the prompt
  then names (cluster.py).

Unlike redis-cli 7.0, a reconnect restores the whole session: the selected
db, the protocol, the user a typed AUTH or HELLO logged in as, and the client
name (redis-cli comes back on db 0 while its prompt still shows [n]).
With ":set pager" (ours) a reply taller than the terminal goes to $PAGER.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

from ..cli_connect import Connector
from ..cluster import Redirect, RedirectFailed
from ..command_mode import CommandRunner, ReplyPrinter
from ..command_table import CommandTableCache
from ..connection import Connection
from ..resp import ProtocolError
from ..splitargs import split_args
from ..uri import atoi

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from ..options import Options

LONG_MAX = 2**63 - 1
CLEAR_SCREEN = b"\x1b[H\x1b[2J"


STREAMING = (b"subscribe", b"psubscribe", b"ssubscribe", b"monitor")


def show_paged(printer: ReplyPrinter) -> None:
    """Write what the printer captured, through $PAGER (default less) when it
    is taller than the terminal."""
    import shutil  # here, not at the top: only the pager needs them (start-up time)
    import subprocess

    data, printer.capture = bytes(printer.capture or b""), None
    rows = shutil.get_terminal_size().lines
    if data.count(b"\n") < rows - 1:
        printer.write(data)
        return
    command = os.environ.get("PAGER") or "less -FRSX"
    try:
        subprocess.run(command, shell=True, input=data, check=False)
    except OSError:
        printer.write(data)


def repeat_prefix(word: bytes) -> int | None:
    """strtol over the whole word, as redis-cli reads "N command": the
    number, or None when the word is not one (then it is the command).
    Out-of-range numbers and the empty word read as 0, which is refused."""
    if word == b"":
        return 0
    digits = word.lstrip(b" \t\n\r\v\f")  # C's isspace(), then an optional sign
    if digits[:1] in (b"+", b"-"):
        digits = digits[1:]
    if not digits.isdigit():  # bytes.isdigit(): ASCII digits, and not empty
        return None
    value = int(word)
    return value if abs(value) <= LONG_MAX else 0


class Credentials:
    """What a typed AUTH / HELLO AUTH / CLIENT SETNAME established."""

    __slots__ = ("user", "password", "name")

    def __init__(self) -> None:
        self.user: str | None = None
        self.password: str | None = None
        self.name: bytes | None = None


def typed_login(argv: list[bytes]) -> tuple[str | None, str] | None:
    """(user, password) of an AUTH or HELLO ... AUTH command line."""
    words = [w.decode(errors="surrogateescape") for w in argv]
    name = words[0].lower()
    if name == "auth" and len(words) in (2, 3):
        return (words[1], words[2]) if len(words) == 3 else (None, words[1])
    if name == "hello":
        for i, word in enumerate(words[2:], start=2):
            if word.lower() == "auth" and i + 2 < len(words):
                return words[i + 1], words[i + 2]
    return None


def silences_replies(argv: list[bytes]) -> bool:
    """CLIENT REPLY OFF or SKIP: the server would answer nothing (redis-cli
    then waits for ever), and the connection refuses to send it."""
    return (len(argv) >= 3 and argv[0].lower() == b"client" and argv[1].lower() == b"reply"
            and argv[2].lower() in (b"off", b"skip"))


def typed_name(argv: list[bytes]) -> bytes | None:
    if len(argv) == 3 and argv[0].lower() == b"client" and argv[1].lower() == b"setname":
        return argv[2]
    if argv[0].lower() == b"hello":
        for i, word in enumerate(argv[2:], start=2):
            if word.lower() == b"setname" and i + 1 < len(argv):
                return argv[i + 1]
    return None


class CommandLoop:
    """Runs lines; `read_line(prompt)` gives the next one (None at the end)."""

    def __init__(self, connector: Connector, printer: ReplyPrinter, interval: float,
                 conn: Connection | None) -> None:
        self.connector = connector
        self.printer = printer
        self.interval = interval
        self.conn = conn
        self.docs = CommandTableCache()
        self.credentials = Credentials()
        self.hints = True
        self.pager = False  # ":set pager": replies taller than the terminal go to $PAGER
        self.interactive = False  # a terminal: history, prompt (set by the shell)
        self.last_rtt_us: float | None = None
        self.on_line: Callable[[bytes, list[bytes] | None], None] | None = None  # history

    # ---- the prompt ----

    @property
    def prompt(self) -> str:
        """redis-cli's prompt: host:port or "redis <socket>", [db], (TX)."""
        if self.conn is None or not self.conn.connected:
            return "not connected> "
        opts = self.connector.opts
        if opts.socket:
            where = f"redis {opts.socket}"
        else:
            where = f"[{opts.host}]:{opts.port}" if ":" in opts.host else \
                f"{opts.host}:{opts.port}"
        db = f"[{self.conn.db}]" if self.conn.db else ""
        return f"{where}{db}{'(TX)' if self.conn.in_transaction else ''}> "

    # ---- the loop ----

    def run(self, read_line: Callable[[str], bytes | None]) -> int:
        try:
            while (line := read_line(self.prompt)) is not None:
                if line and self.line(line):
                    break
        finally:
            if self.conn is not None:
                self.conn.close()
        return 0

    def line(self, line: bytes) -> bool:
        """Handle one line; True when it asks to stop."""
        argv = split_args(line)
        if argv is None:
            self.printer.write(b"Invalid argument(s)\n")
            self._remember(line, None)
            return False
        if not argv:
            return False
        repeat = repeat_prefix(argv[0]) if len(argv) > 1 else None
        if repeat is not None and repeat <= 0:
            self.printer.write(b"Invalid redis-cli repeat command option value.\n")
            return False
        self._remember(line, argv[1:] if repeat else argv)
        name = argv[0].lower()
        if name in (b"quit", b"exit"):
            return True
        if argv[0].startswith(b":"):
            self.preference(argv)
        elif name == b"restart":
            self.printer.write(b"Use 'restart' only in Lua debugging mode.\n")
        elif name == b"connect" and len(argv) == 3:
            self.reconnect(argv[1].decode(errors="surrogateescape"), argv[2])
        elif name == b"clear" and len(argv) == 1:
            self.printer.write(CLEAR_SCREEN)
        else:
            command = argv[1:] if repeat else argv
            if command[0].lower() in (b"help", b"?"):
                self.help(command[1:])  # once, connected or not, as redis-cli
            elif silences_replies(command):
                print("Error: CLIENT REPLY OFF and SKIP are not supported: shmcli would wait "
                      "for replies that never come", file=sys.stderr)
            else:
                self.command(command, repeat or 1)
        return False

    def _remember(self, line: bytes, argv: list[bytes] | None) -> None:
        if self.on_line is not None:
            self.on_line(line, argv)

    def preference(self, argv: list[bytes], where: bytes = b"") -> None:
        """`:set hints|nohints` (redis-cli's), `:set pager|nopager` (ours);
        `where` prefixes the messages for lines of the rc file."""
        if argv[0].lower() == b":set" and len(argv) >= 2:
            value = argv[1].lower()
            if value in (b"hints", b"nohints"):
                self.hints = value == b"hints"
            elif value in (b"pager", b"nopager"):
                self.pager = value == b"pager"
            else:
                self.printer.write(where + b"unknown redis-cli preference '" + argv[1] + b"'\n")
        else:
            self.printer.write(where + b"unknown redis-cli internal command '" + argv[0]
                               + b"'\n")

    def load_preferences(self, path: str | None) -> None:
        """redis-cli's rc file ($REDISCLI_RCFILE or ~/.redisclirc): ":set" lines."""
        if path is None:
            return
        try:
            with open(path, "rb") as rcfile:
                lines = rcfile.read().splitlines()
        except OSError:
            return
        for line in lines:
            argv = split_args(line)
            if argv:
                self.preference(argv, b".redisclirc: ")

    def reconnect(self, host: str, port: bytes) -> None:
        opts = self.connector.opts
        opts.host, opts.port = host, atoi(port.decode(errors="replace"))
        if self.conn is not None:
            self.conn.close()
        self.conn = self.connect_to(self.connector)

    def connect_to(self, connector: Connector, quiet: bool = False) -> Connection | None:
        """connector.connect(), with a port no socket takes (connect
        127.0.0.1 99999) reported as a server that cannot be reached."""
        try:
            return connector.connect(quiet=quiet)
        except (OverflowError, ValueError) as exc:
            if not quiet:
                connector.report_unreachable(OSError(str(exc)))
            return None

    def help(self, topic: list[bytes]) -> None:
        """help, from the server's COMMAND DOCS, or without a server from the
        table used last (command_table.py)."""
        from ..command_help import help_text  # here: only help needs it

        conn = self.conn if self.conn is not None and self.conn.connected else None
        words = [word.decode(errors="replace") for word in topic]
        self.printer.write(help_text(self.docs.get(conn), words).encode())

    # ---- commands ----

    def command(self, argv: list[bytes], repeat: int) -> None:
        if self.conn is None or not self.conn.connected:
            self.conn = self.restore_session()
            if self.conn is None:
                return
        start = time.monotonic()
        runner = CommandRunner(self.conn, self.printer, self.interval, docs=self.docs,
                               follow=self.redirected if self.connector.opts.cluster else None,
                               announce_redirects=True)
        paging = self.pager and self.interactive and argv[0].lower() not in STREAMING
        if paging:
            self.printer.capture = bytearray()
        try:
            try:
                runner.run(argv, repeat)
            finally:
                self.conn = runner.conn  # -c: the node a redirection led to
        except RedirectFailed:  # reported; an unreachable node leaves "not connected>",
            pass  # and the next command tries that node again, as redis-cli
        except KeyboardInterrupt:
            if not runner.streaming:
                raise SystemExit(1) from None  # redis-cli: Ctrl-C in a blocking command
            self.conn.close()  # Ctrl-C ends SUBSCRIBE / MONITOR: back to the prompt
            self.conn = self.restore_session()
        except ConnectionError as exc:
            print(f"Error: {exc}", file=sys.stderr)
            self.conn.close()
        except ValueError as exc:  # a request the connection refuses, a reply it cannot read
            print(f"Error: {exc}", file=sys.stderr)
            if isinstance(exc, ProtocolError):
                self.conn.close()  # where the next reply starts is unknown
        else:
            self._track(argv)
        finally:
            elapsed = time.monotonic() - start  # the command's time, not the pager's
            if paging:
                show_paged(self.printer)
        if runner.round_trip_ns is not None:
            self.last_rtt_us = runner.round_trip_ns / 1000
        if elapsed >= 0.5 and self.printer.mode == "tty":
            self.printer.write(b"(%.2fs)\n" % elapsed)

    def _track(self, argv: list[bytes]) -> None:
        """Remember what a reconnect must restore (only once it succeeded:
        the Connection knows the user it logged in as)."""
        conn = self.conn
        if conn is None:
            return
        if argv[0].lower() in (b"auth", b"hello"):
            self.docs.retry()  # a NOAUTH server may now give its command table
        login = typed_login(argv)
        if login is not None and conn.username == (login[0] or "default"):
            self.credentials.user, self.credentials.password = login
        name = typed_name(argv)
        if name is not None:
            self.credentials.name = name
        if argv[0].lower() == b"reset":
            self.credentials = Credentials()

    def redirected(self, redirect: Redirect) -> Connection | None:
        """-c: connect to the node a redirection names, with the session's
        state, as a reconnect does; that node becomes the address the prompt
        shows and every later reconnect uses (redis-cli's conn_info)."""
        opts = self.connector.opts
        opts.host, opts.port = redirect.host, redirect.port
        return self.restore_session()

    def session_options(self) -> Options:
        """The options of a connection in the state the current one is in:
        its db, protocol, and the user a typed AUTH or HELLO logged in as."""
        opts = self.connector.opts
        conn = self.conn
        if conn is None:
            return opts
        return opts.replace(
            db=conn.db, warnings=[],
            user=self.credentials.user if self.credentials.password else opts.user,
            password=self.credentials.password or opts.password,
            resp3=1 if conn.protocol == 3 else 0, resp2=conn.protocol == 2)

    def restore_session(self) -> Connection | None:
        """Connect again with the state the last connection had."""
        if self.conn is None:
            return self.connect_to(self.connector)
        conn = self.connect_to(Connector(self.session_options()))
        if conn is not None and self.credentials.name is not None:
            conn.execute("CLIENT", "SETNAME", self.credentials.name)
        return conn
