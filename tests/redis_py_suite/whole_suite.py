"""By hand: redis-py's WHOLE test suite, over its socket and over
shmcli.redis_py, on one server with the module; prints both counts and every
test that ended differently.  (CI runs six of its files: test_redis_py_suite.py.)

    .venv/bin/python tests/redis_py_suite/whole_suite.py [redis|valkey]
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS))

import test_redis_py_suite as runs  # noqa: E402
from servers import Server  # noqa: E402

# Every file; not redis.asyncio's tests (shmcli.redis_py has no asyncio
# classes, and they need pytest-asyncio): those would run the same both times.
WHOLE = (("",), 3600, ("--ignore=tests/test_asyncio",))


def main() -> None:
    flavour = sys.argv[1] if len(sys.argv) > 1 else "redis"
    suite = runs.unpacked_suite()
    server = Server(flavour, "main-thread").start()
    try:
        plain = runs.outcomes(suite, server, "plain", False, *WHOLE)
        over_shm = runs.outcomes(suite, server, "shm", True, *WHOLE)
    finally:
        server.cleanup()
    print(f"{server.key}, redis-py {runs.redis.__version__}")
    for name, result in (("socket", plain), ("shm", over_shm)):
        print(f"{name:>7}: {dict(collections.Counter(result.values()))}")
    for test in sorted(plain.keys() | over_shm.keys()):
        if plain.get(test) != over_shm.get(test):
            print(f"  {test}: {plain.get(test)} -> {over_shm.get(test)}")


if __name__ == "__main__":
    main()
