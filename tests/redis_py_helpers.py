"""What tests/test_redis_py.py and tests/test_redis_py_asyncio.py share: the
module's counters, a reply as a caller sees it, and a forked child's report
(their `seeded` server is conftest.py's)."""

from __future__ import annotations

import os
from collections.abc import Callable

import redis
from servers import Server


def shm_info(server: Server) -> dict:
    """The module's counters, read over a plain socket (which opens no session)."""
    with redis.Redis(unix_socket_path=server.unix_socket) as admin:
        return admin.info("shm")


def seen(value):
    """A reply as a caller sees it, with exceptions (raised, or inside a
    pipeline's or a script's array) as (type, message)."""
    if isinstance(value, Exception):
        return (type(value), str(value))
    if isinstance(value, (list, tuple)):
        return type(value)(seen(item) for item in value)
    if isinstance(value, dict):
        return {key: seen(item) for key, item in value.items()}
    return value


def in_forked_child(work: Callable[[], str]) -> str:
    """What `work` returns when run in a child forked now (it exits at once
    after, whatever happens): its report, or "" if it failed."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            os.write(write, work().encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        report = pipe.read()
    os.waitpid(pid, 0)
    return report
