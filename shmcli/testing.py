"""Throwaway redis-server / valkey-server processes with the shm module loaded.

Used by the tests and the benchmarks.  Each server gets its own temporary
directory, a free loopback port, a unix socket and its own shm socket, and is
stopped by its process id, never by name.

Sanitizer runs (tests/security/test_sanitizers.py) swap the module through the
environment, for the server process only:

- SHMCLI_TEST_MODULE: the module to load instead of shmcli's own build;
- SHMCLI_TEST_PRELOAD: LD_PRELOAD for the server (libasan first; see
  tests/security/sanitized_build.py).  With it, the server gets ASAN_OPTIONS
  and UBSAN_OPTIONS that stop at the first error, with the report in its
  directory (ASan: `asan.<pid>`; UBSan, which writes to stderr whatever its
  log_path says: `stderr.log`, where the server's stdout/stderr go), and two
  server settings that get in the sanitizers' way are off
  (crash-memcheck-enabled, set-proc-title).
  `log()` shows any report after server.log; `cleanup()` copies reports to
  SHMCLI_TEST_SANITIZER_REPORTS (a directory) when set, and otherwise keeps
  the server's directory when there is one.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from . import module_path
from .connection import Connection, connect
from .resp import Bulk

EXEC_MODES = ("main-thread", "fast-path")
FAMILIES = {"redis": "redis-server", "valkey": "valkey-server"}


def server_cache() -> Path:
    """Where .ci/newer-servers puts the servers it builds."""
    return Path(os.environ.get("SHMCLI_SERVER_CACHE") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "shmcli-servers")


@functools.cache
def server_version(binary: str) -> tuple[str, str]:
    """(family, version) from `<binary> --version`, e.g. ("valkey", "9.1.2")."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True,
                         timeout=30).stdout
    match = re.match(r"(Redis|Valkey) server v=(\S+)", out)
    if match is None:
        raise RuntimeError(f"{binary} --version: not a Redis or Valkey server: {out!r}")
    return match.group(1).lower(), match.group(2)


def _binaries(variable: str, default: list[str]) -> list[str]:
    value = os.environ.get(variable)
    if value is None:
        return default
    return [word.split("=", 1)[-1] for word in re.split(r"[,\s]+", value) if word]


def discover_servers() -> tuple[dict[str, str], frozenset[str]]:
    """The servers to test on: ({key: binary}, the keys of the extra servers).

    A key names the server and its version, e.g. "redis-7.0.15"; the main
    pair comes first.  The main pair runs the whole suite: SHMCLI_SERVERS
    (binaries or names, comma- or space-separated, `redis=` / `valkey=`
    prefixes allowed), by default redis-server and valkey-server from PATH.
    The extra servers run the modules that exercise the server
    (tests/conftest.py, EXTRA_SERVER_MODULES): SHMCLI_EXTRA_SERVERS, by
    default every server .ci/newer-servers built into server_cache();
    SHMCLI_EXTRA_SERVERS= (empty) turns them off.  A sanitized run
    (SHMCLI_TEST_PRELOAD) stays on the main pair (see sanitizer_servers()).
    """
    main = [b for b in (shutil.which(name) for name in FAMILIES.values()) if b]
    cached = sorted(str(p) for p in server_cache().glob("*/*-server")
                    if p.name in FAMILIES.values() and os.access(p, os.X_OK))
    found: dict[str, str] = {}
    extra: set[str] = set()
    for binaries, is_extra in ((_binaries("SHMCLI_SERVERS", main), False),
                               ([] if os.environ.get("SHMCLI_TEST_PRELOAD")
                                else _binaries("SHMCLI_EXTRA_SERVERS", cached), True)):
        for name in binaries:
            binary = shutil.which(name)
            if binary is None:
                raise RuntimeError(f"{name}: no such server binary")
            family, version = server_version(binary)
            key = f"{family}-{version}"
            if key not in found:
                found[key] = binary
                if is_extra:
                    extra.add(key)
    return found, frozenset(extra)


def asan_can_load_modules(binary: str) -> bool:
    """Valkey loads modules with RTLD_DEEPBIND since 8.1 (module.c), and
    AddressSanitizer refuses to run a library loaded so."""
    family, version = server_version(binary)
    numbers = tuple(int(part) for part in re.findall(r"\d+", version)[:2])
    return family != "valkey" or numbers < (8, 1)


