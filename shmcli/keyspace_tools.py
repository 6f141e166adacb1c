"""`--scan`, `--bigkeys` and `--memkeys`: walks over the keyspace with SCAN.

Output, exit codes and Ctrl-C behaviour are redis-cli 7.0.15's:
- --scan prints each key on its own line, quoted as sdscatrepr in the human
  format and as is (up to a NUL byte, as printf("%s")) otherwise; -i sleeps
  after each SCAN call; --count (redis-cli 7.2) adds COUNT;
- --bigkeys / --memkeys pipeline TYPE and then the size command (STRLEN,
  LLEN... or MEMORY USAGE) for each SCAN batch, print the biggest key of each
  type as it is found with the progress in percent of DBSIZE, then a summary;
  -i sleeps after every 100 SCAN calls;
- Ctrl-C stops after the current batch: --scan ends, the key tools print
  their summary with the percentage reached, and the status is 0;
- errors from SCAN, TYPE or DBSIZE print redis-cli's message and exit 1.

The summary lists the types in the order redis-cli's own table yields them
(see SUMMARY_ORDER), then module types as found.
"""

from __future__ import annotations

import math
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

from .connection import Connection
from .output import repr_bytes
from .resp import Array, Bulk, Error, Integer, Reply, Status

BANNER = ("\n# Scanning the entire keyspace to find biggest keys as well as\n"
          "# average sizes per key type.  You can use -i 0.1 to sleep 0.1 sec\n"
          "# per 100 SCAN commands (not usually needed).\n\n")


