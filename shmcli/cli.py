"""The `shmcli` command line.

This first version covers the connection flags and one-shot commands, printed
as redis-cli prints them (the human format on a terminal, raw otherwise, see
output.py); the full redis-cli flag set is issue #3.  Our own additions:
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
    p.add_argument("-2", dest="protocol", action="store_const", const=2, default=2)
    p.add_argument("-3", dest="protocol", action="store_const", const=3)
    p.add_argument("-t", dest="timeout", type=float)
    p.add_argument("--shm", choices=("auto", "require", "off"), default="auto")
    p.add_argument("--module-path", action="store_true")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--help", action="help")
    p.add_argument("command", nargs=argparse.REMAINDER)
    return p


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
    try:
        conn = Connection(host=args.host, port=args.port, unix_socket=args.socket, db=args.db,
                          username=args.user, password=password, protocol=args.protocol,
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
            out = format_reply(reply, "tty" if sys.stdout.isatty() else "raw")
        sys.stdout.buffer.write(out)
        sys.stdout.flush()
        return 0  # redis-cli 7.0 exits 0 after an error reply too
