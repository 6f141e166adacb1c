"""shmcli: redis-cli over shared memory, and a small Python API over the same channel.

    import shmcli
    with shmcli.connect(unix_socket="/run/redis/redis.sock") as conn:
        conn.execute("SET", "k", "v")
        print(conn.transport)   # "shm" when the server has the module, else "socket"
"""

import os

from .connection import Connection, ReplyError, ShmUnavailable, connect
from .resp import Reply, to_python

__all__ = ["Connection", "Reply", "ReplyError", "ShmUnavailable", "connect", "module_path",
           "to_python"]
__version__ = "0.1.0"


def module_path() -> str:
    """Absolute path of the Redis module built with this package."""
    return os.path.join(os.path.dirname(os.path.realpath(__file__)), "shm_module.so")
