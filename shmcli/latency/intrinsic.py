"""--intrinsic-latency <seconds>: how long this machine leaves a running
process without the CPU, with no server involved.

redis-cli times a small fixed computation (about 1 µs of C) over and over
with gettimeofday and reports each new worst case.  A Python loop cannot
match C's fine grain with a computation, so a "run" here is one turn of the
tightest loop Python has: read `perf_counter_ns()` and compare it with the
previous reading.  Every nanosecond of the interval is inside some run
(except the printing, which is left out), so a stall anywhere is seen; the
garbage collector is paused so that only the machine's stalls count.

The output is redis-cli's, line for line: `Max latency so far: N
microseconds.` for each new worst case of at least 1 µs, then the total
runs, the average per run and `Worst run took Nx longer than the average
latency.`  Two differences: a run is about 0.1 µs rather than redis-cli's
1 µs (so the ratio is larger for the same stall), and the average is taken
over the time actually measured (redis-cli divides the requested duration,
which is wrong after Ctrl-C).  Ctrl-C prints the summary and exits 0, as in
redis-cli.
"""

from __future__ import annotations

import gc
import sys
import time

__all__ = ["run_intrinsic_latency"]


def run_intrinsic_latency(seconds: int) -> int:
    clock = time.perf_counter_ns
    out = sys.stdout
    runs = 0
    worst_ns = 0
    worst_us = 0
    printing_ns = 0
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = previous = clock()
        end = start + max(0, seconds) * 1_000_000_000
        try:
            while True:
                now = clock()
                latency = now - previous
                runs += 1
                if latency > worst_ns:
                    worst_ns = latency
                    if latency // 1000 > worst_us:
                        worst_us = latency // 1000
                        out.write(f"Max latency so far: {worst_us} microseconds.\n")
                        out.flush()
                        after = clock()  # the printing is not part of any run
                        printing_ns += after - now
                        now = after
                if now > end:
                    break
                previous = now
        except KeyboardInterrupt:
            pass
        measured_ns = clock() - start - printing_ns
    finally:
        if was_enabled:
            gc.enable()
    avg_ns = measured_ns / runs if runs else 0.0
    ratio = worst_ns / avg_ns if avg_ns else 0.0
    out.write(f"\n{runs} total runs (avg latency: {avg_ns / 1000:.4f} microseconds / "
              f"{avg_ns:.2f} nanoseconds per run).\n")
    out.write(f"Worst run took {ratio:.0f}x longer than the average latency.\n")
    out.flush()
    return 0
