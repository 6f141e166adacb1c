"""Fixtures: real servers with the module loaded.

`server` runs every test that uses it against every server under test
(shmcli.testing.FLAVOURS: the main pair, Redis 7.0 and Valkey 8 from Debian
12, and the extra servers .ci/newer-servers builds), each on both execution
paths (main thread and fast-path worker); those servers live for the whole
module and are flushed between tests.  `flavour` is a server's key, e.g.
"valkey-9.1.2", and a test id names it: `redis-7.0.15-fast-path`.
`make_server` starts a dedicated server with extra configuration (AOF, ACL,
limits...).

The extra servers (shmcli.testing.EXTRA_SERVERS) run only the modules in
EXTRA_SERVER_MODULES, the ones that exercise the server; their tests in any
other module are deselected.  Under CI (CI or SHMCLI_REQUIRE_EXTRA_SERVERS
set, as .ci/run does, after building them) they must be there.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from reply_corpus import SEED  # noqa: E402
from servers import EXEC_MODES, EXTRA_SERVERS, FLAVOURS, Server  # noqa: E402

SERVER_PARAMS = [(f, m) for f in FLAVOURS for m in EXEC_MODES]

# Paths relative to tests/; a directory stands for every module under it.
EXTRA_SERVER_MODULES = (
    "test_parity.py", "test_session_state.py", "test_acl.py", "test_fallback.py",
    "test_propagation.py", "test_teardown.py", "test_hostile.py", "test_module_config.py",
    "test_module_load.py", "test_cli_pipe.py", "test_polling.py", "test_channel_batches.py",
    "test_capa_redirect.py", "test_atomic_slot_migration.py",
    "security/")
EXTRA_SERVER_EXCLUDED = ("security/test_sanitizers.py", "security/test_fuzz.py")


def _runs_extra_servers(path: Path) -> bool:
    rel = path.relative_to(Path(__file__).parent).as_posix()
    if rel in EXTRA_SERVER_EXCLUDED:
        return False
    return any(rel == m or (m.endswith("/") and rel.startswith(m)) for m in EXTRA_SERVER_MODULES)


def _names_extra_server(value: object) -> bool:
    if isinstance(value, (tuple, list)):
        return any(_names_extra_server(v) for v in value)
    return isinstance(value, str) and value in EXTRA_SERVERS


def pytest_configure(config: pytest.Config) -> None:
    required = os.environ.get("CI") or os.environ.get("SHMCLI_REQUIRE_EXTRA_SERVERS")
    sanitized = os.environ.get("SHMCLI_TEST_PRELOAD")  # the main pair only (shmcli.testing)
    if required and not sanitized and not EXTRA_SERVERS:
        raise pytest.UsageError(
            "CI (or SHMCLI_REQUIRE_EXTRA_SERVERS) is set but there are no extra servers "
            "to test on: run .ci/newer-servers, or name them in SHMCLI_EXTRA_SERVERS")


def pytest_report_header(config: pytest.Config) -> str:
    return "servers: " + ", ".join(
        f"{key}{' (extra)' if key in EXTRA_SERVERS else ''} {binary}"
        for key, binary in FLAVOURS.items())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop the extra servers' tests outside EXTRA_SERVER_MODULES."""
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if _names_extra_server(list(params.values())) and not _runs_extra_servers(item.path):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="module", params=SERVER_PARAMS, ids=[f"{f}-{m}" for f, m in SERVER_PARAMS])
def shared_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    flavour, mode = request.param
    server = Server(flavour, mode).start()
    yield server
    server.cleanup()


@pytest.fixture
def server(shared_server: Server) -> Iterator[Server]:
    if not shared_server.alive():
        shared_server.start()
    with shared_server.admin() as conn:
        conn.execute("FLUSHALL")
    yield shared_server
    assert shared_server.alive(), f"the server died:\n{shared_server.log()[-3000:]}"


@pytest.fixture
def seeded(server: Server) -> Server:
    """The server, with the keys of the reply corpus (reply_corpus.SEED)."""
    with server.admin() as conn:
        for command in SEED:
            conn.execute(*command)
    return server


@pytest.fixture(params=list(FLAVOURS))
def flavour(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_server() -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def make(flavour: str = "redis", exec_mode: str = "main-thread",
             config: dict[str, str] | None = None, load_module: bool = True,
             start: bool = True) -> Server:
        srv = Server(flavour, exec_mode, config, load_module)
        started.append(srv)
        return srv.start() if start else srv

    yield make
    for srv in started:
        srv.cleanup()
