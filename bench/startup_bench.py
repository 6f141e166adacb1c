"""Start-up: `shmcli GET k` and the shell's first prompt, against redis-cli.

    python bench/startup_bench.py               # 30 pairs per row, ~25 s
    python bench/startup_bench.py --pairs 100 --json /tmp/startup.json
    python bench/startup_bench.py --baseline /tmp/old   # also this tree against another

A one-shot command is almost all start-up (connecting and the GET take about 1 ms),
so this is the figure a shell loop of shmcli calls pays per call.  What this
does:
  1. starts a throwaway redis-server with the module (main-thread) and sets
     k = v; compiles the shmcli package's bytecode first, as `pip install`
     does, so no run pays for compiling a changed source file;
  2. checks once that both tools print "v";
  3. runs the pairs side by side, in turns (A B, then B A, ...), each run a
     whole process timed from start to exit:
     - `shmcli -s SOCK GET k` against `redis-cli -s SOCK GET k`;
     - `python -c pass` (the interpreter and its site packages, no shmcli)
       against the same redis-cli: the floor any Python command pays here;
     - the interactive shell through a pseudo-terminal, from start to its
       prompt on the screen (prompt_toolkit with PROMPT_TOOLKIT_NO_CPR=1 as
       tests/test_repl.py runs it; redis-cli's cursor-position request is
       answered), against redis-cli's;
     - with --baseline DIR (a directory holding another built shmcli/),
       `shmcli GET k` and the shell with this tree against that one, both
       through PYTHONPATH;
  4. prints each row's median wall times (and CPU times, which a busy
     machine moves less) and the median of the per-pair ratios.

`shmcli` is the console script next to this Python when there is one, else
`python -m shmcli`.  Nothing here asserts on time: the import check is
tests/test_startup.py.
"""

from __future__ import annotations

import argparse
import compileall
import fcntl
import json
import os
import platform
import pty
import resource
import select
import shutil
import statistics
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import shmcli
from shmcli.testing import Server

CPR_REQUEST = b"\x1b[6n"  # linenoise asks where the cursor is before its prompt
CPR_ANSWER = b"\x1b[1;1R"


def shmcli_command() -> list[str]:
    script = Path(sys.executable).with_name("shmcli")
    return [str(script)] if script.exists() else [sys.executable, "-m", "shmcli"]


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("FAKETTY", "FAKETTY_WITH_PROMPT", "REDISCLI_AUTH")}
    env.update(TERM="xterm-256color", PROMPT_TOOLKIT_NO_CPR="1", REDISCLI_HISTFILE="/dev/null",
               REDISCLI_RCFILE="/dev/null")
    return env


def run_to_exit(argv: Sequence[str], env: dict[str, str]) -> tuple[float, float | None]:
    """Wall seconds from start to exit, and the CPU seconds (user + system)
    the process used: on a busy machine the CPU figure moves less."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    # A plain wait(): with a timeout, Popen polls with sleeps that double
    # from 0.5 ms up to 50 ms, and every time measured would be rounded up
    # to 32, 64, 114 ms...  The timer only bounds a run that hangs.
    guard = threading.Timer(60, proc.kill)
    guard.start()
    proc.wait()
    wall = time.perf_counter() - start
    guard.cancel()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} exited {proc.returncode}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run_to_prompt(argv: Sequence[str], env: dict[str, str],
                  prompt: bytes) -> tuple[float, float | None]:
    """Wall seconds from start until `prompt` is on the (pseudo-)terminal
    (no CPU figure: the process is killed after, not at, the prompt)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                            start_new_session=True)
    os.close(slave)
    seen = b""
    try:
        while prompt not in seen:
            ready, _, _ = select.select([master], [], [], 30)
            if not ready:
                raise RuntimeError(f"{argv}: no prompt after 30 s; the screen had {seen!r}")
            chunk = os.read(master, 65536)
            if CPR_REQUEST in chunk:
                os.write(master, CPR_ANSWER)
            seen += chunk
        return time.perf_counter() - start, None
    finally:
        proc.kill()
        proc.wait()
        os.close(master)


Measure = Callable[[], tuple[float, float | None]]


def paired(measure_a: Measure, measure_b: Measure, pairs: int) -> dict[str, object]:
    """A and B in turns (A B, B A, ...) after one warm-up of each; the
    ratio A/B is taken pair by pair, so a drift of the machine's speed
    during the row moves both sides of a ratio alike."""
    measure_a()
    measure_b()
    a_runs: list[tuple[float, float | None]] = []
    b_runs: list[tuple[float, float | None]] = []
    for i in range(pairs):
        if i % 2:
            b_runs.append(measure_b())
            a_runs.append(measure_a())
        else:
            a_runs.append(measure_a())
            b_runs.append(measure_b())
    ratios = [a[0] / b[0] for a, b in zip(a_runs, b_runs, strict=True)]
    row: dict[str, object] = {
        "a_ms": [round(a[0] * 1e3, 3) for a in a_runs],
        "b_ms": [round(b[0] * 1e3, 3) for b in b_runs],
        "a_median_ms": statistics.median(a[0] for a in a_runs) * 1e3,
        "b_median_ms": statistics.median(b[0] for b in b_runs) * 1e3,
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios), "ratio_max": max(ratios)}
    if a_runs[0][1] is not None and b_runs[0][1] is not None:
        row["a_cpu_median_ms"] = statistics.median(a[1] or 0.0 for a in a_runs) * 1e3
        row["b_cpu_median_ms"] = statistics.median(b[1] or 0.0 for b in b_runs) * 1e3
    return row


