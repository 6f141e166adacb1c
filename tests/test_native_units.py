"""C unit tests of the code that reads untrusted shared memory, built with ASan/UBSan.

- native/tests/test_resp_request.c: the module's strict RESP request parser on
  valid requests, every truncation, malformed framing and a fixed-seed fuzz run;
- native/tests/test_ring.c: the ring's framing through wrap-arounds, and a
  hostile peer's random positions and record headers.
Under the sanitizers any out-of-bounds read fails the run.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SANITIZE = ["-std=c11", "-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
            "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror"]
UNITS = {
    "resp_request": ["native/tests/test_resp_request.c", "native/module/resp_request.c"],
    "ring": ["native/tests/test_ring.c", "native/channel/shm_ring.c"],
}


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_native_unit(unit: str, tmp_path: Path) -> None:
    binary = tmp_path / unit
    sources = [str(ROOT / source) for source in UNITS[unit]]
    subprocess.run(["gcc", *SANITIZE, f"-I{ROOT / 'native/module'}", *sources, "-o",
                    str(binary)], check=True)
    run = subprocess.run([str(binary)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.rstrip().endswith(" 0 failed")
