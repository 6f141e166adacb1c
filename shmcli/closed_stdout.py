"""A reader that goes away (`shmcli ... | head -1`) is met as redis-cli meets it.

redis-cli keeps SIGPIPE's default action everywhere but in its shell (and so
its stdin mode), which ignores the signal "to force a reconnect".  So a
one-shot command, --eval and every special mode die of SIGPIPE at their
first write to a pipe nobody reads (silent; status 141 in a shell), while
the stdin mode writes on into the void, runs every remaining command and
exits 0.

Python ignores SIGPIPE and raises BrokenPipeError instead, which is also a
ConnectionError, so a closed stdout was taken for a lost server.  Keeping
the signal ignored, a socket's broken pipe stays an error the modes handle
(a lost server is reconnected, not a reason to die); a broken stdout comes
here, one way for every mode:
- the writers that know they write to stdout call stdout_closed() when it
  breaks (the command printer, --pipe's lines);
- everywhere else the error travels up to cli.py, whose handlers ask
  ended_by_closed_stdout(exc), which looks at stdout itself (a pipe without
  a reader polls as an error) before calling stdout_closed();
- the shell sets keep_writing() first, as redis-cli ignores SIGPIPE there.
"""

from __future__ import annotations

import os
import signal
import sys

__all__ = ["ended_by_closed_stdout", "keep_writing", "stdout_closed"]

_keep_writing = False


def keep_writing() -> None:
    """The shell's rule: output to a closed stdout is dropped and the
    commands go on."""
    global _keep_writing
    _keep_writing = True


def stdout_closed(fds: tuple[int, ...] = (1,)) -> None:
    """stdout's reader is gone: die of SIGPIPE as redis-cli does, or (after
    keep_writing) send the rest of the output to /dev/null and return."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in fds:
        os.dup2(devnull, fd)  # whatever is still buffered goes nowhere, quietly
    os.close(devnull)
    if _keep_writing:
        return
    try:
        sys.stderr.flush()
    except OSError:
        pass
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.raise_signal(signal.SIGPIPE)
    os._exit(128 + signal.SIGPIPE)  # not reached: the signal ends the process


def ended_by_closed_stdout(exc: BaseException) -> bool:
    """When `exc` is the broken pipe of a stdout (or stderr) nobody reads
    any more, stdout_closed() (which only returns after keep_writing) and
    True; False for anything else, a socket's broken pipe included."""
    if not isinstance(exc, BrokenPipeError):
        return False
    broken = _outputs_without_reader()
    if not broken:
        return False
    stdout_closed(broken)
    return True


def _outputs_without_reader() -> tuple[int, ...]:
    import select  # only here: a closed pipe is rare, start-up time is not

    poller = select.poll()
    for fd in (1, 2):
        poller.register(fd, select.POLLOUT)
    return tuple(fd for fd, events in poller.poll(0)
                 if events & (select.POLLERR | select.POLLHUP))
