"""Start-up: the scripting paths import only what they need.

A one-shot command, the stdin mode and --pipe never draw anything, so they
must not pay for the interactive shell's line editor (prompt_toolkit, about
90 ms to import) or the latency views' renderer (rich).  Each case runs
`python -m shmcli` in a subprocess and lists the modules loaded when it
exits; an import check, not a timing (bench/startup_bench.py measures the
time).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from servers import Server

# Runs `python -m shmcli ARGS` as __main__ does, then writes the names in
# sys.modules to the file given first.
RUN_AND_LIST_MODULES = """\
import atexit, runpy, sys
listing = sys.argv.pop(1)
def write_modules():
    with open(listing, "w") as out:
        out.write("\\n".join(sorted(sys.modules)))
atexit.register(write_modules)
sys.argv[0] = "shmcli"
runpy.run_module("shmcli", run_name="__main__", alter_sys=True)
"""

NEVER_ON_SCRIPTING_PATHS = ("prompt_toolkit", "rich", "shmcli.repl.editor",
                            "shmcli.repl.key_scanner", "shmcli.latency")

CASES = {
    # name: (arguments after -s SOCKET, stdin, expected stdout, packages not loaded either)
    "one-shot": (["GET", "k"], b"", b"v\n", ("shmcli.repl",)),
    "one-shot --shm off": (["--shm", "off", "GET", "k"], b"", b"v\n", ("shmcli.repl",)),
    "stdin": ([], b"PING\nGET k\n", b"PONG\nv\n", ()),
    "pipe": (["--pipe"], b"*3\r\n$3\r\nSET\r\n$1\r\np\r\n$1\r\n1\r\n", b"", ()),
}


def loaded_modules(server: Server, argv: list[str], stdin: bytes,
                   tmp_path: Path) -> tuple[subprocess.CompletedProcess[bytes], set[str]]:
    listing = tmp_path / "modules.txt"
    env = {k: v for k, v in os.environ.items()
           if k not in ("FAKETTY", "FAKETTY_WITH_PROMPT", "REDISCLI_AUTH")}
    run = subprocess.run([sys.executable, "-c", RUN_AND_LIST_MODULES, str(listing),
                          "-s", server.unix_socket, *argv],
                         input=stdin, capture_output=True, timeout=60, env=env)
    return run, set(listing.read_text().split())


def under(modules: set[str], package: str) -> list[str]:
    return sorted(m for m in modules if m == package or m.startswith(package + "."))


@pytest.fixture(scope="module")
def srv() -> Server:
    server = Server("redis").start()
    try:
        with server.admin() as conn:
            conn.execute("SET", "k", "v")
        yield server
    finally:
        server.cleanup()


@pytest.mark.parametrize("case", list(CASES))
def test_scripting_paths_import_neither_prompt_toolkit_nor_rich(
        srv: Server, case: str, tmp_path: Path) -> None:
    argv, stdin, expected, also_absent = CASES[case]
    run, modules = loaded_modules(srv, argv, stdin, tmp_path)
    assert run.returncode == 0, run.stderr
    if case == "pipe":
        assert b"errors: 0, replies: 1" in run.stdout
    else:
        assert run.stdout == expected
    assert "shmcli.cli" in modules  # the listing saw the real run
    for package in (*NEVER_ON_SCRIPTING_PATHS, *also_absent):
        assert under(modules, package) == [], f"{case} imported {package}"
