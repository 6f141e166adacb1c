"""The latency tools (issue #4) through the whole CLI, against real servers,
with the real redis-cli as the oracle where the output has the same shape.

redis-cli times in whole milliseconds and prints integers; shmcli times in
microseconds and prints milliseconds with three decimals (upstream's coming
format), so the outputs are compared by structure (fields, their order,
separators, line kinds) and ours are checked to be sane numbers (min <= avg
<= max, no more samples than 10 ms sampling allows).  No timing assertions.
Terminal behaviour goes through a pseudo-terminal (pexpect).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

import pexpect
import pytest
from cli_diff import REDIS_CLI, SHMCLI, run_tool
from servers import RawSocket, Server, wait_until

from shmcli.latency.spectrum import BUCKETS, COLOUR_PALETTE, LEGEND, MONO_PALETTE

MS3 = r"\d+\.\d{3}"
OURS = {
    "raw": re.compile(rf"^({MS3}) ({MS3}) ({MS3}) (\d+)$"),
    "csv": re.compile(rf"^({MS3}),({MS3}),({MS3}),(\d+)$"),
    "json": re.compile(rf'^\{{"min": ({MS3}), "max": ({MS3}), "avg": ({MS3}), "count": (\d+)\}}$'),
    "tty": re.compile(rf"^min: ({MS3}), max: ({MS3}), avg: ({MS3}) \((\d+) samples\)$"),
}
THEIRS = {
    "raw": re.compile(r"^(\d+) (\d+) (\d+\.\d{2}) (\d+)$"),
    "csv": re.compile(r"^(\d+),(\d+),(\d+\.\d{2}),(\d+)$"),
    "json": re.compile(r'^\{"min": (\d+), "max": (\d+), "avg": (\d+\.\d{2}), "count": (\d+)\}$'),
    "tty": re.compile(r"^min: (\d+), max: (\d+), avg: (\d+\.\d{2}) \((\d+) samples\)$"),
}
PCT_RAW = re.compile(rf"^({MS3}) ({MS3}) ({MS3}) (\d+) ({MS3}) ({MS3}) ({MS3})$")
PCT_TTY = rf", p50: ({MS3}), p99: ({MS3}), p99\.9: ({MS3})"
SUMMARY = re.compile(rf"whole run \(\d+\.\d\d seconds\): min: ({MS3}), max: ({MS3}), "
                     rf"avg: ({MS3}) \((\d+) samples\){PCT_TTY}")
RANGE = re.compile(r"^ -- \d+\.\d\d seconds range$")
ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
SAMPLE_PAUSE = 0.010


def target(srv: Server) -> list[str]:
    return ["-s", srv.unix_socket]


def sane(fields: Sequence[str], seconds: float | None = None) -> None:
    low, high, avg, count = float(fields[0]), float(fields[1]), float(fields[2]), int(fields[3])
    assert count >= 1
    assert low <= avg <= high, fields
    assert low > 0, fields  # a real round trip, never a quantised 0
    if seconds is not None:  # 10 ms between samples bounds the count from above
        assert count <= seconds / SAMPLE_PAUSE + 2, fields


def spawn(argv: Sequence[str], tool: Sequence[str] = SHMCLI) -> pexpect.spawn:
    env = {k: v for k, v in os.environ.items() if k not in ("FAKETTY", "REDISCLI_AUTH")}
    return pexpect.spawn(tool[0], [*tool[1:], *argv], env=env, dimensions=(40, 200),
                         timeout=30)


def interrupt_after(argv: Sequence[str], ready: Callable[[list[bytes]], bool],
                    tool: Sequence[str] = SHMCLI) -> tuple[int, bytes, bytes]:
    """Run without a terminal, read stdout lines until `ready`, then SIGINT."""
    env = {k: v for k, v in os.environ.items() if k not in ("FAKETTY", "REDISCLI_AUTH")}
    proc = subprocess.Popen([*tool, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env)
    assert proc.stdout is not None
    lines: list[bytes] = []
    try:
        while not ready(lines):
            line = proc.stdout.readline()
            assert line, f"ended early: {b''.join(lines)[-500:]!r}"
            lines.append(line)
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, b"".join(lines) + rest, err


# ---- --latency without a terminal: one sample of -i seconds ----

def test_latency_one_shot_over_every_server(server: Server) -> None:
    run = run_tool([*SHMCLI, "--verbose"], [*target(server), "--latency", "-i", "0.3"])
    assert run.returncode == 0, run.stderr
    lines = run.stdout.decode().splitlines()
    assert len(lines) == 1
    match = OURS["raw"].match(lines[0])
    assert match, lines
    sane(match.groups(), 0.3)
    assert b"# transport: shm" in run.stderr  # the probe really travels shared memory


@pytest.mark.parametrize("mode", ["raw", "csv", "json"])
def test_latency_one_shot_formats_match_redis_cli(make_server, mode: str) -> None:
    srv = make_server("redis")
    flags = [] if mode == "raw" else [f"--{mode}"]
    theirs = run_tool(REDIS_CLI, [*target(srv), "--latency", "-i", "0.3", *flags])
    ours = run_tool(SHMCLI, [*target(srv), "--latency", "-i", "0.3", *flags])
    assert (ours.returncode, ours.stderr) == (theirs.returncode, theirs.stderr) == (0, b"")
    their_lines = theirs.stdout.decode().splitlines()
    our_lines = ours.stdout.decode().splitlines()
    assert len(our_lines) == len(their_lines) == 1
    assert THEIRS[mode].match(their_lines[0]), their_lines
    match = OURS[mode].match(our_lines[0])
    assert match, our_lines
    sane(match.groups(), 0.3)


def test_latency_percentiles_in_every_format(make_server) -> None:
    srv = make_server("redis")
    base = [*target(srv), "--latency", "-i", "0.2", "--latency-percentiles"]
    raw = run_tool(SHMCLI, base).stdout.decode().strip()
    match = PCT_RAW.match(raw)
    assert match, raw
    low, high, _, _, p50, p99, p999 = match.groups()
    assert float(low) <= float(p50) <= float(p99) <= float(p999) <= float(high)
    csv_line = run_tool(SHMCLI, [*base, "--csv"]).stdout.decode().strip()
    assert re.fullmatch(rf"{MS3},{MS3},{MS3},\d+,{MS3},{MS3},{MS3}", csv_line), csv_line
    body = json.loads(run_tool(SHMCLI, [*base, "--json"]).stdout)
    assert list(body) == ["min", "max", "avg", "count", "percentiles"]
    assert list(body["percentiles"]) == ["50", "99", "99.9"]
    assert body["min"] <= body["percentiles"]["50"] <= body["percentiles"]["99.9"] <= body["max"]


def test_quoted_json_prints_json_where_redis_cli_prints_nothing(make_server) -> None:
    srv = make_server("redis")
    args = [*target(srv), "--latency", "-i", "0.2", "--quoted-json"]
    theirs = run_tool(REDIS_CLI, args)
    ours = run_tool(SHMCLI, args)
    assert (theirs.returncode, theirs.stdout) == (0, b"")  # redis-cli 7.0's missing branch
    assert ours.returncode == 0
    assert set(json.loads(ours.stdout)) == {"min", "max", "avg", "count"}


def test_ctrl_c_ends_the_one_shot_sample_early_with_its_line(make_server) -> None:
    srv = make_server("redis")
    proc = subprocess.Popen([*SHMCLI, *target(srv), "--latency", "-i", "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    match = OURS["raw"].match(out.decode().strip())
    assert match, out
    sane(match.groups())


# ---- --latency-history without a terminal ----

def test_latency_history_lines_and_ranges_match_redis_cli(make_server) -> None:
    srv = make_server("redis")
    argv = [*target(srv), "--latency-history", "-i", "0.2"]

    def two_windows(lines: list[bytes]) -> bool:
        return sum(1 for line in lines if RANGE.match(line.decode().rstrip("\n"))) >= 2

    their_rc, their_out, _ = interrupt_after(argv, two_windows, REDIS_CLI)
    our_rc, our_out, our_err = interrupt_after(argv, two_windows)
    assert their_rc == -signal.SIGINT  # redis-cli dies of SIGINT here
    assert our_rc == 0, our_err  # ours stops and closes the window
    theirs = their_out.decode().splitlines()
    ours = our_out.decode().splitlines()

    def shape(lines: list[str], stats: re.Pattern[str]) -> list[str]:
        kinds = []
        for line in lines:
            if RANGE.match(line):
                kinds.append("range")
            else:
                assert stats.match(line), line
                kinds.append("stats")
        return kinds

    their_shape, our_shape = shape(theirs, THEIRS["raw"]), shape(ours, OURS["raw"])
    assert their_shape[0] == our_shape[0] == "stats"
    assert our_shape[-1] == "range"  # Ctrl-C closed the last window
    # Within a window the count goes 1, 2, 3... in both, and restarts after a range.
    for lines, stats in ((theirs, THEIRS["raw"]), (ours, OURS["raw"])):
        expected = 1
        for line in lines:
            if RANGE.match(line):
                expected = 1
                continue
            match = stats.match(line)
            assert match and int(match.group(4)) == expected, line
            expected += 1
    for line in ours:
        if not RANGE.match(line):
            match = OURS["raw"].match(line)
            assert match
            sane(match.groups())


# ---- on a terminal ----

LIVE = re.compile(rb"\x1b\[0G\x1b\[2Kmin: [\d.]+, max: [\d.]+, avg: [\d.]+ \(\d+ samples\)")


def test_live_line_redraws_in_place_like_redis_cli(make_server) -> None:
    srv = make_server("redis")
    theirs = spawn([*target(srv), "--latency"], REDIS_CLI)
    ours = spawn([*target(srv), "--latency"])
    try:
        for child, number in ((theirs, rb"\d+"), (ours, rb"\d+\.\d{3}")):
            for _ in range(3):  # three redraws, each a clear + the line, no newline
                child.expect(rb"\x1b\[0G\x1b\[2Kmin: " + number + rb", max: " + number
                             + rb", avg: [\d.]+ \(\d+ samples\)")
                assert b"\n" not in child.after
        ours.sendintr()
        ours.expect(SUMMARY.pattern.encode())
        ours.expect(pexpect.EOF)
        ours.close()
        assert ours.exitstatus == 0
        theirs.sendintr()
        theirs.expect(pexpect.EOF)
        theirs.close()
        assert theirs.signalstatus == signal.SIGINT  # redis-cli has no summary to print
    finally:
        theirs.close(force=True)
        ours.close(force=True)


def test_ctrl_c_on_a_terminal_prints_a_newline_then_the_summary(make_server) -> None:
    srv = make_server("redis")
    child = spawn([*target(srv), "--latency", "--latency-percentiles"])
    try:
        child.expect(LIVE.pattern + rb", p50: [\d.]+, p99: [\d.]+, p99\.9: [\d.]+")
        child.expect(LIVE)
        child.sendintr()
        child.expect(rb"\r\n(whole run .*)\r\n")
        match = SUMMARY.match(child.match.group(1).decode())
        assert match, child.match.group(1)
        low, high, avg, count, p50, p99, p999 = match.groups()
        assert float(low) <= float(avg) <= float(high)
        assert float(low) <= float(p50) <= float(p99) <= float(p999) <= float(high)
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
    finally:
        child.close(force=True)


def test_history_windows_on_a_terminal(make_server) -> None:
    srv = make_server("redis")
    child = spawn([*target(srv), "--latency-history", "-i", "0.2"])
    try:
        child.expect(LIVE.pattern + rb" -- \d+\.\d\d seconds range\r\n")
        child.expect(rb"\x1b\[0G\x1b\[2Kmin: [\d.]+, max: [\d.]+, avg: [\d.]+ \(1 samples\)")
        child.sendintr()
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
    finally:
        child.close(force=True)


# ---- --latency-dist ----

def spectrum_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "\x1b[" in line
            and not line.startswith("From 0 to 100%")]


def palette_codes(line: str) -> list[int]:
    return [int(code) for code in re.findall(r"48;5;(\d+)m", line)]


@pytest.mark.parametrize("mono", [False, True])
def test_latency_dist_legend_and_spectrum(make_server, mono: bool) -> None:
    srv = make_server("redis")
    argv = [*target(srv), "--latency-dist", "-i", "0.2", *(["--mono"] if mono else [])]

    def two_spectra(lines: list[bytes]) -> bool:
        return len(spectrum_lines(b"".join(lines).decode())) >= 2

    their_rc, their_out, _ = interrupt_after(argv, two_spectra, REDIS_CLI)
    our_rc, our_out, our_err = interrupt_after(argv, two_spectra)
    assert their_rc == -signal.SIGINT
    assert our_rc == 0, our_err
    theirs, ours = their_out.decode(), our_out.decode()
    palette = MONO_PALETTE if mono else COLOUR_PALETTE
    # redis-cli's legend lines all appear, in order, in ours (which adds one line).
    their_legend = theirs.splitlines()[:8]
    our_legend = ours.splitlines()[:9]
    plain_theirs = [ESCAPE.sub("", line) for line in their_legend]
    assert [ESCAPE.sub("", line) for line in our_legend
            if ESCAPE.sub("", line) not in plain_theirs] == [LEGEND[0]]
    assert their_legend[0] == our_legend[0] == "-" * 45
    scale = next(line for line in our_legend if line.startswith("From 0 to 100%: "))
    assert palette_codes(scale) == list(palette)
    their_scale = next(line for line in their_legend if line.startswith("From 0 to 100%: "))
    assert palette_codes(their_scale) == list(palette)
    # Spectrum lines: redis-cli's characters, with ours three finer buckets first.
    chars = "".join(char for _, char in BUCKETS)
    assert ESCAPE.sub("", spectrum_lines(theirs)[0]) == chars[3:]
    for line in spectrum_lines(ours):
        assert ESCAPE.sub("", line) == chars
        assert set(palette_codes(line)) <= set(palette)
    # The interrupted run ends with the whole run's statistics.
    assert SUMMARY.match(ours.splitlines()[-1]), ours.splitlines()[-1]


def test_latency_dist_json_counts(make_server) -> None:
    srv = make_server("redis")

    def two_records(lines: list[bytes]) -> bool:
        return len(lines) >= 2

    rc, out, err = interrupt_after([*target(srv), "--latency-dist", "-i", "0.2", "--json"],
                                   two_records)
    assert rc == 0, err
    records = [json.loads(line) for line in out.decode().splitlines()]
    assert len(records) >= 2
    for record in records:
        assert len(record["buckets"]) == len(BUCKETS)
        assert sum(record["buckets"].values()) == record["count"] >= 1


# ---- --intrinsic-latency ----

def test_intrinsic_latency_output_shape_matches_redis_cli() -> None:
    max_line = re.compile(r"^Max latency so far: \d+ microseconds\.$")
    total = re.compile(r"^\d+ total runs \(avg latency: \d+\.\d{4} microseconds / "
                       r"\d+\.\d\d nanoseconds per run\)\.$")
    worst = re.compile(r"^Worst run took \d+x longer than the average latency\.$")
    for tool in (REDIS_CLI, SHMCLI):
        run = run_tool(tool, ["--intrinsic-latency", "1"])
        assert run.returncode == 0
        lines = run.stdout.decode().splitlines()
        assert all(max_line.match(line) for line in lines[:-3]), lines
        assert lines[-3] == ""
        assert total.match(lines[-2]), lines
        assert worst.match(lines[-1]), lines


def test_intrinsic_latency_ctrl_c_prints_the_summary() -> None:
    proc = subprocess.Popen([*SHMCLI, "--intrinsic-latency", "60"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.decode().splitlines()[-1].startswith("Worst run took ")


# ---- --latency-compare ----

STAT_KEYS = ("min_us", "p50_us", "p99_us", "p99.9_us", "max_us")


def compare_json(argv: Sequence[str]) -> tuple[int, dict, bytes]:
    run = run_tool(SHMCLI, [*argv, "--latency-compare", "-i", "0.5", "--json"])
    return run.returncode, json.loads(run.stdout), run.stderr


def test_compare_measures_all_three_transports(make_server, flavour: str) -> None:
    srv = make_server(flavour)
    rc, body, err = compare_json(target(srv))
    assert rc == 0, err
    assert list(body["transports"]) == ["shm", "unix", "tcp"]
    for name, stats in body["transports"].items():
        assert stats["available"] is True, (name, stats)
        assert stats["samples"] >= 1
        values = [stats[key] for key in STAT_KEYS]
        assert all(v > 0 for v in values) and values == sorted(values), (name, stats)
        assert stats["min_us"] <= stats["avg_us"] <= stats["max_us"]
    assert body["transports"]["tcp"]["where"] == f"127.0.0.1:{srv.port}"
    assert body["transports"]["shm"]["off_path"] == 0
    # Interleaved: every round probes each transport once.
    counts = {stats["samples"] for stats in body["transports"].values()}
    assert max(counts) - min(counts) <= 1
    assert body["server"]["shm.exec-mode"] == "main-thread"


def test_compare_from_a_tcp_address_finds_the_unix_socket(make_server) -> None:
    srv = make_server("redis", "fast-path")
    rc, body, err = compare_json(["-p", str(srv.port)])
    assert rc == 0, err
    assert body["transports"]["unix"]["where"] == srv.unix_socket
    assert all(t["available"] for t in body["transports"].values())
    assert body["server"]["shm.exec-mode"] == "fast-path"


def test_compare_without_the_module_says_shm_is_absent(make_server) -> None:
    srv = make_server("redis", load_module=False)
    rc, body, err = compare_json(target(srv))
    assert rc == 0, err
    shm = body["transports"]["shm"]
    assert shm["available"] is False
    assert "not loaded" in shm["reason"]
    assert shm["samples"] == 0
    assert all(shm[key] is None for key in (*STAT_KEYS, "avg_us"))  # absent, not zero
    assert body["transports"]["unix"]["samples"] >= 1
    assert body["transports"]["tcp"]["samples"] >= 1
    text = run_tool(SHMCLI, [*target(srv), "--latency-compare", "-i", "0.3"])
    assert text.returncode == 0
    out = text.stdout.decode()
    assert re.search(r"^shm\s+absent", out, re.M), out
    assert "shm: session via" in out and "the shm module is not loaded" in out
    assert re.search(r"^unix\s+[\d,]+\s+[\d.]+", out, re.M), out


def test_compare_table_and_chart(make_server) -> None:
    srv = make_server("redis")
    run = run_tool(SHMCLI, [*target(srv), "--latency-compare", "-i", "0.3"])
    assert run.returncode == 0, run.stderr
    out = run.stdout.decode()
    assert "\x1b[" not in out  # piped: no colours
    assert re.search(r"^transport\s+samples\s+min\s+p50\s+p99\s+p99\.9\s+max\s+avg$", out,
                     re.M), out
    for name in ("shm", "unix", "tcp"):
        assert re.search(rf"^{name}\s+[\d,]+(\s+[\d,]+\.\d){{6}}$", out, re.M), out
    assert re.search(r"^p50 shm\s+█*\S*\s+[\d,.]+ µs$", out, re.M), out
    assert re.search(r"^p99 shm\s+█*\S*\s+[\d,.]+ µs$", out, re.M), out


def test_compare_csv(make_server) -> None:
    srv = make_server("redis", load_module=False)
    run = run_tool(SHMCLI, [*target(srv), "--latency-compare", "-i", "0.3", "--csv"])
    assert run.returncode == 0
    rows = [line.split(",") for line in run.stdout.decode().splitlines()]
    assert rows[0][:3] == ["transport", "where", "samples"]
    assert [row[0] for row in rows[1:]] == ["shm", "unix", "tcp"]
    assert rows[1][2:9] == [""] * 7 and rows[1][9].startswith("absent: ")
    assert int(rows[2][2]) >= 1


# ---- a server that is not there, or goes away ----

@pytest.mark.parametrize("mode", ["--latency", "--latency-history", "--latency-dist",
                                  "--latency-compare"])
def test_dead_server_is_a_clear_error(make_server, mode: str) -> None:
    srv = make_server("redis")
    srv.kill()
    ours = run_tool(SHMCLI, [*target(srv), mode])
    assert ours.returncode == 1
    assert ours.stderr.decode().startswith(f"Could not connect to Redis at {srv.unix_socket}: ")
    if mode != "--latency-compare":
        theirs = run_tool(REDIS_CLI, [*target(srv), mode])
        assert (ours.returncode, ours.stderr) == (theirs.returncode, theirs.stderr)


def test_a_restarted_server_is_reconnected(make_server) -> None:
    srv = make_server("redis")
    proc = subprocess.Popen([*SHMCLI, *target(srv), "--latency-history", "-i", "0.3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    try:
        proc.stdout.readline()
        srv.stop()
        time.sleep(1.5)  # at least one failed reconnection
        srv.start()
        lines_after = 0
        while lines_after < 60:  # sampling resumed: more lines keep coming
            assert proc.stdout.readline()
            lines_after += 1
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert b"Reconnecting... 1\n" in err  # on stderr when stdout is not a terminal


def test_a_loading_server_gives_no_samples(make_server) -> None:
    """A server loading its data answers PING -LOADING, only between chunks
    of the load (here one key every 25 ms): those are not round trips the
    server served (redis-cli counts them: the 'max 111 ms' after a restart),
    and a shared-memory session cannot be opened meanwhile.  shmcli samples
    once the server serves, over a session: every sample is a PING the server
    executed (calls, not rejected_calls, in its command stats)."""
    srv = make_server("redis", config={"key-load-delay": "25000",
                                       "loading-process-events-interval-bytes": "1024"})
    with srv.admin() as conn:
        conn.execute_many([("SET", f"k{i}", os.urandom(2048)) for i in range(40)])  # no LZF
        conn.execute("SAVE")
    srv.stop()
    srv.process = subprocess.Popen(srv.argv(), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
    wait_until(lambda: loading(srv), "the server to answer -LOADING")
    run = run_tool(SHMCLI, [*target(srv), "--verbose", "--latency", "--raw", "-i", "6"])
    assert run.returncode == 0, run.stderr
    assert run.stderr.startswith(b"Reconnecting... 1\n")  # the loading connection was let go
    assert run.stderr.endswith(b"# transport: shm\n"), run.stderr
    fields = OURS["raw"].match(run.stdout.decode().strip())
    assert fields, run.stdout
    ping = dict(item.split("=") for item in srv.info("commandstats")["cmdstat_ping"].split(","))
    assert int(ping["rejected_calls"]) > 0  # the run did meet the loading server
    assert 0 < int(fields.group(4)) <= int(ping["calls"])


def ping_stats(srv: Server) -> dict[str, int]:
    line = srv.info("commandstats").get("cmdstat_ping", "calls=0,rejected_calls=0")
    return {k: int(float(v)) for k, v in (item.split("=") for item in line.split(","))
            if k in ("calls", "rejected_calls")}


@pytest.mark.parametrize("transport", ["shm", "socket"])
def test_a_load_mid_run_gives_no_samples(make_server, transport: str) -> None:
    """The server starts loading under a running probe (DEBUG RELOAD, one key
    every 25 ms).  On the socket it answers PING -LOADING between chunks of
    the load: those are not samples either (redis-cli counts them); the run
    lets the connection go and samples again once the server serves.  Over
    a session, the module does not serve during the load: the PING waits
    for its end and is served.  Either way every sample is a PING the server
    executed (calls, not rejected_calls, in its command stats)."""
    srv = make_server("redis", config={"enable-debug-command": "yes", "key-load-delay": "25000",
                                       "loading-process-events-interval-bytes": "1024"})
    with srv.admin() as conn:
        conn.execute_many([("SET", f"k{i}", os.urandom(2048)) for i in range(40)])  # no LZF
    shm = "require" if transport == "shm" else "off"
    proc = subprocess.Popen([*SHMCLI, *target(srv), "--shm", shm, "--verbose", "--latency",
                             "--raw", "-i", "600"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: ping_stats(srv)["calls"] >= 10, "the run to sample")
        reload = RawSocket(srv.unix_socket)
        assert reload.call("DEBUG", "RELOAD") == b"+OK\r\n"  # answers once loaded
        reload.close()
        served = ping_stats(srv)["calls"]
        wait_until(lambda: ping_stats(srv)["calls"] >= served + 10, "the run to sample again")
        proc.send_signal(signal.SIGINT)  # the line of the whole run, then exit 0
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    ping = ping_stats(srv)
    fields = OURS["raw"].match(out.decode().strip())
    assert fields, out
    assert 0 < int(fields.group(4)) <= ping["calls"], (fields.group(0), ping)
    if transport == "socket":
        assert ping["rejected_calls"] > 0  # the run did meet the loading server
        lines = err.decode().splitlines()  # let go, and tried once a second
        assert lines[0] == "# transport: socket" and len(lines) > 1, err
        assert lines[1:] == [f"Reconnecting... {n}" for n in range(1, len(lines))], err
    else:
        assert ping["rejected_calls"] == 0  # no PING answered -LOADING
        assert err == b"# transport: shm\n", err


def loading(srv: Server) -> bool:
    try:
        return RawSocket(srv.unix_socket).call("PING").startswith(b"-LOADING")
    except OSError:
        return False


def test_a_closed_stdout_ends_the_run_quietly(make_server) -> None:
    srv = make_server("redis")
    proc = subprocess.Popen([*SHMCLI, *target(srv), "--latency-history", "-i", "0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()
    assert proc.wait(timeout=30) == -signal.SIGPIPE  # killed by it, as redis-cli (141 in a shell)
    assert proc.stderr.read() == b""
    proc.stderr.close()


def test_functions_are_importable_without_rich_for_latency() -> None:
    code = ("import sys; import shmcli.latency.live; "
            "print('rich' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert run.stdout.strip() == "False", run.stderr
