"""The `shmcli` command line.

This first version covers the connection flags (with -u URIs), one-shot commands (with -r,
-i and -x) and the output modes (--raw, --no-raw, --csv, --json, --quoted-json, -d, -D; the
human format on a terminal or with FAKETTY, raw otherwise; see output.py);
the rest of redis-cli's flags is issue #3.  Our own additions:
--shm, --module-path and --verbose.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import NoReturn

from . import module_path
from .connection import Connection, ShmUnavailable
from .output import forces_raw, format_reply
from .resp import Error
from .uri import RedisUri, UriError, atoi, parse_uri


class RedisCliParser(argparse.ArgumentParser):
    """argparse, with redis-cli's message and exit code for a bad option."""

    def error(self, message: str) -> NoReturn:
        words = message.replace(":", " ").replace("/", " ").split()
        flag = next((w for w in words if w.startswith("-")), words[-1] if words else "")
        print(f"Unrecognized option or bad number of args for: '{flag}'", file=sys.stderr)
        raise SystemExit(1)


def build_parser() -> argparse.ArgumentParser:
    p = RedisCliParser(prog="shmcli", add_help=False,
                       description="redis-cli over shared memory")
    p.add_argument("-h", dest="host")
    p.add_argument("-p", dest="port", type=atoi)
    p.add_argument("-u", dest="uri")
    p.add_argument("-s", dest="socket")
    p.add_argument("-a", dest="password")
    p.add_argument("--user", dest="user")
    p.add_argument("--pass", dest="password")
    p.add_argument("-n", dest="db", type=atoi)
    p.add_argument("-2", dest="protocol", action="store_const", const=2)
    p.add_argument("-3", dest="protocol", action="store_const", const=3)
    # Output modes: the last one given wins, as in redis-cli.
    for flag, mode in (("--raw", "raw"), ("--no-raw", "tty"), ("--csv", "csv"),
                       ("--json", "json"), ("--quoted-json", "quoted-json")):
        p.add_argument(flag, dest="output", action="store_const", const=mode)
    p.add_argument("-d", dest="delimiter", default="\n")
    p.add_argument("-D", dest="reply_delimiter", default="\n")
    p.add_argument("-t", dest="timeout", type=float)
    p.add_argument("-r", dest="repeat", type=atoi, default=1)
    p.add_argument("-i", dest="interval", type=float, default=0.0)
    p.add_argument("-x", dest="stdin_arg", action="store_true")
    p.add_argument("--no-auth-warning", action="store_true")
    p.add_argument("--shm", choices=("auto", "require", "off"), default="auto")
    p.add_argument("--module-path", action="store_true")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--help", action="help")
    p.add_argument("command", nargs=argparse.REMAINDER)
    return p


AUTH_WARNING = ("Warning: Using a password with '-a' or '-u' option on the command line "
                "interface may not be safe.")


def report_setup_error(step: str, err: Error) -> None:
    """As redis-cli 7.0: a failed AUTH or HELLO is reported and the command
    still runs; a failed SELECT is silent."""
    if step == "AUTH":
        print(f"AUTH failed: {err.message}", file=sys.stderr)
    elif step == "HELLO":
        print(f"HELLO 3 failed: {err.message}", file=sys.stderr)


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
    try:
        uri = parse_uri(args.uri) if args.uri else RedisUri()
    except UriError as exc:
        print(exc, file=sys.stderr)
        return 1
    given = argv if argv is not None else sys.argv[1:]
    if not args.no_auth_warning and (("-a" in given and args.password) or uri.password):
        print(AUTH_WARNING, file=sys.stderr)
    host = args.host or uri.host or "127.0.0.1"
    port = args.port if args.port is not None else uri.port or 6379
    db = args.db if args.db is not None else uri.db or 0
    user = args.user if args.user is not None else uri.user
    password = args.password or uri.password or os.environ.get("REDISCLI_AUTH")
    output = args.output or ("tty" if stdout_is_terminal() else "raw")
    protocol = args.protocol or (3 if output in ("json", "quoted-json") else 2)
    try:
        conn = Connection(host=host, port=port, unix_socket=args.socket, db=db,
                          username=user, password=password, protocol=protocol,
                          shm=args.shm, timeout=args.timeout,
                          on_setup_error=report_setup_error)
    except ShmUnavailable as exc:
        print(f"shmcli: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = args.socket or f"{host}:{port}"
        reason = exc.strerror or str(exc)
        print(f"Could not connect to Redis at {where}: {reason}", file=sys.stderr)
        return 1
    with conn:
        if not args.command:
            print("shmcli: the interactive shell is not available yet", file=sys.stderr)
            return 1
        if args.verbose:
            print(f"# transport: {conn.transport}", file=sys.stderr)
        command: list[str | bytes] = list(args.command)
        if args.stdin_arg:
            command.append(sys.stdin.buffer.read())
        raw = forces_raw(args.command)
        delimiter = args.delimiter.encode()
        reply_delimiter = args.reply_delimiter.encode()
        done = 0
        while args.repeat < 0 or done < args.repeat:  # -r with a negative count: forever
            if done and args.interval:
                time.sleep(args.interval)
            try:
                reply = conn.execute(*command)
            except ConnectionError as exc:
                print(f"Error: {exc}", file=sys.stderr)
                return 1
            if raw:
                out = format_reply(reply, "raw", reply_delimiter=b"")
            else:
                out = format_reply(reply, output, delimiter=delimiter,
                                   reply_delimiter=reply_delimiter)
            sys.stdout.buffer.write(out)
            sys.stdout.flush()
            done += 1
        return 0  # redis-cli 7.0 exits 0 after an error reply too
