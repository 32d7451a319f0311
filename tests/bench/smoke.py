"""Running a benchmark script the way its docs say, for the smoke tests of ``tests/bench``."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / ".venv-kernel" / "bin" / "kubeflow-kernel-launcher"
#: For the benchmarks whose kernels run the in-pod launcher from the kernel venv.
requires_launcher = pytest.mark.skipif(
    not LAUNCHER.exists(), reason=f"{LAUNCHER} missing: run `make venv` first"
)


def run_bench(script: str, *args: str, cwd: Path, timeout: float = 240) -> None:
    """``python bench/<script> <args>`` in ``cwd``; a failure shows the script's own output."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        output = (done.stdout + done.stderr)[-6000:]
        raise AssertionError(f"bench/{script} exited with {done.returncode}:\n{output}")


def load_bench(script: str) -> ModuleType:
    """Import ``bench/<script>`` (a script folder, not a package) under its own name."""
    name = Path(script).stem
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module
