"""redis-cli's command-line options, read the way redis-cli 7.0 reads them.

redis-cli does not use a generic option parser, and scripts depend on its
quirks, so this is a small table-driven copy of its rules rather than
argparse:

- options are read left to right up to the first argument that does not
  start with "-"; that argument and everything after it is the command;
- an option that takes a value takes the next argument whatever it looks
  like (`-r -1` repeats forever), but when it is the last argument it is an
  unknown option (`Unrecognized option or bad number of args for: '-p'`);
- numbers are read like C's atoi/atof/strtoll: junk reads as 0;
- `-u` URIs fill the connection fields at their position, so a later `-h`
  or `-p` overrides them and an earlier one is overridden;
- `--help` (or a lone trailing `-h`) and `-v`/`--version` act at once.

Our own options (`--shm`, `--module-path`, `--verbose`, `--latency-compare`)
never clash with
redis-cli's.  Parsing does no I/O: the caller prints `warnings`, and the
exceptions carry the text and exit code redis-cli would produce.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence

from .splitargs import unquote
from .uri import UriError, atoi, int_atoi, parse_uri

__all__ = ["OptionError", "Options", "ShowAndExit", "parse_options"]


class OptionError(Exception):
    """A message for stderr and exit status 1, after the warnings printed so far."""

    warnings: list[str] = []


class ShowAndExit(Exception):
    """Print this text on stdout and exit 0 (--help, --version)."""


MAX_TIMEOUT = 1e9  # seconds; beyond, a socket timeout overflows: no bound at all

# Modes redis-cli has that shmcli does not implement (a clear error, exit 1),
# and --cluster's modifiers, which say so too (redis-cli takes them alone).
CLUSTER_FLAGS = ("--cluster-yes", "--cluster-only-masters", "--cluster-only-replicas",
                 "--cluster-from-askpass", "--cluster-simulate", "--cluster-replace",
                 "--cluster-copy", "--cluster-slave", "--cluster-use-empty-masters",
                 "--cluster-search-multiple-owners", "--cluster-fix-with-unreachable-masters")
CLUSTER_VALUED = ("--cluster-replicas", "--cluster-master-id", "--cluster-from",
                  "--cluster-to", "--cluster-from-user", "--cluster-from-pass",
                  "--cluster-slots", "--cluster-timeout", "--cluster-pipeline",
                  "--cluster-threshold", "--cluster-weight")
UNSUPPORTED = ("--lru-test", "--replica", "--slave", "--rdb", "--functions-rdb", "--hotkeys",
               "--ldb", "--ldb-sync-mode", "--cluster", "--tls", *CLUSTER_FLAGS,
               *CLUSTER_VALUED)


class Options:
    host: str = "127.0.0.1"
    port: int = 6379
    socket: str | None = None
    user: str | None = None
    password: str | None = None
    db: int = 0
    timeout: float | None = None
    resp2: bool = False
    resp3: int = 0  # 1: -3 given, 2: implied by --json / --quoted-json (as redis-cli)
    output: str | None = None  # None: decided by whether stdout is a terminal
    show_pushes: bool | None = None  # None: decided by whether stdout is a terminal
    delimiter: bytes = b"\n"
    reply_delimiter: bytes = b"\n"
    repeat: int = 1
    interval: float = 0.0  # seconds
    stdin_last: bool = False  # -x
    stdin_tag: bytes | None = None  # -X <tag>
    exit_on_error: bool = False  # -e
    quoted_input: bool = False
    no_auth_warning: bool = False
    askpass: bool = False
    cluster: bool = False  # -c: follow MOVED and ASK (cluster.py)
    eval_file: str | None = None
    # special modes
    latency: bool = False
    latency_history: bool = False
    latency_dist: bool = False
    mono: bool = False
    intrinsic_latency: int | None = None
    latency_percentiles: bool = False  # redis-cli's coming flag (redis/redis#15352)
    latency_compare: bool = False  # ours: shm vs unix socket vs TCP, interleaved
    pipe: bool = False
    pipe_timeout: int = 30
    bigkeys: bool = False
    memkeys: bool = False
    memkeys_samples: int | None = None
    stat: bool = False
    scan: bool = False
    pattern: bytes | None = None
    count: int | None = None
    unsupported: str | None = None  # the first redis-cli mode we do not implement
    # shmcli's own
    shm: str = "auto"
    module_path: bool = False
    verbose: bool = False

    # A plain class, not a dataclass: dataclasses costs a one-shot command
    # about a quarter of its start-up (inspect, ast, dis, tokenize).
    def __init__(self, **values: object) -> None:
        self.command: list[bytes] = []
        self.warnings: list[str] = []  # for stderr, in order
        for name, value in values.items():
            if not hasattr(self, name):
                raise TypeError(f"Options has no field {name!r}")
            setattr(self, name, value)

    def replace(self, **changes: object) -> Options:
        """A copy with `changes` applied."""
        new = Options(**changes)
        for name, value in self.__dict__.items():
            if name not in changes:
                setattr(new, name, value)
        return new


def atof(text: str) -> float:
    """C's atof: the longest leading number, else 0."""
    text = text.strip()
    for end in range(len(text), 0, -1):
        try:
            return float(text[:end])
        except ValueError:
            continue
    return 0.0


