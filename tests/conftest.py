"""Fixtures: real servers with the module loaded.

`server` runs every test that uses it against Redis 7.0 and Valkey 8, each on
both execution paths (main thread and fast-path worker); those four servers
live for the whole module and are flushed between tests.  `make_server`
starts a dedicated server with extra configuration (AOF, ACL, limits...).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from servers import EXEC_MODES, FLAVOURS, Server  # noqa: E402

SERVER_PARAMS = [(f, m) for f in FLAVOURS for m in EXEC_MODES]


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
