"""Fixtures of the security suite (tests/conftest.py's `server`, `make_server`
and `flavour` apply here too; tests/ is on sys.path).

- `flavour_mode`: (flavour, exec mode), every server kind, for tests that
  need a dedicated server;
- `custom_server`: a dedicated server with extra command-line words (e.g.
  `--rename-command DEBUG mydebug`, which takes two);
- `racer`: tests/security/racer.c compiled once per run;
- `evil_module`: a shared object whose constructor leaves a marker file, so
  "no code was loaded" is a fact to check, not a guess.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from servers import EXEC_MODES, FLAVOURS, Server

HERE = Path(__file__).parent
CHANNEL = HERE.parent.parent / "native" / "channel"
KINDS = [(f, m) for f in FLAVOURS for m in EXEC_MODES]


class ArgvServer(Server):
    """A Server with extra command-line words after its configuration."""

    def __init__(self, *args: object, extra: list[str] | None = None, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.extra = extra or []

    def argv(self) -> list[str]:
        return super().argv() + self.extra


@pytest.fixture(params=KINDS, ids=[f"{f}-{m}" for f, m in KINDS])
def flavour_mode(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param


@pytest.fixture
def custom_server() -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def make(flavour: str, exec_mode: str, config: dict[str, str] | None = None,
             extra: list[str] | None = None, drop: tuple[str, ...] = ()) -> Server:
        """`drop`: configuration keys the Server sets by default to leave out."""
        srv = ArgvServer(flavour, exec_mode, config, extra=extra)
        for key in drop:
            del srv.config[key]
        started.append(srv)
        return srv.start()

    yield make
    for srv in started:
        srv.cleanup()


def _gcc(out: Path, *args: str) -> Path:
    done = subprocess.run(["gcc", *args, "-o", str(out)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, f"gcc failed:\n{done.stderr}"
    return out


@pytest.fixture(scope="session")
def racer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("racer") / "racer"
    return _gcc(out, "-O2", "-pthread", "-Wall", f"-I{CHANNEL}", str(HERE / "racer.c"))


@pytest.fixture(scope="session")
def evil_module(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the .so, the marker its constructor creates when anything loads it)."""
    where = tmp_path_factory.mktemp("evil")
    marker = where / "LOADED"
    source = where / "evil.c"
    source.write_text(
        "#include <fcntl.h>\n#include <unistd.h>\n"
        "__attribute__((constructor)) static void evil(void) {\n"
        f'    int fd = open("{marker}", O_CREAT | O_WRONLY, 0600);\n'
        "    if (fd >= 0) close(fd);\n}\n"
        "int RedisModule_OnLoad(void *ctx, void *argv, int argc) {\n"
        "    (void)ctx; (void)argv; (void)argc; return 1; /* REDISMODULE_ERR */\n}\n")
    so = _gcc(where / "evil.so", "-shared", "-fPIC", str(source))
    assert not marker.exists()
    return so, marker
