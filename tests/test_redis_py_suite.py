"""redis-py's own test suite over shared memory (issue 13).

The tests/ directory of the installed redis-py's sdist (downloaded from PyPI
into the user's cache, never committed) runs twice against the same server
with the module: once as it is, over redis-py's TCP connections, and once
with the plugin tests/redis_py_suite/shm_connections.py, which makes every
connection redis-py builds a shmcli.redis_py one.  Every test must end the
same way both times, but for the differences listed in KNOWN_DIFFERENCES
(each explained in docs/redis-py.md).

The same six files of its redis.asyncio tests run the same way, with
shmcli.redis_py_asyncio's connections (and pytest-asyncio, installed into
the cache beside them).

Also here: tests/test_redis_py.py and tests/test_redis_py_asyncio.py run
again on the oldest redis-py we support, installed beside the newest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import redis
from servers import Server

SUITE_FILES = ("test_commands.py", "test_pipeline.py", "test_connection_pool.py",
               "test_pubsub.py", "test_lock.py", "test_scripting.py")
# The same files of its redis.asyncio tests (shmcli.redis_py_asyncio), and
# what they need beside redis-py and pytest.
ASYNCIO_SUITE_FILES = tuple(f"test_asyncio/{file}" for file in SUITE_FILES)
ASYNCIO_PLUGIN = ("pytest-asyncio==1.5.0", "typing-extensions>=4.12")
OLDEST_REDIS_PY = "5.0.8"
TESTS = Path(__file__).parent
# test id -> (outcome over redis-py's socket, outcome over shared memory)
KNOWN_DIFFERENCES = {
    # Mocks the connection's reads with a scripted list: the module probe
    # (a bare HELLO after connecting) takes one of the scripted replies.
    "tests.test_connection_pool.TestConnectionPoolUnixSocketURLParsing::"
    "test_default_config_client_executes_commands_without_maint_notifications":
        ("passed", "failure"),
}
# Redis 7.0 has no CLIENT SETINFO, whose denial redis-py 8 counts on for a
# third ACL LOG entry; over shm the refused SHM.HANDSHAKE of a user without
# that right is the third entry.
DIFFERENCES_ON_REDIS_7_0 = {
    "tests.test_commands.TestRedisCommands::test_acl_log": ("failure", "passed"),
}
ASYNCIO_DIFFERENCES_ON_REDIS_7_0 = {  # the same test, with and without a pool
    f"tests.test_asyncio.test_commands.TestRedisCommands::test_acl_log[{client}]":
        ("failure", "passed") for client in ("pool", "single")
}


def cache(name: str = "shmcli-redis-py") -> Path:
    """~/.cache/<name> (XDG_CACHE_HOME's), made if missing: downloads, never committed."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = base / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def pip(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "-q", "--disable-pip-version-check",
                           *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"pip {' '.join(args)}:\n{done.stdout}{done.stderr}"


@pytest.fixture(scope="module")
def suite() -> Path:
    return unpacked_suite()


def unpacked_suite() -> Path:
    """redis-py's sdist for the installed version, unpacked, without its
    `redis` package (the installed one is the one under test)."""
    version = redis.__version__
    root = cache() / f"redis-{version}"
    if not (root / "tests" / "conftest.py").exists():
        pip("download", "--no-deps", "--no-binary", ":all:", "-d", str(cache()),
            f"redis=={version}")
        with tarfile.open(cache() / f"redis-{version}.tar.gz") as sdist:
            if hasattr(tarfile, "data_filter"):
                sdist.extractall(cache(), filter="data")
            else:  # Python < 3.11.4 has no extraction filter
                sdist.extractall(cache())
        shutil.rmtree(root / "redis")
    return root


def outcomes(suite: Path, server: Server, name: str, plugin: bool,
             files: tuple[str, ...] = SUITE_FILES, timeout: float = 600,
             options: tuple[str, ...] = (), paths: tuple[Path, ...] = ()) -> dict[str, str]:
    report = server.dir / f"{name}.xml"
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(map(str, (TESTS / "redis_py_suite", *paths)))}
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            f"--redis-url=redis://127.0.0.1:{server.port}/0", f"--junitxml={report}",
            *(["-p", "shm_connections"] if plugin else []), *options,
            *(f"tests/{file}" for file in files)]
    done = subprocess.run(argv, cwd=suite, env=env, capture_output=True, text=True,
                          timeout=timeout)
    (server.dir / f"{name}.log").write_text(done.stdout + done.stderr)
    assert report.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    result = {}
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        ends = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        result[f"{case.get('classname')}::{case.get('name')}"] = (ends or ["passed"])[0]
    return result


def differences_over_shared_memory(suite: Path, server: Server, name: str,
                                   files: tuple[str, ...],
                                   paths: tuple[Path, ...] = ()) -> dict[str, tuple]:
    """Run `files` over redis-py's sockets, then over shared memory: the
    tests that ended differently, as {test: (socket's end, shm's end)}."""
    plain = outcomes(suite, server, f"{name}-plain", False, files, paths=paths)
    with redis.Redis(unix_socket_path=server.unix_socket) as admin:
        before = admin.info("shm")["shm_commands"]
        over_shm = outcomes(suite, server, f"{name}-shm", True, files, paths=paths)
        assert admin.info("shm")["shm_commands"] - before > 1000  # the suite did use shm
    assert sum(end == "passed" for end in plain.values()) > 500
    return {test: (plain.get(test), over_shm.get(test))
            for test in plain.keys() | over_shm.keys()
            if plain.get(test) != over_shm.get(test)}


def test_redis_pys_suite_ends_the_same_over_shared_memory(suite: Path, make_server) -> None:
    srv = make_server("redis", "main-thread")
    expected = dict(KNOWN_DIFFERENCES)
    if srv.version.startswith("7.0."):
        expected.update(DIFFERENCES_ON_REDIS_7_0)
    assert differences_over_shared_memory(suite, srv, "sync", SUITE_FILES) == expected


@pytest.fixture(scope="module")
def asyncio_plugin() -> Path:
    """pytest-asyncio, which redis-py's asyncio tests need, beside them."""
    target = cache() / "pytest-asyncio"
    if not (target / "pytest_asyncio").exists():
        pip("install", "--no-deps", "--target", str(target), *ASYNCIO_PLUGIN)
    return target


def test_redis_pys_asyncio_suite_ends_the_same_over_shared_memory(
        suite: Path, asyncio_plugin: Path, make_server) -> None:
    srv = make_server("redis", "main-thread")
    expected = {}
    if srv.version.startswith("7.0."):
        expected.update(ASYNCIO_DIFFERENCES_ON_REDIS_7_0)
    assert differences_over_shared_memory(suite, srv, "asyncio", ASYNCIO_SUITE_FILES,
                                          (asyncio_plugin,)) == expected


def test_shmcli_redis_py_on_the_oldest_redis_py() -> None:
    target = cache() / f"site-redis-{OLDEST_REDIS_PY}"
    if not (target / "redis" / "__init__.py").exists():
        pip("install", "--no-deps", "--target", str(target), f"redis=={OLDEST_REDIS_PY}")
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-W", "ignore::DeprecationWarning", str(TESTS / "test_redis_py.py"),
                           str(TESTS / "test_redis_py_asyncio.py"),
                           str(TESTS / "test_redis_py_pack.py")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-5000:]
    probe = subprocess.run([sys.executable, "-c", "import redis; print(redis.__version__)"],
                           env=env, capture_output=True, text=True)
    assert probe.stdout.strip() == OLDEST_REDIS_PY
    assert " passed" in done.stdout and "skipped" not in done.stdout
