"""A pytest plugin (-p shm_connections) that makes redis-py build
shmcli.redis_py's connections wherever it would build its own TCP or unix
ones: how redis-py's own test suite runs over shared memory (see
tests/test_redis_py_suite.py).  Pools still name redis-py's classes (some of
the suite's tests check that); the connections they make are ours."""

from __future__ import annotations

import redis.connection

from shmcli.redis_py import ShmConnection, ShmUnixConnection

_SHM = {redis.connection.Connection: ShmConnection,
        redis.connection.UnixDomainSocketConnection: ShmUnixConnection}


def _new_shm_connection(cls, *args, **kwargs):
    return object.__new__(_SHM.get(cls, cls))


for _plain in _SHM:
    _plain.__new__ = _new_shm_connection
