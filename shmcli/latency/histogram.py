"""Round-trip times of a latency run, kept as a bounded log-linear histogram.

`--latency` can run for hours at 100 samples a second and prints its
percentiles after every sample, so the samples are not kept: each one goes
into a bucket (exact below 256 ns, then 128 buckets per power of two, so a
value read back is within 0.8% of the true one).  Recording is O(1), memory
is bounded by the range of values seen, and a percentile is one pass over
the few hundred buckets in use.  min, max and the sum are kept exactly.
"""

from __future__ import annotations

import math

__all__ = ["LatencyHistogram"]

_SUB_BITS = 7
_SUB = 1 << _SUB_BITS


def _bucket(ns: int) -> int:
    if ns < 2 * _SUB:
        return ns
    exponent = ns.bit_length() - 1
    return ((exponent - _SUB_BITS + 1) << _SUB_BITS) + ((ns >> (exponent - _SUB_BITS)) & (_SUB - 1))


def _bucket_top(index: int) -> int:
    """The highest value that falls in bucket `index`."""
    if index < 2 * _SUB:
        return index
    exponent = (index >> _SUB_BITS) + _SUB_BITS - 1
    width = 1 << (exponent - _SUB_BITS)
    return (_SUB + (index & (_SUB - 1))) * width + width - 1


class LatencyHistogram:
    """Samples in nanoseconds."""

    __slots__ = ("counts", "count", "total_ns", "min_ns", "max_ns")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.count = 0
        self.total_ns = 0
        self.min_ns = 0
        self.max_ns = 0

    def add(self, ns: int) -> None:
        ns = max(0, ns)
        index = _bucket(ns)
        self.counts[index] = self.counts.get(index, 0) + 1
        if self.count == 0 or ns < self.min_ns:
            self.min_ns = ns
        if ns > self.max_ns:
            self.max_ns = ns
        self.count += 1
        self.total_ns += ns

    def reset(self) -> None:
        self.counts.clear()
        self.count = self.total_ns = self.min_ns = self.max_ns = 0

    @property
    def mean_ns(self) -> float:
        return self.total_ns / self.count if self.count else 0.0

    def percentile(self, pct: float) -> int:
        """The value under which `pct`% of the samples fall (the top of its
        bucket, clamped to the exact min and max); 0 with no samples."""
        if not self.count:
            return 0
        rank = max(1, math.ceil(pct / 100.0 * self.count))
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                return min(max(_bucket_top(index), self.min_ns), self.max_ns)
        return self.max_ns