def _apply_uri(opts: Options, text: str) -> None:
    try:
        uri = parse_uri(text)
    except UriError as exc:
        raise OptionError(str(exc)) from None
    opts.host = uri.host if uri.host is not None else opts.host
    opts.port = uri.port if uri.port is not None else opts.port
    opts.user = uri.user if uri.user is not None else opts.user
    opts.password = uri.password if uri.password is not None else opts.password
    opts.db = uri.db if uri.db is not None else opts.db


def _quoted_pattern(opts: Options, text: str) -> None:
    pattern = unquote(os.fsencode(text))
    if pattern is None:
        raise OptionError("Invalid quoted string specified for --quoted-pattern.")
    opts.pattern = pattern


def _show_pushes(opts: Options, text: str) -> None:
    first = text[:1].lower()
    if first in ("y", "n"):
        opts.show_pushes = first == "y"
    else:
        opts.warnings.append(f"Unknown --show-pushes value '{text}' (valid: '[y]es', '[n]o')")


def _json_mode(mode: str) -> Callable[[Options], None]:
    def apply(opts: Options) -> None:
        opts.output = mode
        opts.resp3 = opts.resp3 or 2
    return apply


def _set(name: str, value: object) -> Callable[[Options], None]:
    return lambda opts: setattr(opts, name, value)


def _store(name: str, convert: Callable[[str], object] = str) -> Callable[[Options, str], None]:
    return lambda opts, text: setattr(opts, name, convert(text))


def _shm_mode(opts: Options, text: str) -> None:
    if text not in ("auto", "require", "off"):
        raise OptionError(f"--shm must be auto, require or off, not '{text}'")
    opts.shm = text


def _memkeys_samples(opts: Options, text: str) -> None:
    opts.memkeys, opts.memkeys_samples = True, atoi(text)


def _connect_timeout(text: str) -> float | None:
    """-t as redis-cli 7.4 reads it (strtod over the whole argument): a
    negative, NaN or malformed value is an error; 0, or more than a socket
    timeout can hold, waits as long as connect() does."""
    number = text.lstrip()
    seconds = 0.0
    if text:  # strtod("") reads nothing and stops at the end: 0
        try:
            if number != number.rstrip() or "_" in number:
                raise ValueError
            seconds = float(number)
        except ValueError:
            seconds = math.nan
    if math.isnan(seconds) or seconds < 0:
        raise OptionError("Invalid connection timeout for -t.")
    return seconds if 0 < seconds <= MAX_TIMEOUT else None


def _interval(text: str) -> float:
    """-i in seconds, as redis-cli's sleeps come out: atof * 10^6 into a
    long (NaN, infinities and overflows become LONG_MIN), then usleep()'s
    32-bit unsigned microseconds (so -1 sleeps 4293.97 s and NaN not at all)."""
    micros = atof(text) * 1_000_000
    whole = int(micros) if math.isfinite(micros) and abs(micros) < 2.0**63 else -(1 << 63)
    return (whole % (1 << 32)) / 1_000_000


