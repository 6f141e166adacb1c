"""What tests/test_redis_py.py and tests/test_redis_py_asyncio.py share: the
module's counters and a reply as a caller sees it (their `seeded` server is
conftest.py's)."""

from __future__ import annotations

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
