"""--latency and --latency-history: redis-cli's loop, timed in microseconds.

What is kept from redis-cli 7.0 (latencyMode):
- one PING, then a 10 ms pause, over and over;
- on a terminal (output mode "tty", i.e. stdout is a TTY, FAKETTY is set or
  --no-raw was given) the statistics line is redrawn in place after every
  sample: `\\x1b[0G\\x1b[2K` + the line, no newline, so nothing flickers;
- --latency in any other mode samples for -i seconds (default 1), prints one
  line and exits 0;
- --latency-history closes a window every -i seconds (default 15):
  ` -- 15.01 seconds range` and a newline after the line, then starts again;
  outside a terminal it prints the line after every sample (redis-cli's
  quirk, kept: scripts read it).

What differs, on purpose: the numbers (report.py), and Ctrl-C.  redis-cli
installs no handler here and dies of SIGINT (status 130).  shmcli stops,
prints a summary and exits 0: on a terminal, a newline and then the whole
run with its percentiles (summary_line); outside a terminal, the line that
--latency would have printed at the end of its sample, or for
--latency-history the range marker that closes the current window.
"""

from __future__ import annotations

import sys
import time

from ..cli_connect import Connector
from ..connection import Connection
from ..options import Options
from .histogram import LatencyHistogram
from .probe import SAMPLE_PAUSE, LatencyAbort, Prober
from .report import stats_line, summary_line

__all__ = ["run_latency"]

CLEAR_LINE = "\x1b[0G\x1b[2K"
HISTORY_WINDOW = 15.0  # seconds, redis-cli's LATENCY_HISTORY_DEFAULT_INTERVAL
ONE_SHOT_SAMPLE = 1.0  # seconds, when stdout is not a terminal


def run_latency(conn: Connection, opts: Options, mode: str) -> int:
    live = mode == "tty"
    prober = Prober(conn, Connector(opts), terminal=live)
    history = opts.latency_history
    window_len = opts.interval or (HISTORY_WINDOW if history else ONE_SHOT_SAMPLE)
    window, whole = LatencyHistogram(), LatencyHistogram()
    out = sys.stdout

    def line() -> str:
        return stats_line(window, mode, opts.latency_percentiles)

    run_start = window_start = time.monotonic()
    try:
        while True:
            elapsed = prober.sample()
            if opts.verbose and whole.count == 0:
                print(f"# transport: {prober.transport}", file=sys.stderr)
            window.add(elapsed)
            whole.add(elapsed)
            now = time.monotonic()
            if live:
                out.write(CLEAR_LINE + line())
            elif history:
                out.write(line() + "\n")
            elif now - window_start > window_len:
                out.write(line() + "\n")
                out.flush()
                return 0
            if history and now - window_start > window_len:
                out.write(f" -- {now - window_start:.2f} seconds range\n")
                window_start = now
                window.reset()
            out.flush()
            time.sleep(SAMPLE_PAUSE)
    except KeyboardInterrupt:
        now = time.monotonic()
        if live:
            out.write("\n" + summary_line(whole, now - run_start) + "\n")
        elif not history:
            out.write(line() + "\n")
        elif window.count:
            out.write(f" -- {now - window_start:.2f} seconds range\n")
        out.flush()
        return 0
    except LatencyAbort as exc:
        return exc.code
    finally:
        prober.close()
