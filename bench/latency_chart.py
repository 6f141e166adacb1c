"""Draw bench/results/latency.json (bench/latency_bench.py) as a PNG bar chart.

    .venv/bin/python bench/latency_chart.py [results.json] [out.png]

Three panels, one group of bars per server configuration: the p50 and p99
of `shmcli --latency-compare` (shared memory, unix socket, TCP; probes
interleaved with 1 ms pauses), and the averages of --latency's sampling
(10 ms pauses): shmcli's probe over shared memory and over the unix socket,
the C client over both, and redis-cli's printed average.  Needs matplotlib
(the `bench` extra).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
COLOURS = {"shm": "#2a9d4a", "unix": "#e0a526", "tcp": "#b5338a",
           "shmcli shm": "#2a9d4a", "shmcli unix": "#e0a526",
           "C shm": "#8fd19e", "C unix": "#f2d68b", "redis-cli": "#7a7a7a"}


def grouped(ax: plt.Axes, configs: list[str], series: dict[str, list[float | None]],
            title: str) -> None:
    width = 0.8 / len(series)
    for i, (name, values) in enumerate(series.items()):
        xs = [c + (i - (len(series) - 1) / 2) * width for c in range(len(configs))]
        heights = [v if v is not None else 0.0 for v in values]
        bars = ax.bar(xs, heights, width, label=name, color=COLOURS.get(name, "#999999"))
        for bar, value in zip(bars, values, strict=True):
            label = "n/a" if value is None else f"{value:.0f}"
            ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=7, xytext=(0, 2),
                        textcoords="offset points")
    ax.set_xticks(range(len(configs)), [c.replace(", ", ",\n") for c in configs], fontsize=8)
    ax.set_ylabel("µs")
    ax.set_title(title, fontsize=10)
    top = max((v for values in series.values() for v in values if v is not None), default=1.0)
    ax.set_ylim(0, top * 1.3)  # room for the legend above the bars
    ax.legend(fontsize=8, loc="upper center", ncol=3)
    ax.grid(axis="y", alpha=0.3)


def main() -> int:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "bench/results/latency.json"
    target = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "docs/img/latency_compare.png"
    data = json.loads(source.read_text())
    configs = list(data["configs"])

    def compare(transport: str, key: str) -> list[float | None]:
        values = []
        for name in configs:
            stats = data["configs"][name]["compare"].get("transports", {}).get(transport, {})
            values.append(stats.get(key) if stats.get("available") else None)
        return values

    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2))
    for ax, key, label in ((axes[0], "p50_us", "p50"), (axes[1], "p99_us", "p99")):
        grouped(ax, configs, {t: compare(t, key) for t in ("shm", "unix", "tcp")},
                f"shmcli --latency-compare: PING {label}\n(interleaved, 1 ms pause per round)")

    def latency(pick) -> list[float | None]:
        return [pick(data["configs"][name]["latency_mode"]) for name in configs]

    def ms_to_us(value: float | None) -> float | None:
        return None if value is None else value * 1000

    grouped(axes[2], configs, {
        "shmcli shm": latency(lambda m: m["probe"]["shm"]["avg_us"]),
        "shmcli unix": latency(lambda m: m["probe"]["unix"]["avg_us"]),
        "C shm": latency(lambda m: m["c_probe_10ms"]["shm"]["avg_us"]),
        "C unix": latency(lambda m: m["c_probe_10ms"]["unix"]["avg_us"]),
        "redis-cli": latency(lambda m: ms_to_us(m["redis_cli_unix_avg_ms"])),
    }, "--latency sampling (10 ms pause): average\nshmcli probe, C client, redis-cli's "
       "printed avg (unix)")
    fig.suptitle(f"PING round trips, redis 7.0 + shm module, {data['machine']['cpus']} vCPUs "
                 f"({data['when']}, commit {data['commit']})", fontsize=11)
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=110)
    print(f"written: {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
