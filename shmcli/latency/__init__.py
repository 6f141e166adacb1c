"""The latency tools: redis-cli's --latency, --latency-history,
--latency-dist and --intrinsic-latency at microsecond resolution, and
shmcli's --latency-compare (shared memory vs unix socket vs TCP).

One module per job: histogram (samples kept bounded), probe (one timed PING,
reconnecting), report (the statistics line), live (--latency and
--latency-history), spectrum and dist (--latency-dist), intrinsic, and
transports / compare / compare_view (--latency-compare).  The entry points
import their module on first use, so `--latency` does not load rich.
A closed stdout ends any of them as it ends every mode (cli.py and
shmcli/closed_stdout.py; rich is told to raise there: guard_console).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..connection import Connection
    from ..options import Options

__all__ = ["run_intrinsic_latency", "run_latency", "run_latency_compare", "run_latency_dist"]


def run_latency(conn: Connection, opts: Options, mode: str) -> int:
    """--latency and --latency-history."""
    from .live import run_latency as run
    return run(conn, opts, mode)


def run_latency_dist(conn: Connection, opts: Options, mode: str) -> int:
    """--latency-dist."""
    from .dist import run_latency_dist as run
    return run(conn, opts, mode)


def run_intrinsic_latency(seconds: int) -> int:
    """--intrinsic-latency <seconds>: needs no server."""
    from .intrinsic import run_intrinsic_latency as run
    return run(seconds)


def run_latency_compare(opts: Options, mode: str) -> int:
    """--latency-compare: opens its own connections, one per transport."""
    from .compare import run_latency_compare as run
    return run(opts, mode)
