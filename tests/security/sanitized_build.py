"""Build the shm module with ASan+UBSan into a scratch directory.

The normal build (setup.py, `pip install -e .`) is left alone: the sanitized
module and its helper go into the directory the caller gives.  The sources
are setup.py's MODULE list, read out of setup.py's syntax tree rather than
copied here, so a file added to the module is sanitized too.

A test server then runs the sanitized module with the sanitizer runtimes
preloaded (shmcli.testing reads SHMCLI_TEST_MODULE and SHMCLI_TEST_PRELOAD):
libasan must come first in the process, and `sanitizer_env()` gives both
variables.  Debian's Valkey 8 frees through jemalloc's sized free
(`sdallocx`), which ASan does not intercept, so a pointer from ASan's malloc
would reach jemalloc and crash the server at start; a three-line shim,
preloaded after libasan, sends `sdallocx` to ASan's free.  Redis 7.0 needs
nothing of the sort (it only calls malloc/free/realloc/calloc).  Debian links
both servers to a shared, unprefixed jemalloc, so the preloaded ASan serves
the whole server's heap; -DSHM_SANITIZE makes the module allocate through
libc too, for servers whose allocator ASan cannot see.

The compiler is `gcc`, or $CC_SANITIZE.  A missing compiler or runtime
raises ToolchainMissing: CI installs them, so the caller fails, never skips.

By hand:  .venv/bin/python tests/security/sanitized_build.py /tmp/shm-asan
prints the two `export` lines for a sanitized test run.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SANITIZE_FLAGS = ["-std=c11", "-O1", "-g", "-fno-omit-frame-pointer",
                  "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
                  "-D_GNU_SOURCE", "-DSHM_SANITIZE", "-shared", "-fPIC", "-pthread"]

SDALLOCX_SHIM = """\
/* Valkey frees with jemalloc's sdallocx; under a preloaded ASan the pointer
   came from ASan's malloc, so hand it back there. */
#include <stdlib.h>
void sdallocx(void *ptr, size_t size, int flags) { (void)size; (void)flags; free(ptr); }
"""


class ToolchainMissing(RuntimeError):
    pass


# ---- setup.py's MODULE list ----

def _evaluate(node: ast.expr, names: dict[str, object]) -> object:
    """The few expression forms setup.py uses for its source lists."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_evaluate(item, names) for item in node.elts]
    if isinstance(node, ast.Name) and node.id in names:
        return names[node.id]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _evaluate(node.left, names) + _evaluate(node.right, names)  # type: ignore[operator]
    if (isinstance(node, ast.Call) and ast.unparse(node.func) == "os.path.join"
            and not node.keywords):
        return os.path.join(*(_evaluate(arg, names) for arg in node.args))  # type: ignore[arg-type]
    if (isinstance(node, ast.ListComp) and len(node.generators) == 1
            and isinstance(node.generators[0].target, ast.Name)
            and not node.generators[0].ifs):
        loop = node.generators[0]
        return [_evaluate(node.elt, {**names, loop.target.id: value})  # type: ignore[union-attr]
                for value in _evaluate(loop.iter, names)]  # type: ignore[union-attr]
    raise ValueError(f"setup.py: cannot evaluate {ast.unparse(node)!r}")


def module_sources(root: Path = ROOT) -> list[Path]:
    """setup.py's MODULE: the C files of the Redis module, as absolute paths."""
    names: dict[str, object] = {}
    for node in ast.parse((root / "setup.py").read_text()).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)):
            try:
                names[node.targets[0].id] = _evaluate(node.value, names)
            except ValueError:
                if node.targets[0].id == "MODULE":
                    raise
    sources = names.get("MODULE")
    if not isinstance(sources, list) or not sources:
        raise ValueError("setup.py has no MODULE list of sources")
    return [root / str(source) for source in sources]


# ---- the toolchain ----

def gcc_path() -> str:
    gcc = os.environ.get("CC_SANITIZE", "gcc")
    try:
        subprocess.run([gcc, "--version"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ToolchainMissing(f"{gcc} is needed for the sanitized build: {exc}") from exc
    return gcc


def runtime_library(name: str) -> Path:
    """Where gcc's sanitizer runtime is (libasan.so, libubsan.so), resolved."""
    out = subprocess.run([gcc_path(), f"-print-file-name={name}"], capture_output=True,
                         text=True, check=True).stdout.strip()
    path = Path(out)
    if not path.is_absolute() or not path.exists():
        raise ToolchainMissing(f"gcc has no {name} (Debian: libasan8/libubsan1, which gcc "
                               "pulls in through libgcc-12-dev)")
    return path.resolve()


def compile_c(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"sanitized build failed: {' '.join(argv)}\n{result.stderr}")


def build_sanitized_module(tmpdir: str | os.PathLike[str], root: Path = ROOT) -> Path:
    """Compile the module with ASan+UBSan into tmpdir; return the .so's path."""
    out = Path(tmpdir) / "shm_module.so"
    compile_c([gcc_path(), *SANITIZE_FLAGS, "-o", str(out), *map(str, module_sources(root))])
    return out


def build_preload(tmpdir: str | os.PathLike[str]) -> str:
    """The server's LD_PRELOAD: libasan first, libubsan, then the sdallocx shim."""
    shim_c = Path(tmpdir) / "sdallocx_shim.c"
    shim_c.write_text(SDALLOCX_SHIM)
    shim = Path(tmpdir) / "sdallocx_shim.so"
    compile_c([gcc_path(), "-O1", "-shared", "-fPIC", "-o", str(shim), str(shim_c)])
    return " ".join(str(p) for p in (runtime_library("libasan.so"),
                                     runtime_library("libubsan.so"), shim))


def sanitizer_env(tmpdir: str | os.PathLike[str], root: Path = ROOT) -> dict[str, str]:
    """Build both and return the variables shmcli.testing reads."""
    return {"SHMCLI_TEST_MODULE": str(build_sanitized_module(tmpdir, root)),
            "SHMCLI_TEST_PRELOAD": build_preload(tmpdir)}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} DIRECTORY")
    Path(sys.argv[1]).mkdir(parents=True, exist_ok=True)
    for key, value in sanitizer_env(Path(sys.argv[1]).resolve()).items():
        print(f"export {key}='{value}'")