def sanitizer_servers(main: dict[str, str]) -> dict[str, str]:
    """{family: binary} for a sanitized run: each family's main server, or,
    where ASan cannot load a module into it, that family's server on PATH
    (Debian 12's).  A family with neither is an error, never left out."""
    chosen: dict[str, str] = {}
    for family, name in FAMILIES.items():
        candidates = [main[family]] if family in main else []
        candidates += [b for b in [shutil.which(name)] if b]
        usable = [b for b in candidates if asan_can_load_modules(b)]
        if not usable:
            raise RuntimeError(f"no {family} server that AddressSanitizer can load a module "
                               f"into (tried {candidates or 'none'})")
        chosen[family] = usable[0]
    return chosen


# FLAVOURS: every server under test, {"redis-7.0.15": "/usr/bin/redis-server",
# ...}, main pair first; EXTRA_SERVERS: the keys beyond the main pair.
# Server() takes a key, or a family name ("redis", "valkey") for the main
# server of that family.
FLAVOURS, EXTRA_SERVERS = discover_servers()
MAIN_SERVERS = {family: next((k for k in FLAVOURS if k.startswith(family + "-")
                              and k not in EXTRA_SERVERS), None) for family in FAMILIES}

# ASan keeps SIGSEGV (the server's own handler would hide the report); no leak
# check (servers do not free at exit).  Options already in the environment
# come after ours, so they win.
ASAN_OPTIONS = "detect_leaks=0:abort_on_error=1:halt_on_error=1:allow_user_segv_handler=0"
UBSAN_OPTIONS = "print_stacktrace=1:halt_on_error=1:abort_on_error=1"
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: UndefinedBehaviorSanitizer",
                     "runtime error:")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, flavour: str = "redis", exec_mode: str = "main-thread",
                 config: dict[str, str] | None = None, load_module: bool = True,
                 binary: str | None = None, name: str | None = None) -> None:
        key = MAIN_SERVERS.get(flavour, flavour)
        if binary is None:
            if key is None or key not in FLAVOURS:
                raise RuntimeError(f"no {flavour} server to test on (run .ci/setup; "
                                   f"servers found: {', '.join(FLAVOURS) or 'none'})")
            binary = FLAVOURS[key]
        # flavour: the family ("redis" or "valkey"); key: with the version.
        self.flavour, self.version = server_version(binary)
        self.key = f"{self.flavour}-{self.version}"
        self.name = name or f"{self.key}-{exec_mode}"
        self.exec_mode = exec_mode
        self.binary = binary
        self.module_args: list[str] = []  # after the module's path on --loadmodule
        self.dir = Path(tempfile.mkdtemp(prefix=f"shmcli-{self.flavour}-"))
        self.port = free_port()
        self.unix_socket = str(self.dir / "redis.sock")
        self.shm_socket = str(self.dir / "shm.sock")
        self.config = {
            "port": str(self.port), "bind": "127.0.0.1", "unixsocket": self.unix_socket,
            "unixsocketperm": "700", "dir": str(self.dir), "save": "",
            "appendonly": "no", "logfile": str(self.dir / "server.log"), "loglevel": "verbose",
        }
        if load_module:
            self.config["shm.socket-path"] = self.shm_socket
            self.config["shm.exec-mode"] = exec_mode
        self.preload = os.environ.get("SHMCLI_TEST_PRELOAD", "")
        if self.preload:
            # The crash-time memory test reads ASan's shadow memory; the process
            # title would overwrite the environment that UBSan reads (from
            # /proc/self/environ, at its first report) for UBSAN_OPTIONS.
            self.config.update({"crash-memcheck-enabled": "no", "set-proc-title": "no"})
        self.config.update(config or {})
        self.load_module = load_module
        self.process: subprocess.Popen[bytes] | None = None

    # ---- lifecycle ----

    def argv(self) -> list[str]:
        argv = [self.binary]
        if self.load_module:
            argv += ["--loadmodule", os.environ.get("SHMCLI_TEST_MODULE") or module_path(),
                     *self.module_args]
        for key, value in self.config.items():
            argv += [f"--{key}", value]
        return argv

    def environment(self) -> dict[str, str] | None:
        """The server's environment: ours, unless a sanitizer is preloaded."""
        if not self.preload:
            return None
        return {**os.environ, "LD_PRELOAD": self.preload,
                "ASAN_OPTIONS": ":".join(filter(None, (
                    ASAN_OPTIONS, f"log_path={self.dir / 'asan'}",
                    os.environ.get("ASAN_OPTIONS")))),
                "UBSAN_OPTIONS": ":".join(filter(None, (
                    UBSAN_OPTIONS, os.environ.get("UBSAN_OPTIONS"))))}

    def start(self, timeout: float = 10.0) -> Server:
        output = (open(self.dir / "stderr.log", "ab") if self.preload
                  else subprocess.DEVNULL)
        try:
            self.process = subprocess.Popen(self.argv(), stdout=output, stderr=output,
                                            env=self.environment())
        finally:
            if output is not subprocess.DEVNULL:
                output.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.flavour} exited at start:\n{self.log()[-3000:]}")
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.settimeout(0.5)
                    s.connect(self.unix_socket)
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith((b"+PONG", b"-NOAUTH")):
                        return self
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"{self.flavour} did not start:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def freeze(self, timeout: float = 5.0) -> None:
        """SIGSTOP, and wait until every thread has stopped: kill() returns
        before the stop takes effect, and a fast-path worker spinning on the
        other CPU could still serve a request in between."""
        self.process.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + timeout
        while not all(state == "T" for state in self._thread_states()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.key}: threads still running after SIGSTOP")
            time.sleep(0.001)

    def thaw(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def _thread_states(self) -> list[str]:
        states = []
        for stat in Path(f"/proc/{self.process.pid}/task").glob("*/stat"):
            try:  # "tid (comm) S ...": the state follows the last ")"
                states.append(stat.read_text().rsplit(")", 1)[1].split()[0])
            except (OSError, IndexError):  # the thread ended meanwhile
                pass
        return states

    def restart(self) -> Server:
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        self.kill()
        reports = self.sanitizer_reports()
        if reports:
            keep = os.environ.get("SHMCLI_TEST_SANITIZER_REPORTS")
            if not keep:
                return  # the directory stays, with the report in it
            for path in reports:
                shutil.copy(path, Path(keep) / f"{self.dir.name}-{path.name}")
        shutil.rmtree(self.dir, ignore_errors=True)

    def sanitizer_reports(self) -> list[Path]:
        """ASan/UBSan report files, and stderr.log if a report went there."""
        if not self.dir.exists():
            return []
        found = sorted(p for p in self.dir.iterdir()
                       if p.name.startswith(("asan.", "ubsan.")))
        stderr = self.dir / "stderr.log"
        if stderr.exists() and any(marker in stderr.read_text(errors="replace")
                                   for marker in SANITIZER_MARKERS):
            found.append(stderr)
        return found

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        """server.log, then any sanitizer report."""
        path = self.dir / "server.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        for report in self.sanitizer_reports():
            text += f"\n==== {report.name} ====\n{report.read_text(errors='replace')}"
        return text

    # ---- talking to it ----

    def connect(self, **kwargs: object) -> Connection:
        kwargs.setdefault("unix_socket", self.unix_socket)
        kwargs.setdefault("timeout", 30.0)
        return connect(**kwargs)  # type: ignore[arg-type]

    def admin(self) -> Connection:
        """A plain socket connection for setup and inspection."""
        return self.connect(shm="off", password=self.config.get("requirepass"))

    def info(self, section: str = "shm") -> dict[str, str]:
        with self.admin() as conn:
            reply = conn.execute("INFO", section)
        if not isinstance(reply, Bulk):
            raise RuntimeError(f"INFO {section} failed: {reply!r}")
        text = reply.data.decode()
        return dict(line.split(":", 1) for line in text.splitlines()
                    if ":" in line and not line.startswith("#"))

    def modules(self) -> list[str]:
        """The names of the loaded modules, from every `module:` line of INFO
        modules (info() keeps one line per key; Redis 8 and Valkey 9.1 have
        built-in modules besides shm)."""
        with self.admin() as conn:
            reply = conn.execute("INFO", "modules")
        if not isinstance(reply, Bulk):
            raise RuntimeError(f"INFO modules failed: {reply!r}")
        return [field[len("name="):] for line in reply.data.decode().splitlines()
                if line.startswith("module:") for field in line[len("module:"):].split(",")
                if field.startswith("name=")]

    def redis_cli(self, *args: str, stdin: bytes | None = None,
                  env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["redis-cli", "-s", self.unix_socket, *args], input=stdin,
                              capture_output=True, timeout=60,
                              env={**os.environ, **(env or {})})
