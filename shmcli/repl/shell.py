"""`shmcli` with no command: the interactive shell, or the stdin line mode.

How lines are read depends on the terminal, as in redis-cli:
- stdin not a terminal: one command per line, no prompt, no history;
- TERM=dumb (or cons25, emacs), or the FAKETTY_WITH_PROMPT test hook: the
  prompt is printed and a plain line is read, with history;
- otherwise the prompt_toolkit editor (editor.py).

Keys as redis-cli: Ctrl-C or Ctrl-D at the prompt leave with status 0;
Ctrl-C during SUBSCRIBE or MONITOR goes back to the prompt; Ctrl-C during
any other command that blocks ends shmcli with status 1.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Callable

from ..cli_connect import Connector
from ..command_mode import ReplyPrinter
from ..options import Options
from .history import History, dotfile_path, history_path
from .loop import CommandLoop

PLAIN_TERMINALS = ("dumb", "cons25", "emacs")


def run_shell(connector: Connector, printer: ReplyPrinter, interval: float) -> int:
    loop = CommandLoop(connector, printer, interval, None)
    loop.conn = loop.connect_to(connector)
    prompted = "FAKETTY_WITH_PROMPT" in os.environ
    if not sys.stdin.isatty() and not prompted:
        return loop.run(stdin_lines(prompt=False))
    history = History(history_path())
    loop.on_line = history.add
    loop.interactive = True
    loop.load_preferences(dotfile_path("REDISCLI_RCFILE", ".redisclirc"))
    if prompted or os.environ.get("TERM", "").lower() in PLAIN_TERMINALS:
        return loop.run(stdin_lines(prompt=True))
    return loop.run(editor_lines(loop, history))


def stdin_lines(prompt: bool) -> Callable[[str], bytes | None]:
    def read(text: str) -> bytes | None:
        if prompt:
            sys.stdout.write(text)
            sys.stdout.flush()
        line = sys.stdin.buffer.readline()
        if not line:
            return None
        return line.rstrip(b"\r\n") if prompt else line.removesuffix(b"\n")
    return read


def editor_lines(loop: CommandLoop, history: History) -> Callable[[str], bytes | None]:
    # Imported here, not at the top: prompt_toolkit (about 90 ms to import)
    # and the scanner's thread are for a terminal only.
    from .editor import make_session
    from .key_scanner import KeyScanner

    def scan_options() -> Options | None:
        """The scanner connects as the shell is now (its db, a typed AUTH's
        user), and not at all while the shell is not connected."""
        conn = loop.conn
        return loop.session_options() if conn is not None and conn.connected else None

    session = make_session(loop, history.entries, KeyScanner(scan_options))
    pasted: deque[str] = deque()

    def read(prompt: str) -> bytes | None:
        if pasted:  # the next line of a multi-line paste, shown as if typed
            line = pasted.popleft()
            print(prompt + line)
            return line.encode(errors="surrogateescape")
        try:
            text = session.prompt(prompt)
        except (KeyboardInterrupt, EOFError):
            return None
        first, *rest = text.split("\n")
        pasted.extend(rest)
        return first.encode(errors="surrogateescape")
    return read