def check_output(argv: Sequence[str], env: dict[str, str]) -> None:
    out = subprocess.run(argv, capture_output=True, env=env, timeout=60)
    if out.returncode != 0 or out.stdout != b"v\n":
        raise RuntimeError(f"{argv}: exit {out.returncode}, {out.stdout!r} {out.stderr!r}")


def measure(server: Server, pairs: int, shell: bool = True,
            baseline: Path | None = None) -> dict[str, tuple[str, dict[str, object]]]:
    """The rows, by name: (what A is compared with, the paired figures)."""
    env = child_env()
    ours = shmcli_command()
    target = ["-s", server.unix_socket]
    one_shot_ours = [*ours, *target, "GET", "k"]
    one_shot_theirs = ["redis-cli", *target, "GET", "k"]
    floor = [sys.executable, "-c", "pass"]
    check_output(one_shot_ours, env)
    check_output(one_shot_theirs, env)
    prompt = f"redis {server.unix_socket}>".encode()
    rows = {
        "shmcli GET k": ("redis-cli", paired(lambda: run_to_exit(one_shot_ours, env),
                                             lambda: run_to_exit(one_shot_theirs, env), pairs)),
        "python -c pass (floor)": ("redis-cli", paired(lambda: run_to_exit(floor, env),
                                                       lambda: run_to_exit(one_shot_theirs, env),
                                                       pairs)),
    }
    if shell:
        rows["shmcli shell to prompt"] = ("redis-cli", paired(
            lambda: run_to_prompt([*ours, *target], env, prompt),
            lambda: run_to_prompt(["redis-cli", *target], env, prompt), pairs))
    if baseline is not None:
        # Both trees through PYTHONPATH, so both are found the same way.
        env_ours = {**env, "PYTHONPATH": str(Path(shmcli.__file__).parent.parent)}
        env_base = {**env, "PYTHONPATH": str(baseline)}
        check_output(one_shot_ours, env_base)
        rows["shmcli GET k, this/baseline"] = ("baseline", paired(
            lambda: run_to_exit(one_shot_ours, env_ours),
            lambda: run_to_exit(one_shot_ours, env_base), pairs))
        if shell:
            rows["shell to prompt, this/baseline"] = ("baseline", paired(
                lambda: run_to_prompt([*ours, *target], env_ours, prompt),
                lambda: run_to_prompt([*ours, *target], env_base, prompt), pairs))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=30, help="runs of each tool per row")
    parser.add_argument("--no-shell", action="store_true", help="skip the shell's prompt rows")
    parser.add_argument("--baseline", type=Path,
                        help="another shmcli tree (the directory holding its shmcli/, built): "
                             "adds rows of this tree against that one")
    parser.add_argument("--json", help="also write every run to this file")
    args = parser.parse_args()
    if shutil.which("redis-cli") is None:
        print("redis-cli is not on PATH", file=sys.stderr)
        return 1
    package = Path(shmcli.__file__).parent
    for tree in (package, *([args.baseline / "shmcli"] if args.baseline else [])):
        compileall.compile_dir(str(tree), quiet=1)
    server = Server("redis", "main-thread", name="startup-bench").start()
    try:
        with server.admin() as conn:
            conn.execute("SET", "k", "v")
        rows = measure(server, args.pairs, not args.no_shell, args.baseline)
    finally:
        server.cleanup()
    print(f"shmcli: {' '.join(shmcli_command())} ({package}); {args.pairs} pairs per row, "
          f"load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    print(f"{'median wall (CPU ms)':30} {'A':>15} {'B':>24}   "
          f"A/B wall, median of pairs (min-max)")
    for name, (other, row) in rows.items():
        ours, theirs = f"{row['a_median_ms']:.1f} ms", f"{row['b_median_ms']:.1f} ms"
        if "a_cpu_median_ms" in row:
            ours += f" ({row['a_cpu_median_ms']:.0f})"
            theirs += f" ({row['b_cpu_median_ms']:.0f})"
        print(f"{name:30} {ours:>15} {other:>10} {theirs:>13}   {row['ratio_median']:5.2f}x "
              f"({row['ratio_min']:.2f}-{row['ratio_max']:.2f})")
    if args.json:
        result = {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "pairs": args.pairs,
                  "cpus": os.cpu_count(), "kernel": platform.release(),
                  "python": platform.python_version(), "shmcli": shmcli_command(),
                  "package": str(package), "baseline": str(args.baseline or ""),
                  "rows": {name: {"b": other, **row} for name, (other, row) in rows.items()}}
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
