"""The `shmcli` command line: redis-cli's options, modes and exit codes.

The options are read by options.py; this file picks the mode in redis-cli's
order (latency, pipe, bigkeys, memkeys, stat, scan, then the stdin or
interactive loop when there is no command, --eval, and the one-shot
command) and gives each the connection the way redis-cli's cliConnect()
would: quiet for a one-shot command, fatal on a failed AUTH or SELECT for
the special modes and --eval.  Our own options: --shm, --module-path and
--verbose (which also reports the transport that carried a command).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

from . import module_path
from .cli_connect import Connector, FatalSetupError
from .closed_stdout import ended_by_closed_stdout, keep_writing
from .cluster import Redirect, RedirectFailed
from .command_mode import CommandRunner, ErrorReplyExit, ReplyPrinter
from .connection import Connection
from .options import OptionError, Options, ShowAndExit, parse_options
from .splitargs import unquote
from .usage import usage_text, version_text


def stdout_is_terminal() -> bool:
    """redis-cli's test: a terminal, or FAKETTY set (its test hook)."""
    return sys.stdout.isatty() or "FAKETTY" in os.environ


def main(argv: Sequence[str] | None = None) -> int:
    try:
        opts = parse_options(sys.argv[1:] if argv is None else list(argv), usage_text,
                             version_text)
    except ShowAndExit as shown:
        sys.stdout.write(str(shown))
        return 0
    except OptionError as exc:
        for warning in exc.warnings:
            print(warning, file=sys.stderr)
        print(exc, file=sys.stderr)
        return 1
    try:
        for warning in opts.warnings:
            print(warning, file=sys.stderr)
        code = run(opts)
        sys.stdout.flush()  # here, not at exit, where a closed pipe is a Python warning
        return code
    except FatalSetupError as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130  # redis-cli dies of SIGINT in these modes; no traceback here
    except BrokenPipeError as exc:  # stdout's reader went away: redis-cli dies of SIGPIPE
        if ended_by_closed_stdout(exc):
            return 0  # the shell's rule (keep_writing): nothing more to say
        print(f"Error: {exc}", file=sys.stderr)
        return 1


def run(opts: Options) -> int:
    if opts.module_path:
        return print_module_path()
    if opts.unsupported:
        print(f"shmcli: {opts.unsupported} is not supported (see docs/compatibility.md)",
              file=sys.stderr)
        return 1
    if opts.password is None:
        opts.password = os.environ.get("REDISCLI_AUTH")
    if opts.askpass:
        opts.password = ask_password()
    terminal = stdout_is_terminal()
    printer = ReplyPrinter(opts.output or ("tty" if terminal else "raw"), opts.delimiter,
                           opts.reply_delimiter,
                           terminal if opts.show_pushes is None else opts.show_pushes)
    if opts.pipe and opts.shm == "auto":
        # Mass insertion is bound by the server's CPU, and a command costs the
        # server more through the module (RedisModule_Call) than read from a
        # socket: measured 0.6-0.7x (bench/pipe_bench.py).  So --pipe takes
        # the socket unless shared memory is asked for with --shm require.
        opts.shm = "off"
    connector = Connector(opts)
    if opts.latency_compare:  # ours: opens its own connections, one per transport
        from .latency import run_latency_compare
        return run_latency_compare(opts, printer.mode)
    special = special_mode(opts, printer, connector)
    if special is not None:
        conn = connect_or_exit(connector)
        if conn is None:
            return 1
        with conn:
            try:
                return special(conn)
            except ConnectionError as exc:
                if ended_by_closed_stdout(exc):
                    return 0
                print(f"Error: {exc}", file=sys.stderr)
                return 1
    if opts.intrinsic_latency is not None:  # needs no server
        from .latency import run_intrinsic_latency
        return run_intrinsic_latency(opts.intrinsic_latency)
    if not opts.command and opts.eval_file is None:
        from .repl.shell import run_shell
        keep_writing()  # redis-cli's shell ignores SIGPIPE: output to a closed pipe is lost
        return run_shell(connector, printer, opts.interval)
    if opts.eval_file is not None:
        return eval_mode(opts, connector, printer)
    return one_shot(opts, connector, printer)


def print_module_path() -> int:
    path = module_path()
    if not os.path.exists(path):
        print(f"shmcli: the module was not built: {path} is missing", file=sys.stderr)
        return 1
    print(path)
    return 0


def ask_password() -> str:
    """--askpass: a masked prompt on a terminal, else one line of stdin (as
    linenoise does without a terminal)."""
    if sys.stdin.isatty():
        from prompt_toolkit import prompt
        return prompt("Please input password: ", is_password=True)
    line = bytearray()
    while (byte := os.read(0, 1)) not in (b"", b"\n"):  # no read-ahead: stdin goes on
        line += byte
    return os.fsdecode(bytes(line))


