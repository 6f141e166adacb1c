"""--latency-dist: redis-cli's latency spectrum, one line every -i seconds.

The loop is redis-cli's latencyDistMode: PING, 10 ms pause, and once more
than -i seconds (default 1) have passed since the last line, a spectrum line
(spectrum.py), with the legend before the first line and every 20 lines.
redis-cli draws the same picture whatever the output mode; shmcli does too
for the terminal and --raw modes, and gives machine-readable counts for
--csv (a header row, then `count,<bucket counts...>` per interval) and
--json (`{"count": N, "buckets": {"0.001": n, ..., ">60000": n}}`, bucket
upper bounds in milliseconds).

Ctrl-C (redis-cli dies of SIGINT with status 130) draws the interval in
progress, then, in the picture modes, a line with the whole run's
statistics and percentiles, and exits 0.
"""

from __future__ import annotations

import json
import sys
import time

from ..cli_connect import Connector
from ..connection import Connection
from ..options import Options
from .histogram import LatencyHistogram
from .probe import SAMPLE_PAUSE, LatencyAbort, Prober
from .report import summary_line
from .spectrum import BUCKETS, SpectrumPainter, bucket_index

__all__ = ["run_latency_dist"]

DIST_INTERVAL = 1.0  # seconds, redis-cli's LATENCY_DIST_DEFAULT_INTERVAL
LEGEND_EVERY = 20


def _bucket_names() -> list[str]:
    names = [f"{bound / 1000:g}" for bound, _ in BUCKETS[:-1]]
    return [*names, f">{BUCKETS[-2][0] / 1000:g}"]


class _Records:
    """The --csv / --json form of the spectrum."""

    def __init__(self, mode: str) -> None:
        self.csv = mode == "csv"
        self.names = _bucket_names()
        self.started = False

    def emit(self, counts: list[int]) -> None:
        if self.csv:
            if not self.started:
                print(",".join(["count", *self.names]))
            print(",".join(str(n) for n in [sum(counts), *counts]))
        else:
            buckets = dict(zip(self.names, counts, strict=True))
            print(json.dumps({"count": sum(counts), "buckets": buckets}))
        self.started = True
        sys.stdout.flush()


def run_latency_dist(conn: Connection, opts: Options, mode: str) -> int:
    terminal = mode == "tty"
    prober = Prober(conn, Connector(opts), terminal=terminal)
    picture = mode not in ("csv", "json", "quoted-json")
    painter = SpectrumPainter(opts.mono, sys.stdout) if picture else None
    records = None if picture else _Records(mode)
    interval = opts.interval or DIST_INTERVAL
    counts = [0] * len(BUCKETS)
    whole = LatencyHistogram()
    lines = 0

    def emit() -> None:
        nonlocal lines
        if painter is not None:
            if lines % LEGEND_EVERY == 0:
                painter.legend()
            painter.spectrum(counts)
        elif records is not None:
            records.emit(counts)
        lines += 1
        counts[:] = [0] * len(counts)

    run_start = since = time.monotonic()
    try:
        while True:
            elapsed = prober.sample()
            counts[bucket_index(elapsed)] += 1
            whole.add(elapsed)
            now = time.monotonic()
            if now - since > interval:
                emit()
                since = now
            time.sleep(SAMPLE_PAUSE)
    except KeyboardInterrupt:
        if terminal:
            print()
        if any(counts):
            emit()
        if painter is not None:
            print(summary_line(whole, time.monotonic() - run_start))
        sys.stdout.flush()
        return 0
    except LatencyAbort as exc:
        return exc.code
    finally:
        prober.close()