class ToolExit(Exception):
    """A fatal error: the message is already printed; exit with `code`."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class TypeStats:
    name: str
    size_command: str | None
    unit: str
    biggest: int = 0
    count: int = 0
    total: int = 0
    biggest_key: bytes | None = None


def builtin_types() -> dict[str, TypeStats]:
    table = [("string", "STRLEN", "bytes"), ("list", "LLEN", "items"),
             ("set", "SCARD", "members"), ("hash", "HLEN", "fields"),
             ("zset", "ZCARD", "members"), ("stream", "XLEN", "entries")]
    return {name: TypeStats(name, command, unit) for name, command, unit in table}


# redis-cli keeps these in a hash table that is still being resized after its
# six inserts; each type lookup moves the resize on by one step, and the
# summary lists the table in its current layout.  Observed on 7.0.15: the
# order after 0, 1, and 2 or more lookups (module types come after, as found).
SUMMARY_ORDER = (("hash", "list", "string", "stream", "set", "zset"),
                 ("string", "list", "hash", "stream", "set", "zset"),
                 ("list", "hash", "string", "stream", "set", "zset"))


def summary_order(table: dict[str, TypeStats], lookups: int) -> list[TypeStats]:
    first = SUMMARY_ORDER[min(lookups, 2)]
    return [table[name] for name in first] + [t for n, t in table.items() if n not in first]


class Interrupt:
    """Ctrl-C sets a flag the loops check between batches (redis-cli's
    force_cancel_loop), instead of raising KeyboardInterrupt mid-batch."""

    def __init__(self) -> None:
        self.requested = False

    def __enter__(self) -> Interrupt:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: object) -> None:
        self.requested = True


def _fail(message: str) -> ToolExit:
    print(message, file=sys.stderr)
    return ToolExit(1)


def scan_batches(conn: Connection, pattern: bytes | None, count: int | None,
                 stop: Interrupt) -> Iterator[list[bytes]]:
    """SCAN until the cursor comes back to 0 or Ctrl-C; one list per call."""
    cursor = b"0"
    while True:
        argv: list[bytes | str] = ["SCAN", cursor]
        if pattern is not None:
            argv += ["MATCH", pattern]
        if count is not None:
            argv += ["COUNT", str(count)]
        reply = conn.execute(*argv)
        if isinstance(reply, Error):
            raise _fail(f"SCAN error: {reply.message}")
        if not isinstance(reply, Array):
            raise _fail("Non ARRAY response from SCAN!")
        if len(reply.items) != 2:
            raise _fail("Invalid element count from SCAN!")
        next_cursor, keys = reply.items
        assert isinstance(next_cursor, Bulk) and isinstance(keys, Array)
        yield [key.data for key in keys.items if isinstance(key, Bulk)]
        cursor = next_cursor.data
        if stop.requested or int(cursor or b"0") == 0:
            return


def run_scan(conn: Connection, pattern: bytes | None, count: int | None, interval: float,
             output: str) -> int:
    out = sys.stdout.buffer
    progress = Progress(conn) if sys.stderr.isatty() and not sys.stdout.isatty() else None
    try:
        with Interrupt() as stop:
            for keys in scan_batches(conn, pattern, count, stop):
                for key in keys:
                    text = repr_bytes(key) if output == "tty" else key.split(b"\0", 1)[0]
                    out.write(text + b"\n")
                out.flush()
                if progress is not None:
                    progress.advance(len(keys))
                if interval:
                    time.sleep(interval)
    except ToolExit as exc:
        return exc.code
    finally:
        if progress is not None:
            progress.done()
    return 0


class Progress:
    """Keys listed so far, on stderr when it is a terminal and stdout is not
    (stdout stays byte-identical to redis-cli's)."""

    def __init__(self, conn: Connection) -> None:
        reply = conn.execute("DBSIZE")
        self.total = reply.value if isinstance(reply, Integer) else 0
        self.seen = 0

    def advance(self, keys: int) -> None:
        self.seen += keys
        sys.stderr.write(f"\r\x1b[2Kscanned {self.seen} keys of {self.total}")
        sys.stderr.flush()

    @staticmethod
    def done() -> None:
        sys.stderr.write("\r\x1b[2K")
        sys.stderr.flush()


def _dbsize(conn: Connection) -> int:
    reply = conn.execute("DBSIZE")
    if isinstance(reply, Error):
        raise _fail(f"Couldn't determine DBSIZE: {reply.message}")
    if not isinstance(reply, Integer):
        raise _fail("Non INTEGER response from DBSIZE!")
    return reply.value


def _types(conn: Connection, keys: list[bytes], table: dict[str, TypeStats]
           ) -> list[TypeStats | None]:
    found: list[TypeStats | None] = []
    for key, reply in zip(keys, conn.execute_many([("TYPE", key) for key in keys]),
                          strict=True):
        if not isinstance(reply, Status):
            if isinstance(reply, Error):
                raise _fail(f"TYPE returned an error: {reply.message}")
            raise _fail(f"Invalid reply type for TYPE on key '{key.decode(errors='replace')}'!")
        name = reply.text.decode(errors="replace")
        if name == "none":  # deleted since the SCAN
            found.append(None)
            continue
        found.append(table.setdefault(name, TypeStats(name, None, "?")))
    return found


def _sizes(conn: Connection, keys: list[bytes], types: list[TypeStats | None],
           memkeys: bool, samples: int | None) -> list[int]:
    def measured(t: TypeStats | None) -> bool:
        return t is not None and (memkeys or t.size_command is not None)

    commands: list[tuple[bytes | str, ...]] = []
    for key, kind in zip(keys, types, strict=True):
        if not measured(kind):
            continue
        assert kind is not None
        if not memkeys:
            assert kind.size_command is not None
            commands.append((kind.size_command, key))
        elif samples:
            commands.append(("MEMORY", "USAGE", key, "SAMPLES", str(samples)))
        else:
            commands.append(("MEMORY", "USAGE", key))
    replies = iter(conn.execute_many(commands) if commands else [])
    sizes = []
    for key, kind in zip(keys, types, strict=True):
        if not measured(kind):
            sizes.append(0)
            continue
        reply: Reply = next(replies)
        if isinstance(reply, Integer):
            sizes.append(reply.value)
        else:
            assert kind is not None
            what = "MEMORY USAGE" if memkeys else kind.size_command
            print(f"Warning:  {what} on '{key.decode(errors='replace')}' failed "
                  "(may have changed type)", file=sys.stderr)
            sizes.append(0)
    return sizes


def _percent(value: float) -> str:
    """printf's %05.2f, which pads a NaN (0 of 0 keys) with spaces."""
    return "  nan" if math.isnan(value) else f"{value:05.2f}"


def run_bigkeys(conn: Connection, pattern: bytes | None, interval: float, memkeys: bool,
                samples: int | None) -> int:
    try:
        return _bigkeys(conn, pattern, interval, memkeys, samples)
    except ToolExit as exc:
        return exc.code


def _bigkeys(conn: Connection, pattern: bytes | None, interval: float, memkeys: bool,
             samples: int | None) -> int:
    out = sys.stdout
    table = builtin_types()
    total_keys = _dbsize(conn)
    out.write(BANNER)
    sampled = key_bytes = loops = lookups = 0
    pct = 0.0
    with Interrupt() as stop:
        batches = scan_batches(conn, pattern, None, stop)
        while True:
            pct = 100 * sampled / total_keys if total_keys else float("nan")
            keys = next(batches, None)
            if keys is None:
                break
            loops += 1
            types = _types(conn, keys, table)
            lookups += len(keys)
            sizes = _sizes(conn, keys, types, memkeys, samples)
            for key, kind, size in zip(keys, types, sizes, strict=True):
                if kind is None:
                    continue
                kind.total += size
                kind.count += 1
                key_bytes += len(key)
                sampled += 1
                if kind.biggest < size:
                    kind.biggest_key = repr_bytes(key)
                    unit = "bytes" if memkeys else kind.unit
                    out.write(f"[{_percent(pct)}%] Biggest {kind.name:<6} found so far "
                              f"'{_text(kind.biggest_key)}' with {size} {unit}\n")
                    kind.biggest = size
                if sampled % 1_000_000 == 0:
                    out.write(f"[{_percent(pct)}%] Sampled {sampled} keys so far\n")
            out.flush()
            if interval and loops % 100 == 0:
                time.sleep(interval)
        interrupted = stop.requested
    out.write("\n-------- summary -------\n\n")
    if interrupted:
        out.write(f"[{_percent(pct)}%] ")
    out.write(f"Sampled {sampled} keys in the keyspace!\n")
    average = key_bytes / sampled if key_bytes else 0
    out.write(f"Total key length in bytes is {key_bytes} (avg len {average:.2f})\n\n")
    listed = summary_order(table, lookups)
    for kind in listed:
        if kind.biggest_key is not None:
            out.write(f"Biggest {kind.name:>6} found '{_text(kind.biggest_key)}' has "
                      f"{kind.biggest} {'bytes' if memkeys else kind.unit}\n")
    out.write("\n")
    for kind in listed:
        share = 100 * kind.count / sampled if sampled else 0
        average = kind.total / kind.count if kind.count else 0
        out.write(f"{kind.count} {kind.name}s with {kind.total} "
                  f"{'bytes' if memkeys else kind.unit} ({_percent(share)}% of keys, "
                  f"avg size {average:.2f})\n")
    out.flush()
    return 0


def _text(quoted: bytes) -> str:
    return quoted.decode("ascii")  # sdscatrepr output is ASCII
