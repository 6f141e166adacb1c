"""shmcli: redis-cli over shared memory, and a small Python API over the same channel.

    import shmcli
    with shmcli.connect(unix_socket="/run/redis/redis.sock") as conn:
        conn.execute("SET", "k", "v")
        print(conn.transport)   # "shm" when the server has the module, else "socket"
"""

from .connection import Connection, ShmUnavailable, connect
from .resp import Reply

__all__ = ["Connection", "Reply", "ShmUnavailable", "connect", "module_path"]
__version__ = "0.1.0"


def module_path() -> str:
    """Absolute path of the Redis module built with this package."""
    from pathlib import Path

    return str(Path(__file__).resolve().parent / "shm_module.so")