# Options without a value: flag -> action.
FLAGS: dict[str, Callable[[Options], None]] = {
    "-x": _set("stdin_last", True),
    "-e": _set("exit_on_error", True),
    "-2": _set("resp2", True),
    "-3": _set("resp3", 1),
    "--no-auth-warning": _set("no_auth_warning", True),
    "--askpass": _set("askpass", True),
    "-c": _set("cluster", True),
    "--raw": _set("output", "raw"),
    "--no-raw": _set("output", "tty"),
    "--csv": _set("output", "csv"),
    "--json": _json_mode("json"),
    "--quoted-json": _json_mode("quoted-json"),
    "--quoted-input": _set("quoted_input", True),
    "--latency": _set("latency", True),
    "--latency-history": lambda o: (_set("latency", True)(o), _set("latency_history", True)(o)),
    "--latency-dist": _set("latency_dist", True),
    "--mono": _set("mono", True),
    "--latency-percentiles": _set("latency_percentiles", True),
    "--latency-compare": _set("latency_compare", True),
    "--pipe": _set("pipe", True),
    "--bigkeys": _set("bigkeys", True),
    "--memkeys": lambda o: (_set("memkeys", True)(o), _set("memkeys_samples", None)(o)),
    "--stat": _set("stat", True),
    "--scan": _set("scan", True),
    "--module-path": _set("module_path", True),
    "--verbose": _set("verbose", True),
}

# Options that take the next argument: flag -> action(opts, value).
VALUED: dict[str, Callable[[Options, str], None]] = {
    "-h": _store("host"),
    "-p": _store("port", int_atoi),
    "-s": _store("socket"),
    "-a": _store("password"),
    "--pass": _store("password"),
    "--user": _store("user"),
    "-u": _apply_uri,
    "-n": _store("db", int_atoi),
    "-t": _store("timeout", _connect_timeout),
    "-r": _store("repeat", atoi),
    "-i": _store("interval", _interval),
    "-X": _store("stdin_tag", os.fsencode),
    "-d": _store("delimiter", os.fsencode),
    "-D": _store("reply_delimiter", os.fsencode),
    "--show-pushes": _show_pushes,
    "--eval": _store("eval_file"),
    "--pattern": _store("pattern", os.fsencode),
    "--quoted-pattern": _quoted_pattern,
    "--count": _store("count", atoi),
    "--intrinsic-latency": _store("intrinsic_latency", atoi),
    "--pipe-timeout": _store("pipe_timeout", int_atoi),
    "--memkeys-samples": _memkeys_samples,
    "--shm": _shm_mode,
}
UNSUPPORTED_VALUED = ("--lru-test", "--rdb", "--functions-rdb", "--cluster", *CLUSTER_VALUED)


def parse_options(argv: Sequence[str], usage: Callable[[], str],
                  version: Callable[[], str]) -> Options:
    """Read argv (without the program name).  `usage` and `version` give the
    texts for --help and --version."""
    opts = Options()
    try:
        _read(argv, opts, usage, version)
    except OptionError as exc:
        exc.warnings = opts.warnings
        raise
    return opts


def _read(argv: Sequence[str], opts: Options, usage: Callable[[], str],
          version: Callable[[], str]) -> None:
    i = 0
    while i < len(argv):
        arg = argv[i]
        last = i == len(argv) - 1
        if arg == "--help" or (arg == "-h" and last):
            raise ShowAndExit(usage())
        if arg in ("-v", "--version"):
            raise ShowAndExit(version())
        if arg in FLAGS:
            FLAGS[arg](opts)
        elif arg in VALUED and not last:
            i += 1
            VALUED[arg](opts, argv[i])
        elif arg in UNSUPPORTED and arg not in UNSUPPORTED_VALUED:
            opts.unsupported = opts.unsupported or arg
        elif arg in UNSUPPORTED_VALUED and not last:
            opts.unsupported = opts.unsupported or arg
            i += 1
        elif arg.startswith("-"):
            raise OptionError(f"Unrecognized option or bad number of args for: '{arg}'")
        else:
            break
        i += 1
    opts.command = [os.fsencode(word) for word in argv[i:]]
    _check_combinations(opts)


def _check_combinations(opts: Options) -> None:
    """redis-cli's checks after the options, in its order (the password
    warning comes between them)."""
    if opts.cluster and opts.socket is not None:
        raise OptionError("Options -c and -s are mutually exclusive.")
    if opts.resp2 and opts.resp3 == 1:
        raise OptionError("Options -2 and -3 are mutually exclusive.")
    if not opts.no_auth_warning and opts.password is not None:
        opts.warnings.append("Warning: Using a password with '-a' or '-u' option on the "
                             "command line interface may not be safe.")
    if opts.stdin_last and opts.stdin_tag is not None:
        raise OptionError("Options -x and -X are mutually exclusive.")
