"""The hostile and security tests again, against the module built with ASan+UBSan.

DESIGN §7 and issue 9: CI builds the module with -fsanitize=address,undefined
(tests/security/sanitized_build.py) and runs tests/test_hostile.py and
tests/security under it, every server with libasan preloaded
(shmcli.testing: SHMCLI_TEST_MODULE, SHMCLI_TEST_PRELOAD).  A sanitizer
report aborts the server, so the run fails, and the report is printed here.

The toolchain is part of CI (gcc pulls in libasan8 and libubsan1 on Debian
12): a missing piece is a failure, never a skip.

Two controls keep the run honest: a server started the same way really maps
libasan and the sanitized module, and a module with a deliberate heap
overflow is caught and its report found where the run looks for reports.

By hand (the same run, without the controls):
    .venv/bin/python tests/security/sanitized_build.py /tmp/shm-asan  # prints two exports
    export ...; SHMCLI_TEST_SANITIZER_REPORTS=/tmp/shm-asan .venv/bin/python -m pytest -q \\
        -p no:cacheprovider tests/test_hostile.py tests/security -k 'not sanitizers'
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sanitized_build import ROOT, SANITIZE_FLAGS, compile_c, gcc_path, sanitizer_env
from servers import Server

from shmcli.testing import FLAVOURS, MAIN_SERVERS, sanitizer_servers

# The inner run's wall time is bounded; the outer timeout leaves room for the build.
INNER_TIMEOUT = float(os.environ.get("SHMCLI_SANITIZER_TIMEOUT", "900"))

DELIBERATE_OVERFLOW = r"""
#include <stdlib.h>
typedef int (*getapi_fn)(const char *, void *);
int RedisModule_OnLoad(void *ctx, void **argv, int argc) {
    (void)argv; (void)argc;
    void (*attribs)(void *, const char *, int, int);
    ((getapi_fn *)ctx)[0]("RedisModule_SetModuleAttribs", &attribs);
    attribs(ctx, "overflow", 1, 1);
    volatile char *p = malloc(8);
    p[8] = 1;            /* one past the end: ASan must stop the server here */
    free((void *)p);
    return 0;
}
"""


# The servers of the run: the main pair, where ASan can load a module into
# it (not into Valkey >= 8.1, which uses RTLD_DEEPBIND).
SERVERS = sanitizer_servers({family: FLAVOURS[key] for family, key in MAIN_SERVERS.items()
                             if key is not None})


def control_server(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                   flavour: str = "valkey", exec_mode: str = "fast-path") -> Server:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SHMCLI_TEST_SANITIZER_REPORTS", raising=False)
    return Server(flavour, exec_mode, binary=SERVERS[flavour])


def check_controls(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], tmp: Path) -> None:
    for flavour, exec_mode in (("redis", "main-thread"), ("valkey", "fast-path")):
        srv = control_server(monkeypatch, env, flavour, exec_mode).start()
        try:
            maps = Path(f"/proc/{srv.pid}/maps").read_text()
            assert "libasan" in maps and env["SHMCLI_TEST_MODULE"] in maps, "not sanitized"
            with srv.connect(shm="require") as conn:
                assert conn.transport == "shm"
        finally:
            srv.cleanup()

    source = tmp / "overflow.c"
    source.write_text(DELIBERATE_OVERFLOW)
    bad = tmp / "overflow.so"
    compile_c([gcc_path(), *SANITIZE_FLAGS, "-o", str(bad), str(source)])
    srv = control_server(monkeypatch, {**env, "SHMCLI_TEST_MODULE": str(bad)})
    try:
        with pytest.raises(RuntimeError, match="exited at start"):
            srv.start()
        reports = srv.sanitizer_reports()
        assert reports, f"no sanitizer report for a heap overflow:\n{srv.log()[-3000:]}"
        assert "heap-buffer-overflow" in srv.log() or "runtime error" in srv.log()
    finally:
        srv.kill()
        for path in srv.sanitizer_reports():
            path.unlink()
        srv.cleanup()


@pytest.mark.timeout(INNER_TIMEOUT + 120)
def test_hostile_and_security_suites_under_asan_and_ubsan(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started = time.monotonic()
    env = sanitizer_env(tmp_path)
    built = time.monotonic()
    check_controls(monkeypatch, env, tmp_path)
    monkeypatch.undo()

    reports = tmp_path / "reports"
    reports.mkdir()
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "tests/test_hostile.py", "tests/security", "-k", "not sanitizers"]
    # Its own session, so a timeout ends the inner pytest and every server it started.
    inner = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             env={**os.environ, **env,
                                  "SHMCLI_SERVERS": ",".join(SERVERS.values()),
                                  "SHMCLI_TEST_SANITIZER_REPORTS": str(reports),
                                  # the fuzz too, shorter than the plain run's minute
                                  "SHMCLI_FUZZ_SECONDS": os.environ.get(
                                      "SHMCLI_SANITIZED_FUZZ_SECONDS", "30")},
                             start_new_session=True)
    try:
        output, _ = inner.communicate(timeout=INNER_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(inner.pid, signal.SIGKILL)
        output, _ = inner.communicate()
        pytest.fail(f"the sanitized run took over {INNER_TIMEOUT:.0f} s:\n"
                    f"{output.decode(errors='replace')[-5000:]}")
    text = output.decode(errors="replace")
    print(f"sanitized build {built - started:.1f} s, run {time.monotonic() - built:.1f} s")
    print(text[-3000:])
    found = sorted(reports.iterdir())
    shown = "".join(f"\n==== {path.name} ====\n{path.read_text(errors='replace')[:20000]}"
                    for path in found)
    assert not found, f"sanitizer reports:{shown}"
    assert inner.returncode == 0, f"the sanitized run failed:\n{text[-8000:]}"
