"""On PYTHONPATH with SHMCLI_SWAP_REDIS_PY=1, every Python process (a test
suite's subprocesses and workers too) builds shmcli's connections wherever
redis-py would build its own: tests/redis_py_suite/ecosystem.py's shm runs.
With SHMCLI_SWAP_REDIS_PY_RECORD=<file> too, each connection that asks the
server for a session appends a line to that file: the transport it got
("shm" or "socket"), so a run shows that shared memory was used even where
the server is the suite's own."""

import os

if os.environ.get("SHMCLI_SWAP_REDIS_PY") == "1":
    import shm_connections  # noqa: F401  (it swaps on import)

    _record = os.environ.get("SHMCLI_SWAP_REDIS_PY_RECORD")
    if _record:
        from shmcli import redis_py, redis_py_asyncio

        _start_session = redis_py._ShmRouting._start_session
        _start_async_session = redis_py_asyncio._AsyncShmRouting._start_session

        def _note(connection) -> None:
            with open(_record, "a") as out:
                out.write(f"{os.getpid()} {type(connection).__module__} {connection.transport}\n")

        def _recorded_start_session(self) -> None:
            tried = self._session_tried
            _start_session(self)
            if not tried and self._session_tried:
                _note(self)

        async def _recorded_start_async_session(self) -> None:
            tried = self._session_tried
            await _start_async_session(self)
            if not tried and self._session_tried:
                _note(self)

        redis_py._ShmRouting._start_session = _recorded_start_session
        redis_py_asyncio._AsyncShmRouting._start_session = _recorded_start_async_session
