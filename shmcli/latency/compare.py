"""--latency-compare (shmcli's own): the same PING probe over shared memory,
the unix socket and TCP, against one server, side by side.

Sampling: rounds of one probe per available transport, in an order that
rotates every round (shm, unix, tcp; then unix, tcp, shm; ...) so that
neither machine noise nor "who went just before" favours one transport,
then a 1 ms pause.  The pause lets every spin budget (the client's 50 µs,
the fast-path worker's shm.worker-spin-us) run out, so each probe meets a
server that went idle, as --latency's probes do, while giving ten times as
many samples per second (p99.9 needs thousands).  -i sets the duration in
seconds (default 5).

Output: a table (min, p50, p99, p99.9, max, avg, samples) and a bar chart on
a terminal, the same without colours when piped; --csv and --json for
programs (compare_view.py).  While sampling on a terminal the table is
redrawn in place (rich Live, refreshed between rounds, never while a probe
is timed).  Ctrl-C stops early and reports what was measured (exit 0).
Exit status 1: the server cannot be reached, nothing could be measured, or
a transport broke during the run (its figures so far are still shown).
"""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.live import Live

from ..options import Options
from .closed_stdout import guard_console
from .compare_view import RunFacts, render_csv, render_json, render_people, render_progress
from .transports import Transport, open_transports

__all__ = ["run_latency_compare", "DEFAULT_DURATION", "ROUND_PAUSE"]

DEFAULT_DURATION = 5.0  # seconds
ROUND_PAUSE = 0.001  # seconds between rounds
REFRESH_EVERY = 0.25  # seconds between redraws of the live table


def _probe(transport: Transport, active: list[Transport]) -> None:
    conn = transport.conn
    assert conn is not None
    try:
        elapsed = conn.timed_ping()
    except (ConnectionError, OSError) as exc:
        transport.lost = str(exc) or type(exc).__name__
        transport.close()
        active.remove(transport)
        return
    transport.hist.add(elapsed)
    if transport.name == "shm" and conn.last_transport != "shm":
        transport.off_path += 1


def _sample(active: list[Transport], duration: float, live: Live | None) -> tuple[int, bool]:
    """Probe until `duration` has passed; returns (rounds, interrupted)."""
    everyone = list(active)
    rounds = 0
    start = time.monotonic()
    redraw = start + REFRESH_EVERY
    try:
        while active and (now := time.monotonic()) - start < duration:
            shift = rounds % len(active)
            for transport in active[shift:] + active[:shift]:
                _probe(transport, active)
            rounds += 1
            if live is not None and now >= redraw:
                live.update(render_progress(everyone, now - start, duration), refresh=True)
                redraw = now + REFRESH_EVERY
            time.sleep(ROUND_PAUSE)
    except KeyboardInterrupt:
        return rounds, True
    return rounds, False


def run_latency_compare(opts: Options, mode: str) -> int:
    opened = open_transports(opts)
    if opened is None:
        return 1
    server, transports = opened
    try:
        active = [t for t in transports if t.conn is not None]
        duration = opts.interval or DEFAULT_DURATION
        console = guard_console(Console(highlight=False))
        started = time.monotonic()
        if active and mode == "tty" and console.is_terminal:
            with Live(render_progress(transports, 0.0, duration), console=console,
                      auto_refresh=False, transient=True) as live:
                rounds, interrupted = _sample(active, duration, live)
        elif active:
            rounds, interrupted = _sample(active, duration, None)
        else:
            rounds, interrupted = 0, False
        run = RunFacts(duration, time.monotonic() - started, ROUND_PAUSE * 1000, rounds,
                       interrupted)
        if mode in ("json", "quoted-json"):
            print(render_json(server, transports, run))
        elif mode == "csv":
            sys.stdout.write(render_csv(transports))
        else:
            if interrupted and mode == "tty":
                console.print()
            render_people(console, server, transports, run)
        sys.stdout.flush()
    finally:
        for transport in transports:
            transport.close()
    if all(t.absent is not None for t in transports):
        print("shmcli: no transport could be measured", file=sys.stderr)
        return 1
    return 1 if any(t.lost is not None for t in transports) else 0
