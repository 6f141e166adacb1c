"""The statistics line of --latency, --latency-history and their summaries.

redis-cli 7.0 prints `min: 0, max: 1, avg: 0.15 (99 samples)` (or its raw,
CSV and JSON forms) from whole milliseconds.  Upstream's coming format
(redis/redis#15352) keeps the shape but times in microseconds and prints
milliseconds with three decimals; shmcli prints that:

    tty   min: 0.031, max: 0.336, avg: 0.103 (812 samples)
    raw   0.031 0.336 0.103 812
    csv   0.031,0.336,0.103,812
    json  {"min": 0.031, "max": 0.336, "avg": 0.103, "count": 812}

With --latency-percentiles, p50, p99 and p99.9 follow, in the same units:
`, p50: 0.089, p99: 0.301, p99.9: 0.336` (tty), three more fields (raw and
CSV), and `"percentiles": {"50": 0.089, "99": 0.301, "99.9": 0.336}` (JSON,
as upstream).  --quoted-json prints what --json prints (redis-cli 7.0 prints
nothing at all there, a missing branch).
"""

from __future__ import annotations

from .histogram import LatencyHistogram

__all__ = ["PERCENTILES", "format_ms", "stats_line", "summary_line"]

PERCENTILES = (50.0, 99.0, 99.9)


def format_ms(ns: float) -> str:
    """Nanoseconds as milliseconds with three decimals (µs resolution)."""
    return f"{ns / 1e6:.3f}"


def _label(pct: float) -> str:
    return f"{pct:g}"


def stats_line(hist: LatencyHistogram, mode: str, percentiles: bool) -> str:
    """One line in output `mode`, without its newline."""
    fields = [format_ms(hist.min_ns), format_ms(hist.max_ns), format_ms(hist.mean_ns)]
    marks = [(_label(p), format_ms(hist.percentile(p))) for p in PERCENTILES] \
        if percentiles else []
    if mode == "tty":
        line = "min: {}, max: {}, avg: {}".format(*fields) + f" ({hist.count} samples)"
        return line + "".join(f", p{label}: {value}" for label, value in marks)
    if mode == "csv":
        return ",".join([*fields, str(hist.count), *(value for _, value in marks)])
    if mode in ("json", "quoted-json"):
        text = '{{"min": {}, "max": {}, "avg": {}'.format(*fields) + f', "count": {hist.count}'
        if marks:
            text += ', "percentiles": {' + ", ".join(f'"{label}": {value}'
                                                     for label, value in marks) + "}"
        return text + "}"
    return " ".join([*fields, str(hist.count), *(value for _, value in marks)])


def summary_line(hist: LatencyHistogram, seconds: float) -> str:
    """The whole run, printed on a terminal after Ctrl-C: always with the
    percentiles, since a long run is what they are for."""
    return f"whole run ({seconds:.2f} seconds): {stats_line(hist, 'tty', True)}"
