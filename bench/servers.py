"""Redis servers for the benchmark: one per execution path, each in a temp dir.

Every server listens on its own unix socket and a free loopback port, with
persistence off, so nothing but the benchmark's own traffic reaches it.
Servers are stopped by their process id, never by name.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BenchServer:
    def __init__(self, binary: str, module: str | None, exec_mode: str | None,
                 name: str) -> None:
        self.name = name
        self.binary = binary
        self.exec_mode = exec_mode
        self.dir = Path(tempfile.mkdtemp(prefix=f"shm-bench-{name}-"))
        self.port = free_port()
        self.unix_socket = str(self.dir / "redis.sock")
        self.argv = [binary]
        if module:
            self.argv += ["--loadmodule", module]
        config = {"port": str(self.port), "bind": "127.0.0.1", "unixsocket": self.unix_socket,
                  "unixsocketperm": "700", "dir": str(self.dir), "save": "",
                  "appendonly": "no", "logfile": str(self.dir / "server.log")}
        if module:
            config["shm.socket-path"] = str(self.dir / "shm.sock")
            config["shm.exec-mode"] = exec_mode or "main-thread"
        for key, value in config.items():
            self.argv += [f"--{key}", value]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 10.0) -> BenchServer:
        self.process = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} server exited at start:\n{self.log()}")
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.settimeout(0.5)
                    s.connect(self.unix_socket)
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"{self.name} server did not start:\n{self.log()}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        path = self.dir / "server.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