def special_mode(opts: Options, printer: ReplyPrinter, connector: Connector
                 ) -> Callable[[Connection], int] | None:
    """The first special mode asked for, in redis-cli's order."""
    if opts.latency:
        from .latency import run_latency
        return lambda conn: run_latency(conn, opts, printer.mode)
    if opts.latency_dist:
        from .latency import run_latency_dist
        return lambda conn: run_latency_dist(conn, opts, printer.mode)
    if opts.pipe:
        from .pipe_mode import run_pipe
        return lambda conn: run_pipe(conn, sys.stdin.buffer, opts.pipe_timeout)
    if opts.bigkeys or opts.memkeys:
        from .keyspace_tools import run_bigkeys
        memkeys = not opts.bigkeys
        return lambda conn: run_bigkeys(conn, opts.pattern, opts.interval, memkeys,
                                        opts.memkeys_samples)
    if opts.stat:
        from .stat_mode import run_stat
        return lambda conn: run_stat(conn, connector, opts.interval, printer.mode == "tty")
    if opts.scan:
        from .keyspace_tools import run_scan
        return lambda conn: run_scan(conn, opts.pattern, opts.count, opts.interval,
                                     printer.mode)
    return None


def connect_or_exit(connector: Connector) -> Connection | None:
    """cliConnect(0): an unreachable server or a failed AUTH/SELECT ends the run."""
    conn = connector.connect()
    if conn is not None and connector.setup_failed(conn):
        conn.close()
        return None
    return conn


def eval_mode(opts: Options, connector: Connector, printer: ReplyPrinter) -> int:
    conn = connect_or_exit(connector)
    if conn is None:
        return 1
    with conn:
        assert opts.eval_file is not None
        try:
            with open(opts.eval_file, "rb") as script_file:
                script = script_file.read()
        except IsADirectoryError:
            script = b""  # redis-cli's fopen() takes it, and fread() reads nothing
        except OSError as exc:
            print(f"Can't open file '{opts.eval_file}': {exc.strerror}", file=sys.stderr)
            return 1
        keys: list[bytes] = []
        args: list[bytes] = []
        target = keys
        for word in opts.command:
            if target is keys and word == b",":  # only a lone comma separates
                target = args
            else:
                target.append(word)
        return execute(conn, opts, printer, [b"EVAL", script, b"%d" % len(keys), *keys, *args],
                       connector)


def one_shot(opts: Options, connector: Connector, printer: ReplyPrinter) -> int:
    conn = connector.connect(quiet=True)
    argv = opts.command
    if opts.quoted_input:
        unquoted = [unquote(word) for word in argv]
        if any(word is None for word in unquoted):
            print("Invalid quoted string")
            return 1
        argv = [word for word in unquoted if word is not None]
    if opts.stdin_last:
        argv = [*argv, sys.stdin.buffer.read()]
    elif opts.stdin_tag is not None:
        if opts.stdin_tag not in argv:
            print("Using -X option but stdin tag not match.", file=sys.stderr)
            return 1
        argv = list(argv)
        argv[argv.index(opts.stdin_tag)] = sys.stdin.buffer.read()
    if conn is None:
        conn = connector.connect()  # redis-cli retries once, and says why it failed
        if conn is None:
            return 1
    with conn:
        return execute(conn, opts, printer, argv, connector)


def execute(conn: Connection, opts: Options, printer: ReplyPrinter, argv: list[bytes],
            connector: Connector) -> int:
    runner = CommandRunner(conn, printer, opts.interval, opts.exit_on_error,
                           follow=redirect_follower(connector))
    try:
        runner.run(argv, opts.repeat)
    except ErrorReplyExit as exc:
        print(exc, file=sys.stderr)
        return 1
    except RedirectFailed:  # -c: the node could not be used (reported)
        return 1
    except ConnectionError as exc:
        if ended_by_closed_stdout(exc):
            return 0
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    finally:
        if opts.verbose:
            print(f"# transport: {runner.conn.last_transport}", file=sys.stderr)
        if runner.conn is not conn:  # a redirection's: the caller closes its own
            runner.conn.close()
    return 0


def redirect_follower(connector: Connector) -> Callable[[Redirect], Connection | None] | None:
    """-c outside the REPL: connect to the node a redirection names, which
    becomes the address, as in redis-cli's cliConnect(CC_FORCE): an
    unreachable node is reported ("Could not connect to Redis at ..."), a
    failed AUTH or SELECT too, then "Error: " (cliPrintContextError with no
    I/O error), and the command is not issued."""
    if not connector.opts.cluster:
        return None

    def follow(redirect: Redirect) -> Connection | None:
        connector.opts.host, connector.opts.port = redirect.host, redirect.port
        conn = connector.connect()
        if conn is not None and connector.setup_failed(conn):
            print("Error: ", file=sys.stderr)
            conn.close()
            return None
        return conn
    return follow
