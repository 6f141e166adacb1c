"""Latency histograms and CPU counters shared by the benchmark scripts.

The histogram is the one shm_bench.c prints: log-linear, 64 sub-buckets per
power of two of nanoseconds, exact below 128 ns, so a percentile read from it
is within 1.6% of the true value.  Keeping raw samples is not an option for
the C fast path (millions per second), and a histogram lets bench/run.py merge
the interleaved rounds of one measurement exactly.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

SUB_BITS = 6
SUB = 1 << SUB_BITS
CLK_TCK = os.sysconf("SC_CLK_TCK")


def bucket_of(ns: int) -> int:
    if ns < 2 * SUB:
        return ns
    e = ns.bit_length() - 1
    return ((e - SUB_BITS + 1) << SUB_BITS) + ((ns >> (e - SUB_BITS)) & (SUB - 1))


def bucket_mid(idx: int) -> float:
    if idx < 2 * SUB:
        return float(idx)
    e = (idx >> SUB_BITS) + SUB_BITS - 1
    width = 1 << (e - SUB_BITS)
    return (SUB + (idx & (SUB - 1))) * width + width / 2


class Histogram:
    """Round-trip times of one measurement, possibly merged from several runs."""

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()
        self.count = 0
        self.busy_ns = 0  # sum of all round trips: back-to-back, this is the run time
        self.max_ns = 0
        self.min_ns: int | None = None

    def add_samples(self, samples: Iterable[int]) -> None:
        counts = self.counts
        for ns in samples:
            counts[bucket_of(ns)] += 1
            self.count += 1
            self.busy_ns += ns
            if ns > self.max_ns:
                self.max_ns = ns
            if self.min_ns is None or ns < self.min_ns:
                self.min_ns = ns

    def add_record(self, rec: dict) -> None:
        """Merge one JSON record (shm_bench.c or py_bench.py output)."""
        for idx, n in rec["hist"]:
            self.counts[idx] += n
        self.count += rec["ops"]
        self.busy_ns += rec["busy_ns"]
        self.max_ns = max(self.max_ns, rec["max_ns"])
        if self.min_ns is None or rec["min_ns"] < self.min_ns:
            self.min_ns = rec["min_ns"]

    def percentile(self, q: float) -> float:
        if not self.count:
            return float("nan")
        rank = max(1, math.ceil(q * self.count - 1e-9))
        seen = 0
        for idx in sorted(self.counts):
            seen += self.counts[idx]
            if seen >= rank:
                return min(bucket_mid(idx), float(self.max_ns))
        return float(self.max_ns)

    def summary(self) -> dict:
        ops_per_s = self.count * 1e9 / self.busy_ns if self.busy_ns else float("nan")
        return {
            "ops": self.count,
            "ops_per_s": round(ops_per_s, 1),
            "mean_us": round(self.busy_ns / self.count / 1000, 3) if self.count else None,
            "min_us": round((self.min_ns or 0) / 1000, 3),
            "p50_us": round(self.percentile(0.50) / 1000, 3),
            "p99_us": round(self.percentile(0.99) / 1000, 3),
            "p999_us": round(self.percentile(0.999) / 1000, 3),
            "max_us": round(self.max_ns / 1000, 3),
        }

    def record(self) -> dict:
        """The JSON form shm_bench.c prints (for py_bench.py)."""
        return {
            "ops": self.count, "busy_ns": self.busy_ns, "max_ns": self.max_ns,
            "min_ns": self.min_ns or 0, "hist_sub_bits": SUB_BITS,
            "hist": sorted(self.counts.items()),
            **{k: v for k, v in self.summary().items() if k != "ops"},
        }


def thread_cpu_ns(pid: int) -> int:
    """Run time of every thread of a process, in ns (schedstat: fine-grained)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that just exited
    return total


def stat_cpu_ticks(pid: int) -> int:
    """utime + stime of a process from /proc/<pid>/stat, in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)
