"""C unit tests of the module's untrusted-input parsers, built with ASan/UBSan.

native/tests/test_resp_request.c checks the strict RESP request parser on
valid requests, every truncation, malformed framing and a fixed-seed fuzz
run; under the sanitizers any out-of-bounds read fails the run.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_resp_request_parser(tmp_path: Path) -> None:
    binary = tmp_path / "test_resp_request"
    subprocess.run(["gcc", "-std=c11", "-O1", "-g", "-fsanitize=address,undefined",
                    "-fno-sanitize-recover=all", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror",
                    f"-I{ROOT / 'native/module'}", str(ROOT / "native/tests/test_resp_request.c"),
                    str(ROOT / "native/module/resp_request.c"), "-o", str(binary)], check=True)
    run = subprocess.run([str(binary)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.rstrip().endswith(" 0 failed")
