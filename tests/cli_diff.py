"""Differential runs: the real redis-cli and shmcli with the same arguments,
stdin and environment, against the same server.

`run_pair` returns both results; `differences` compares a list of cases and
returns a readable line per case that differs (empty when all match).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

SHMCLI = [sys.executable, "-m", "shmcli"]
REDIS_CLI = ["redis-cli"]


@dataclass(frozen=True)
class Case:
    """One invocation: arguments (after the connection flags), stdin, extra env."""

    argv: Sequence[str]
    stdin: bytes = b""
    env: dict[str, str] = field(default_factory=dict)
    stderr_matters: bool = True


def run_tool(tool: Sequence[str], argv: Sequence[str], stdin: bytes = b"",
             env: dict[str, str] | None = None, timeout: float = 60,
             ) -> subprocess.CompletedProcess[bytes]:
    """Run one tool with a clean environment (no FAKETTY unless asked)."""
    environ = {k: v for k, v in os.environ.items()
               if k not in ("FAKETTY", "REDISCLI_AUTH", "FAKETTY_WITH_PROMPT")}
    return subprocess.run([*tool, *argv], input=stdin, capture_output=True, timeout=timeout,
                          env={**environ, **(env or {})})


def run_pair(argv: Sequence[str], *, target: Sequence[str] = (), shm: str = "auto",
             stdin: bytes = b"", env: dict[str, str] | None = None,
             ) -> tuple[subprocess.CompletedProcess[bytes], subprocess.CompletedProcess[bytes]]:
    """(redis-cli, shmcli) on the same arguments; `target` is the connection
    flags (e.g. ["-s", path]) put first for both."""
    theirs = run_tool(REDIS_CLI, [*target, *argv], stdin, env)
    ours = run_tool([*SHMCLI, "--shm", shm], [*target, *argv], stdin, env)
    return theirs, ours


def differences(cases: Iterable[Case], *, target: Sequence[str] = (),
                shm: str = "auto") -> list[str]:
    differ = []
    for case in cases:
        theirs, ours = run_pair(case.argv, target=target, shm=shm, stdin=case.stdin,
                                env=case.env)
        if _seen(ours, case) != _seen(theirs, case):
            differ.append(f"{list(case.argv)} stdin={case.stdin[:60]!r}:\n"
                          f"  shmcli    rc={ours.returncode} out={ours.stdout[:300]!r} "
                          f"err={ours.stderr[:300]!r}\n"
                          f"  redis-cli rc={theirs.returncode} out={theirs.stdout[:300]!r} "
                          f"err={theirs.stderr[:300]!r}")
    return differ


def _seen(run: subprocess.CompletedProcess[bytes], case: Case) -> tuple[object, ...]:
    return (run.stdout, run.stderr if case.stderr_matters else None, run.returncode)
