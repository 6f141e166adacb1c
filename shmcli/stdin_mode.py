"""Commands read from standard input, one per line (no command arguments and
stdin not a terminal): redis-cli's interactive loop without the terminal.

What redis-cli 7.0 does here, and so what this does:
- each line is split like an interactive line (splitargs); bad quoting
  prints "Invalid argument(s)" on stdout and the next line runs;
- blank lines are skipped; a leading number repeats the command ("3 incr n");
- quit and exit stop; ":set ..." preferences, connect, clear and restart are
  handled by the client;
- -e is ignored, errors never stop the loop, and the exit status is 0, even
  when the server cannot be reached (each command then tries to connect and
  says "Could not connect to Redis at ...");
- in the human output format a command that took 0.5 s or more is followed
  by its duration, "(0.60s)".
"""

from __future__ import annotations

import re
import sys
import time
from typing import BinaryIO

from .cli_connect import Connector
from .command_mode import CommandRunner, ReplyPrinter
from .connection import Connection
from .repl.command_docs import CommandTableCache
from .splitargs import split_args
from .uri import atoi

_NUMBER = re.compile(rb"[ \t\n\r\v\f]*[+-]?\d+")
LONG_MAX = 2**63 - 1
CLEAR_SCREEN = b"\x1b[H\x1b[2J"


def repeat_prefix(word: bytes) -> int | None:
    """strtol over the whole word, as redis-cli reads "N command": the
    number, or None when the word is not one (then it is the command).
    Out-of-range numbers and the empty word read as 0, which is refused."""
    if word == b"":
        return 0
    if _NUMBER.fullmatch(word) is None:
        return None
    value = int(word)
    return value if abs(value) <= LONG_MAX else 0


class StdinSession:
    def __init__(self, connector: Connector, printer: ReplyPrinter, interval: float,
                 conn: Connection | None) -> None:
        self.connector = connector
        self.printer = printer
        self.interval = interval
        self.conn = conn
        self.docs = CommandTableCache()

    def run(self, source: BinaryIO) -> int:
        for raw_line in source:
            line = raw_line[:-1] if raw_line.endswith(b"\n") else raw_line
            if line and self.line(line):
                break
        if self.conn is not None:
            self.conn.close()
        return 0

    def line(self, line: bytes) -> bool:
        """Handle one line; True when it asks to stop."""
        argv = split_args(line)
        if argv is None:
            self.printer.write(b"Invalid argument(s)\n")
            return False
        if not argv:
            return False
        repeat = repeat_prefix(argv[0]) if len(argv) > 1 else None
        if repeat is not None and repeat <= 0:
            self.printer.write(b"Invalid redis-cli repeat command option value.\n")
            return False
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
            self.command(argv[1:] if repeat else argv, repeat or 1)
        return False

    def preference(self, argv: list[bytes]) -> None:
        if argv[0].lower() == b":set" and len(argv) >= 2:
            if argv[1].lower() not in (b"hints", b"nohints"):
                self.printer.write(b"unknown redis-cli preference '" + argv[1] + b"'\n")
        else:
            self.printer.write(b"unknown redis-cli internal command '" + argv[0] + b"'\n")

    def reconnect(self, host: str, port: bytes) -> None:
        self.connector.opts.host, self.connector.opts.port = host, atoi(port.decode())
        if self.conn is not None:
            self.conn.close()
        self.conn = self.connector.connect()

    def command(self, argv: list[bytes], repeat: int) -> None:
        if self.conn is None or not self.conn.connected:
            self.conn = self.connector.connect()
            if self.conn is None:
                return
        start = time.monotonic()
        runner = CommandRunner(self.conn, self.printer, self.interval, docs=self.docs)
        try:
            runner.run(argv, repeat)
        except ConnectionError as exc:
            print(f"Error: {exc}", file=sys.stderr)
            self.conn.close()
            self.conn = None
        elapsed = time.monotonic() - start
        if elapsed >= 0.5 and self.printer.mode == "tty":
            self.printer.write(b"(%.2fs)\n" % elapsed)
