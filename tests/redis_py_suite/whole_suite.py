"""By hand: redis-py's WHOLE test suite, over its socket and over
shmcli.redis_py (and shmcli.redis_py_asyncio for its asyncio tests), on one
server with the module; prints both counts and every test that ended
differently.  (CI runs six of its files and their asyncio twins:
test_redis_py_suite.py.)

    .venv/bin/python tests/redis_py_suite/whole_suite.py [redis|valkey]
"""

from __future__ import annotations

import collections
import shutil
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS))

import test_redis_py_suite as runs  # noqa: E402
from servers import Server  # noqa: E402

# Every file (redis.asyncio's in tests/test_asyncio/ too) but test_scenario's
# (they need a fault-injection service).  Named one by one: pytest loads the
# conftest.py of every tests/test_*/ directory when given tests/ whole.
LEFT_OUT = ("test_asyncio", "test_scenario")
# What the other files import beyond redis-py and pytest, installed beside
# them (--no-deps: never a second redis-py).
DEPENDENCIES = ("numpy", "pybreaker", "redis-entraid==1.2.2", "msal", "azure-identity",
                "azure-core", "PyJWT", "requests", "urllib3", "idna", "certifi",
                "charset-normalizer", "cryptography", "six", "typing_extensions")


def every_file(suite: Path) -> tuple[str, ...]:
    tests = suite / "tests"
    return tuple(sorted(
        [path.name for path in tests.glob("test_*") if path.name not in LEFT_OUT]
        + [f"test_asyncio/{path.name}" for path in (tests / "test_asyncio").glob("test_*")
           if path.name != "test_scenario"]))


def dependencies() -> Path:
    target = runs.cache() / "suite-deps"
    if not (target / "pybreaker.py").exists() and not (target / "pybreaker").exists():
        runs.pip("install", "--no-deps", "--target", str(target), *DEPENDENCIES,
                 *runs.ASYNCIO_PLUGIN)
    return target


def main() -> None:
    flavour = sys.argv[1] if len(sys.argv) > 1 else "redis"
    suite = runs.unpacked_suite()
    deps = (dependencies(),)
    server = Server(flavour, "main-thread").start()
    try:
        plain, over_shm = {}, {}
        for file in every_file(suite):  # a pytest each: an INTERNALERROR ends one file only
            run = ((file,), 900, ("--continue-on-collection-errors",), deps)
            name = file.replace("/", "-")
            plain.update(runs.outcomes(suite, server, f"plain-{name}", False, *run))
            over_shm.update(runs.outcomes(suite, server, f"shm-{name}", True, *run))
    finally:
        for kept in (*server.dir.glob("*.xml"), *server.dir.glob("*.log")):
            shutil.copy(kept, Path("/tmp") / f"redis-py-suite-{kept.name}")
        server.cleanup()
    print(f"{server.key}, redis-py {runs.redis.__version__}")
    for name, result in (("socket", plain), ("shm", over_shm)):
        print(f"{name:>7}: {dict(collections.Counter(result.values()))}")
    for test in sorted(plain.keys() | over_shm.keys()):
        if plain.get(test) != over_shm.get(test):
            print(f"  {test}: {plain.get(test)} -> {over_shm.get(test)}")


if __name__ == "__main__":
    main()
