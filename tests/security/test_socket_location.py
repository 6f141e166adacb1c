"""The default module socket cannot be squatted or used by other users.

Issue 9: the default `/tmp/redis-shm.<pid>.sock` with mode 777 could be
pre-created by any local user (the server then refused to start) and let
anyone knock.  Without shm.socket-path, with the server's own unix socket at
mode 700, the module's socket must live in a directory other users cannot
write to, with permissions no wider than 0700, and sessions must work there.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from servers import Server

from shmcli.resp import Status


def test_the_default_socket_is_private(flavour_mode: tuple[str, str],
                                       custom_server: Callable[..., Server]) -> None:
    srv = custom_server(*flavour_mode, drop=("shm.socket-path",))
    assert srv.config["unixsocketperm"] == "700"
    path = Path(srv.info()["shm_socket"])
    mode = os.stat(path).st_mode
    assert stat.S_ISSOCK(mode), path
    assert stat.S_IMODE(mode) & ~0o700 == 0, f"{path} has mode {stat.S_IMODE(mode):o}"
    # a sticky world-writable directory (/tmp) still lets anyone create the name first
    parent = stat.S_IMODE(os.stat(path.parent).st_mode)
    assert parent & 0o002 == 0, f"{path}: any user may create names there (mode {parent:o})"
    with srv.connect(shm="require") as conn:
        assert conn.execute("PING") == Status(b"PONG")
        assert conn.transport == "shm"
