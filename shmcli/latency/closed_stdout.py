"""A reader that goes away (`shmcli --latency-history | head`) ends the run
quietly.

redis-cli is killed by SIGPIPE there: no message, status 141 as the shell
sees it.  Python turns the signal into BrokenPipeError on the next write;
this stops the mode with the same status and without a traceback or the
interpreter's "Exception ignored" note when it flushes stdout at exit.
rich's Console would exit with status 1 on its own; guard_console() makes
it hand the error to the same guard instead.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["SIGPIPE_STATUS", "guard_console", "quiet_on_closed_stdout"]

SIGPIPE_STATUS = 128 + 13
P = ParamSpec("P")


def quiet_on_closed_stdout(run: Callable[P, int]) -> Callable[P, int]:
    @functools.wraps(run)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> int:
        try:
            return run(*args, **kwargs)
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            return SIGPIPE_STATUS
    return guarded



def guard_console(console: Console) -> Console:
    """`console`, raising BrokenPipeError where rich would exit(1)."""

    def on_broken_pipe() -> None:
        console.quiet = True
        raise BrokenPipeError(32, "Broken pipe")

    console.on_broken_pipe = on_broken_pipe  # type: ignore[method-assign]
    return console
