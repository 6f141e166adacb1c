"""Run one command the way redis-cli's command loop does, and print its replies.

Shared by the one-shot mode (arguments on the command line), --eval and the
stdin mode (one command per line).  What it reproduces from redis-cli 7.0:

- `-r` repeats (negative: forever) and `-i` sleeps after every run, the last
  one included;
- the commands redis-cli always prints raw (INFO, CLIENT LIST...);
- `-e`: outside the stdin mode, an error reply goes to stderr and exits 1;
- SUBSCRIBE / PSUBSCRIBE / SSUBSCRIBE and MONITOR stream their messages
  until the connection ends or an error reply comes (the caller's Ctrl-C);
- SHUTDOWN: the server closing the connection is its success;
- `help` and `?` are answered locally, from the server's COMMAND DOCS;
- RESP3 pushes that arrive ahead of a reply are printed first when
  --show-pushes is on, and dropped otherwise;
- `-c`: a MOVED or ASK reply is followed to the node it names (cluster.py),
  ahead of -e, and the command issued there again.
"""

from __future__ import annotations

import sys
import time

from .closed_stdout import stdout_closed
from .cluster import Redirect, RedirectFailed, parse_redirect
from .connection import Connection
from .output import forces_raw, format_push, format_reply
from .resp import Error, Reply

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at start-up
if TYPE_CHECKING:
    from collections.abc import Callable

    from .command_table import CommandTableCache

_SUBSCRIBE = (b"subscribe", b"psubscribe", b"ssubscribe")


class ErrorReplyExit(Exception):
    """-e saw an error reply: redis-cli prints it and exits 1."""


class ReplyPrinter:
    """How replies are written: the output mode and redis-cli's delimiters."""

    __slots__ = ("mode", "delimiter", "reply_delimiter", "show_pushes", "capture")

    def __init__(self, mode: str, delimiter: bytes = b"\n", reply_delimiter: bytes = b"\n",
                 show_pushes: bool = False) -> None:
        self.mode = mode
        self.delimiter = delimiter
        self.reply_delimiter = reply_delimiter
        self.show_pushes = show_pushes
        self.capture: bytearray | None = None  # set by the shell to page a long reply

    def reply(self, reply: Reply, raw: bool = False) -> None:
        if raw:
            out = format_reply(reply, "raw", reply_delimiter=b"")
        else:
            out = format_reply(reply, self.mode, delimiter=self.delimiter,
                               reply_delimiter=self.reply_delimiter)
        self.write(out)

    def pushes(self, conn: Connection) -> None:
        for push in conn.take_pushes():
            if self.show_pushes:
                self.write(format_push(push, self.mode, delimiter=self.delimiter,
                                       reply_delimiter=self.reply_delimiter))

    def write(self, data: bytes) -> None:
        if self.capture is not None:
            self.capture += data
            return
        try:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        except BrokenPipeError:  # the reader went away: as redis-cli (closed_stdout.py)
            stdout_closed()


class CommandRunner:
    def __init__(self, conn: Connection, printer: ReplyPrinter, interval: float = 0.0,
                 exit_on_error: bool = False, docs: CommandTableCache | None = None,
                 follow: Callable[[Redirect], Connection | None] | None = None,
                 announce_redirects: bool = False) -> None:
        self.conn = conn  # a redirection (-c) replaces it: callers read it back
        self.printer = printer
        self.interval = interval
        self.exit_on_error = exit_on_error  # -e; never set in the stdin mode
        self.docs = docs  # the shell passes its own; made for the first `help` otherwise
        self.streaming = False  # inside SUBSCRIBE / MONITOR output
        self.round_trip_ns: int | None = None  # of the last execution, for the shell's status
        # -c: opens the connection to the node a redirection names (None
        # when it cannot be reached, already reported); None without -c.
        self.follow = follow
        self.announce_redirects = announce_redirects  # the REPL prints "-> Redirected ..."

    def run(self, argv: list[bytes], repeat: int = 1) -> None:
        """Run argv `repeat` times.  ConnectionError propagates, except after
        SHUTDOWN; ErrorReplyExit is raised for -e, RedirectFailed when a
        cluster redirection (-c) leads nowhere."""
        name = argv[0].lower()
        if name in (b"help", b"?"):  # answered by the client, from COMMAND DOCS
            self._help([word.decode(errors="replace") for word in argv[1:]])
            return
        raw = forces_raw(argv)
        while (redirect := self._repeat(argv, name, repeat, raw)) is not None:
            self._follow(redirect)  # then the whole repeat count again, as redis-cli

    def _repeat(self, argv: list[bytes], name: bytes, repeat: int, raw: bool
                ) -> Redirect | None:
        """The repeat loop; it stops at a redirection (-c), which it returns."""
        done = 0
        while repeat < 0 or done < repeat:
            if name in _SUBSCRIBE and self.printer.mode != "raw":
                self.printer.write(b"Reading messages... (press Ctrl-C to quit)\n")
            try:
                started = time.perf_counter_ns()
                reply = self.conn.execute(*argv)
                self.round_trip_ns = time.perf_counter_ns() - started
            except ConnectionError:
                if name == b"shutdown":  # the server went away, as asked
                    self.conn.close()
                    return None
                raise
            if self.follow is not None and isinstance(reply, Error):
                redirect = parse_redirect(reply)
                if redirect is not None:
                    self.printer.pushes(self.conn)
                    return redirect
            self._show(reply, raw)
            if name == b"monitor" and not isinstance(reply, Error):
                self._stream(raw)
                return None
            if name in _SUBSCRIBE and not isinstance(reply, Error):
                self._stream(raw)
            done += 1
            if self.interval:
                time.sleep(self.interval)
        return None

    def _follow(self, redirect: Redirect) -> None:
        """Go to the node a MOVED or ASK names, as redis-cli does: the line
        in the REPL, a new connection (the old one is closed first), and
        ASKING on it for ASK."""
        assert self.follow is not None
        if self.announce_redirects:
            self.printer.write(redirect.message)
        self.conn.close()
        conn = self.follow(redirect)
        if conn is None:
            raise RedirectFailed
        self.conn = conn
        if redirect.ask:
            reply = conn.execute("ASKING")
            if isinstance(reply, Error):
                print(f"ASKING failed: {reply.message}", file=sys.stderr)
                print("Error: ", file=sys.stderr)  # cliPrintContextError, no I/O error set
                raise RedirectFailed

    def _help(self, topic: list[str]) -> None:
        # Imported here: only `help` needs the command reference, and a
        # one-shot command should not load the repl package to start.
        from .command_help import help_text
        from .command_table import CommandTableCache

        if self.docs is None:
            self.docs = CommandTableCache()
        self.printer.write(help_text(self.docs.get(self.conn), topic).encode())

    def _show(self, reply: Reply, raw: bool, streaming: bool = False) -> None:
        if not streaming:  # while streaming, pushes are the messages themselves
            self.printer.pushes(self.conn)
        if isinstance(reply, Error) and self.exit_on_error:
            raise ErrorReplyExit(reply.text.decode(errors="replace"))
        self.printer.reply(reply, raw)

    def _stream(self, raw: bool) -> None:
        """Messages after SUBSCRIBE or MONITOR, until an error reply or the end
        of the connection (ConnectionError)."""
        self.streaming = True
        while True:
            reply = self.conn.read_reply()
            self._show(reply, raw, streaming=True)
            if isinstance(reply, Error):
                return

