"""Draw the round-trip latency chart of docs/performance.md from a results file.

    python bench/chart.py [bench/results/latest.json] [-o docs/img/latency.png]

One panel per command (PING, SET, GET); per client, a p50 and a p99 bar on a
log scale, because the transports span two orders of magnitude.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

BENCH = Path(__file__).resolve().parent
ROWS = [  # results key, label; top to bottom
    ("c-shm-fast", "C, shm, fast-path"),
    ("c-shm-main", "C, shm, main-thread"),
    ("c-unix", "C, unix socket"),
    ("py-api-fast", "Python API, shm, fast-path"),
    ("py-api-main", "Python API, shm, main-thread"),
    ("redispy-unix", "redis-py + hiredis, unix socket"),
    ("redispy-tcp", "redis-py + hiredis, TCP"),
]
COLORS = {"p50_us": "#2b6cb0", "p99_us": "#a3bffa"}


def label_us(v: float) -> str:
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"


def draw(results: dict, out: Path) -> None:
    lat = results["latency"]
    rows = [(k, name) for k, name in ROWS if k in lat]
    cmds = [c for c in ("ping", "set", "get") if any(c in lat[k] for k, _ in rows)]
    fig, axes = plt.subplots(1, len(cmds), figsize=(4.2 * len(cmds) + 2.2, 4.6), sharey=True)
    axes = list(axes) if len(cmds) > 1 else [axes]
    height = 0.38
    for ax, cmd in zip(axes, cmds, strict=True):
        for j, (stat, name) in enumerate((("p50_us", "p50"), ("p99_us", "p99"))):
            ys = [i + (j - 0.5) * height for i in range(len(rows))]
            vals = [lat[k].get(cmd, {}).get(stat, float("nan")) for k, _ in rows]
            bars = ax.barh(ys, vals, height=height, color=COLORS[stat], label=name)
            for bar, v in zip(bars, vals, strict=True):
                if v == v:  # not NaN
                    ax.text(v * 1.08, bar.get_y() + bar.get_height() / 2, label_us(v),
                            va="center", fontsize=7.5)
        ax.set_xscale("log")
        ax.set_xlim(0.5, 1500)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_title(cmd.upper() + ("" if cmd == "ping" else ", 16-byte value"), fontsize=11)
        ax.set_xlabel("round trip, µs (log scale)")
        ax.grid(axis="x", which="major", alpha=0.3)
    axes[0].set_yticks(range(len(rows)))
    axes[0].set_yticklabels([name for _, name in rows])
    axes[0].invert_yaxis()
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper right", ncol=2, fontsize=9, frameon=False)
    env = results.get("env", {})
    fig.suptitle(f"Back-to-back round trips, {env.get('cpus', '?')}-vCPU VM, "
                 f"{env.get('server', '').split(' sha=')[0]} ({env.get('date', '')[:10]})",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description="latency chart from bench results")
    ap.add_argument("results", nargs="?", type=Path, default=BENCH / "results" / "latest.json")
    ap.add_argument("-o", "--out", type=Path,
                    default=BENCH.parent / "docs" / "img" / "latency.png")
    opts = ap.parse_args()
    draw(json.loads(opts.results.read_text()), opts.out)
    print(f"wrote {opts.out}")


if __name__ == "__main__":
    main()
