"""rich and a reader that goes away (`shmcli --latency-dist | head`).

A closed stdout ends every mode as redis-cli's SIGPIPE ends it
(shmcli/closed_stdout.py, through cli.py).  rich's Console would instead
print nothing more and exit with status 1 on its own; guard_console() makes
it raise the BrokenPipeError, which takes the common way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["guard_console"]


def guard_console(console: Console) -> Console:
    """`console`, raising BrokenPipeError where rich would exit(1)."""

    def on_broken_pipe() -> None:
        console.quiet = True
        raise BrokenPipeError(32, "Broken pipe")

    console.on_broken_pipe = on_broken_pipe  # type: ignore[method-assign]
    return console
