"""By hand: the test suites of libraries built on redis-py, over redis-py's
own connections and over shmcli's, against the same server with the module;
prints both counts and every test that ended differently (results:
docs/redis-py.md, "Libraries built on redis-py").

    .venv/bin/python tests/redis_py_suite/ecosystem.py [LIBRARY ...] [--fast-path]

LIBRARY is rq, huey or redis-lock (all three by default).  Each library's
sdist (its tests are in it) and what its tests import are downloaded from
PyPI into ~/.cache/shmcli-eco/ (never committed).  The shm run puts
everywhere/ on PYTHONPATH with SHMCLI_SWAP_REDIS_PY=1: its sitecustomize.py
loads the plugin shm_connections.py into every Python process, the suite's
subprocesses and forked workers too, and records each connection's
transport, so the run shows it used shared memory.

rq and huey connect to localhost:6379: the server is started there (the
port must be free).  python-redis-lock starts a redis-server of its own per
test: a `redis-server` first on PATH loads the module into it.
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

import redis

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "tests"))

import test_redis_py_suite as runs  # noqa: E402
from test_redis_py_suite import pip  # noqa: E402

from shmcli import module_path  # noqa: E402
from shmcli.testing import Server  # noqa: E402


@dataclass
class Library:
    sdist: str            # name==version on PyPI
    tests: tuple[str, ...]
    deps: tuple[str, ...] = ()
    src: str = ""         # where the package is in the sdist, if not at its root
    on_6379: bool = True  # its tests connect to localhost:6379
    options: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    scripts: dict[str, str] = field(default_factory=dict)  # console scripts its tests run


LIBRARIES = {
    "rq": Library("rq==3.0.0", ("tests",), ("click", "croniter", "pytz", "psutil"),
                  scripts={"rqworker": "rq.cli:worker", "rq": "rq.cli:main"}),
    "huey": Library("huey==3.5.4", ("huey/tests/test_storage.py", "huey/tests/test_helpers.py",
                                    "huey/tests/test_wrappers.py"),
                 env={"HUEY_SLOW_TESTS": "1"}),
    "redis-lock": Library("python-redis-lock==4.0.1", ("tests/test_redis_lock.py",),
                          ("process-tests",), src="src", on_6379=False,
                          options=("-k", "not gevent and not eventlet")),
}


def cache() -> Path:
    return runs.cache("shmcli-eco")


def unpacked(library: Library) -> Path:
    name, version = library.sdist.split("==")
    sdists = cache() / "sdist"
    found = [path for path in sdists.glob("*.tar.gz")
             if path.name.lower().replace("_", "-") == f"{name}-{version}.tar.gz"]
    if not found:
        pip("download", "--no-deps", "--no-binary", ":all:", "-d", str(sdists), library.sdist)
        return unpacked(library)
    root = cache() / "src" / found[0].name[:-len(".tar.gz")]
    if not root.exists():
        with tarfile.open(found[0]) as sdist:
            if hasattr(tarfile, "data_filter"):
                sdist.extractall(root.parent, filter="data")
            else:  # Python < 3.11.4 has no extraction filter
                sdist.extractall(root.parent)
    return root


def dependencies(library: Library) -> Path:
    target = cache() / "deps"
    missing = [dep for dep in library.deps
               if not list(target.glob(f"{dep.replace('-', '_')}*.dist-info"))]
    if missing:
        pip("install", "--no-deps", "--target", str(target), *missing)
    return target


def console_scripts(directory: Path, library: Library) -> None:
    """The console scripts the library's tests run, as `pip install` makes them."""
    for name, entry in library.scripts.items():
        module, function = entry.split(":")
        script = directory / name
        script.write_text(f"#!{sys.executable}\nimport sys\nfrom {module} import {function}\n"
                          f"sys.exit({function}())\n")
        script.chmod(0o755)


def redis_server_wrapper(directory: Path, exec_mode: str) -> Path:
    """A `redis-server` that loads the module, for suites that start their own."""
    binary = shutil.which("redis-server", path=os.defpath + ":/usr/local/bin:/usr/bin")
    wrapper = directory / "redis-server"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'sock=$(mktemp -u "{directory}/shm-XXXXXX.sock")\n'
        f'exec {binary} "$@" --loadmodule {module_path()} '
        f'--shm.socket-path "$sock" --shm.exec-mode {exec_mode}\n')
    wrapper.chmod(0o755)
    return wrapper


def run(library: Library, root: Path, name: str, shm: bool, work: Path,
        extra_path: tuple[Path, ...]) -> tuple[dict[str, str], list[str]]:
    report, record = work / f"{name}.xml", work / f"{name}.transports"
    paths = [root / library.src, HERE / "everywhere", HERE, ROOT, *extra_path]
    env = {**os.environ, **library.env, "PYTHONPATH": os.pathsep.join(map(str, paths)),
           "PATH": f"{work}{os.pathsep}{os.environ['PATH']}",
           "SHMCLI_SWAP_REDIS_PY": "1" if shm else "0",
           "SHMCLI_SWAP_REDIS_PY_RECORD": str(record)}
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
            f"--junitxml={report}", "-o", "addopts=", *library.options, *library.tests]
    with open(work / f"{name}.log", "w") as log:
        subprocess.run(argv, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                       timeout=1800)
    result = {}
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        ends = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        result[f"{case.get('classname')}::{case.get('name')}"] = (ends or ["passed"])[0]
    transports = record.read_text().split("\n") if record.exists() else []
    return result, transports


def compare(name: str, exec_mode: str) -> None:
    library = LIBRARIES[name]
    root = unpacked(library)
    extra = (dependencies(library),)
    work = Path(tempfile.mkdtemp(prefix=f"shmcli-eco-{name}-"))
    redis_server_wrapper(work, exec_mode)
    console_scripts(work, library)
    server = None
    if library.on_6379:
        server = Server("redis", exec_mode, config={"port": "6379"}).start()
    try:
        def shm_commands() -> int:
            if server is None:
                return 0
            with redis.Redis(unix_socket_path=server.unix_socket) as admin:
                return admin.info("shm")["shm_commands"]

        plain, _ = run(library, root, "socket", False, work, extra)
        before = shm_commands()
        over_shm, transports = run(library, root, "shm", True, work, extra)
        served = shm_commands() - before
    finally:
        if server is not None:
            server.cleanup()
    counts = collections.Counter(line.split()[-1] for line in transports if line)
    print(f"{name} ({library.sdist}), redis-py {redis.__version__}, {exec_mode}; "
          f"logs in {work}")
    print(f"  shm run: connections {dict(counts)}"
          + (f", {served} commands served through shared memory" if server else ""))
    for label, result in (("socket", plain), ("shm", over_shm)):
        print(f"  {label:>6}: {dict(sorted(collections.Counter(result.values()).items()))}")
    for test in sorted(plain.keys() | over_shm.keys()):
        if plain.get(test) != over_shm.get(test):
            print(f"    {test}: {plain.get(test)} -> {over_shm.get(test)}")


def main() -> None:
    args = sys.argv[1:]
    exec_mode = "fast-path" if "--fast-path" in args else "main-thread"
    for name in [arg for arg in args if not arg.startswith("--")] or list(LIBRARIES):
        compare(name, exec_mode)


if __name__ == "__main__":
    main()
