"""The `shmcli` command line.

This first version covers the connection flags, one-shot commands and the
output modes (--raw, --no-raw, --csv, --json, --quoted-json, -d, -D; the
human format on a terminal or with FAKETTY, raw otherwise; see output.py);
the rest of redis-cli's flags is issue #3.  Our own additions:
--shm, --module-path and --verbose.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from . import module_path
from .connection import Connection, ShmUnavailable
from .output import forces_raw, format_reply


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="shmcli", add_help=False,
                                description="redis-cli over shared memory")
    p.add_argument("-h", dest="host", default="127.0.0.1")
    p.add_argument("-p", dest="port", type=int, default=6379)
    p.add_argument("-s", dest="socket")
    p.add_argument("-a", dest="password")
    p.add_argument("--user", dest="user")
    p.add_argument("--pass", dest="password")
    p.add_argument("-n", dest="db", type=int, default=0)
    p.add_argument("-2", dest="protocol", action="store_const", const=2)
    p.add_argument("-3", dest="protocol", action="store_const", const=3)
    # Output modes: the last one given wins, as in redis-cli.
    for flag, mode in (("--raw", "raw"), ("--no-raw", "tty"), ("--csv", "csv"),
                       ("--json", "json"), ("--quoted-json", "quoted-json")):
        p.add_argument(flag, dest="output", action="store_const", const=mode)
    p.add_argument("-d", dest="delimiter", default="\n")
    p.add_argument("-D", dest="reply_delimiter", default="\n")
    p.add_argument("-t", dest="timeout", type=float)
    p.add_argument("--shm", choices=("auto", "require", "off"), default="auto")
    p.add_argument("--module-path", action="store_true")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--help", action="help")
    p.add_argument("command", nargs=argparse.REMAINDER)
    return p


def stdout_is_terminal() -> bool:
    """redis-cli's test: a terminal, or FAKETTY set (its test hook)."""
    return sys.stdout.isatty() or "FAKETTY" in os.environ


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.module_path:
        path = module_path()
        if not os.path.exists(path):
            print(f"shmcli: the module was not built: {path} is missing", file=sys.stderr)
            return 1
        print(path)
        return 0
    password = args.password or os.environ.get("REDISCLI_AUTH")
    output = args.output or ("tty" if stdout_is_terminal() else "raw")
    protocol = args.protocol or (3 if output in ("json", "quoted-json") else 2)
    try:
        conn = Connection(host=args.host, port=args.port, unix_socket=args.socket, db=args.db,
                          username=args.user, password=password, protocol=protocol,
                          shm=args.shm, timeout=args.timeout)
    except ShmUnavailable as exc:
        print(f"shmcli: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = args.socket or f"{args.host}:{args.port}"
        reason = exc.strerror or str(exc)
        print(f"Could not connect to Redis at {where}: {reason}", file=sys.stderr)
        return 1
    with conn:
        if not args.command:
            print("shmcli: the interactive shell is not available yet", file=sys.stderr)
            return 1
        if args.verbose:
            print(f"# transport: {conn.transport}", file=sys.stderr)
        try:
            reply = conn.execute(*args.command)
        except ConnectionError as exc:
            print(f"Error: {exc}", file=sys.stderr)
            return 1
        if forces_raw(args.command):
            out = format_reply(reply, "raw", reply_delimiter=b"")
        else:
            out = format_reply(reply, output, delimiter=args.delimiter.encode(),
                               reply_delimiter=args.reply_delimiter.encode())
        sys.stdout.buffer.write(out)
        sys.stdout.flush()
        return 0  # redis-cli 7.0 exits 0 after an error reply too
