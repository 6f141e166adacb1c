"""How --latency-compare shows its result: a rich table and bar chart for
people, CSV and JSON for programs.

Times are in microseconds here (a shared-memory round trip is a few µs,
which three decimals of a millisecond would flatten).  A transport that
could not be measured shows `absent` and the reason, never zeros; JSON gives
it `"available": false`, a `"reason"` and null statistics.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from .histogram import LatencyHistogram
from .transports import ServerFacts, Transport

__all__ = ["RunFacts", "render_csv", "render_json", "render_people", "render_progress"]

STATS = (("min", None), ("p50", 50.0), ("p99", 99.0), ("p99.9", 99.9), ("max", None))
COLOURS = {"shm": "green", "unix": "yellow", "tcp": "magenta"}
BAR_WIDTH = 40
EIGHTHS = " ▏▎▍▌▋▊▉"


@dataclass
class RunFacts:
    requested_s: float
    elapsed_s: float
    pause_ms: float
    rounds: int
    interrupted: bool


def _value_ns(hist: LatencyHistogram, name: str, pct: float | None) -> float:
    if pct is not None:
        return hist.percentile(pct)
    return hist.min_ns if name == "min" else hist.max_ns


def _stats_us(t: Transport) -> dict[str, float | None]:
    measured = t.absent is None and t.hist.count > 0
    stats: dict[str, float | None] = {}
    for name, pct in STATS:
        stats[f"{name}_us"] = round(_value_ns(t.hist, name, pct) / 1000, 3) if measured else None
    stats["avg_us"] = round(t.hist.mean_ns / 1000, 3) if measured else None
    return stats


def _note(t: Transport) -> str:
    if t.absent is not None:
        return f"absent: {t.absent}"
    notes = []
    if t.lost is not None:
        notes.append(f"lost during the run: {t.lost}")
    if t.off_path:
        notes.append(f"{t.off_path} probes were sent back to the socket by the module")
    return "; ".join(notes)


def render_json(server: ServerFacts, transports: list[Transport], run: RunFacts) -> str:
    body: dict[str, object] = {
        "command": "PING",
        "server": {"address": server.where, "version": server.version,
                   **{k: v for k, v in server.config.items() if k.startswith("shm.")}},
        "requested_s": run.requested_s, "elapsed_s": round(run.elapsed_s, 3),
        "pause_ms": run.pause_ms, "rounds": run.rounds, "interrupted": run.interrupted,
        "transports": {
            t.name: {"available": t.absent is None, "where": t.where,
                     "reason": t.absent, "lost": t.lost, "samples": t.hist.count,
                     **_stats_us(t), "off_path": t.off_path}
            for t in transports
        },
    }
    return json.dumps(body)


def render_csv(transports: list[Transport]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["transport", "where", "samples", *(f"{n}_us" for n, _ in STATS),
                     "avg_us", "note"])
    for t in transports:
        stats = _stats_us(t)
        writer.writerow([t.name, t.where, t.hist.count if t.absent is None else "",
                         *("" if v is None else f"{v:.3f}" for v in stats.values()), _note(t)])
    return buffer.getvalue()


def _table(transports: list[Transport]) -> Table:
    table = Table(title="PING round trip, µs", title_justify="left", box=None,
                  header_style="bold", pad_edge=False)
    table.add_column("transport")
    table.add_column("samples", justify="right")
    for name, _ in STATS:
        table.add_column(name, justify="right")
    table.add_column("avg", justify="right")
    for t in transports:
        label = Text(t.name, style=COLOURS.get(t.name, ""))
        if t.absent is not None:
            table.add_row(label, Text("absent", style="dim"),
                          *(Text("—", style="dim") for _ in range(len(STATS) + 1)))
            continue
        values = [f"{v:,.1f}" if v is not None else "—" for v in _stats_us(t).values()]
        table.add_row(label, f"{t.hist.count:,}", *values)
    return table


def _bar(value: float, scale: float, ascii_only: bool) -> str:
    cells = value / scale * BAR_WIDTH if scale else 0.0
    full = int(cells)
    if ascii_only:
        return "#" * max(full, 1 if value else 0)
    return "█" * full + EIGHTHS[int((cells - full) * 8)].strip()


def _chart(transports: list[Transport], ascii_only: bool) -> Table:
    measured = [t for t in transports if t.absent is None and t.hist.count]
    grid = Table.grid(padding=(0, 1))
    grid.add_column(justify="right")
    grid.add_column()
    grid.add_column()
    grid.add_column(justify="right")
    for name, pct in (("p50", 50.0), ("p99", 99.0)):
        values = {t.name: t.hist.percentile(pct) / 1000 for t in measured}
        scale = max(values.values(), default=0.0)
        for i, t in enumerate(transports):
            head = name if i == 0 else ""
            if t.name not in values:
                grid.add_row(head, Text(t.name, style=COLOURS.get(t.name, "")),
                             Text("absent", style="dim"), "")
                continue
            value = values[t.name]
            grid.add_row(head, Text(t.name, style=COLOURS.get(t.name, "")),
                         Text(_bar(value, scale, ascii_only), style=COLOURS.get(t.name, "")),
                         f"{value:,.1f} µs")
    return grid


def _header(server: ServerFacts, transports: list[Transport], run: RunFacts) -> Text:
    shm = ", ".join(f"{k} {v}" for k, v in server.config.items() if k.startswith("shm."))
    measured = ", ".join(t.name for t in transports if t.absent is None) or "nothing"
    lines = [f"server {server.where} ({server.version}{', ' + shm if shm else ''})",
             f"interleaved {measured} (the order rotates every round), "
             f"{run.pause_ms:g} ms pause between rounds: {run.rounds:,} rounds in "
             f"{run.elapsed_s:.2f} s" + (" (interrupted)" if run.interrupted else "")]
    return Text("\n".join(lines))


def render_people(console: Console, server: ServerFacts, transports: list[Transport],
                  run: RunFacts) -> None:
    ascii_only = not console.encoding.lower().startswith("utf")
    console.print(_header(server, transports, run), soft_wrap=True)
    console.print()
    console.print(_table(transports))
    console.print()
    console.print(_chart(transports, ascii_only))
    console.print()
    for t in transports:
        note = _note(t)
        where = f"{t.name}: {t.where}" if t.where else f"{t.name}:"
        console.print(Text(where + (f" ({note})" if note else ""),
                           style="dim" if t.absent else ""), soft_wrap=True)


def render_progress(transports: list[Transport], elapsed: float, duration: float
                    ) -> RenderableType:
    status = Text(f"sampling {elapsed:4.1f} / {duration:g} s (Ctrl-C stops and reports)",
                  style="dim")
    return Group(status, _table(transports))
