"""A pytest plugin (-p shm_connections) that makes redis-py build
shmcli.redis_py's connections wherever it would build its own TCP or unix
ones, and shmcli.redis_py_asyncio's for redis.asyncio: how redis-py's own test
suite runs over shared memory (see tests/test_redis_py_suite.py).  Pools
still name redis-py's classes (some of the suite's tests check that); the
connections they make are ours."""

from __future__ import annotations

import redis.asyncio.connection
import redis.connection

from shmcli import redis_py, redis_py_asyncio

_SHM = {redis.connection.Connection: redis_py.ShmConnection,
        redis.connection.UnixDomainSocketConnection: redis_py.ShmUnixConnection,
        redis.asyncio.connection.Connection: redis_py_asyncio.ShmConnection,
        redis.asyncio.connection.UnixDomainSocketConnection: redis_py_asyncio.ShmUnixConnection}


def _new_shm_connection(cls, *args, **kwargs):
    return object.__new__(_SHM.get(cls, cls))


for _plain in _SHM:
    _plain.__new__ = _new_shm_connection
