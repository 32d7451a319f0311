"""The same launcher runs other kernels, and runs on Python 3.9."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import (
    KERNEL_PYTHON,
    ROOT,
    StartLauncher,
    connect_client,
    execute,
    launcher_tree,
    requires_kernel_venv,
)

PYTHON39 = Path("/root/.pyenv/versions/3.9.18/bin/python")
requires_python39 = pytest.mark.skipif(
    not PYTHON39.exists(), reason=f"{PYTHON39} is missing, so 3.9 compatibility is not proven"
)
BASH_ARGV = [str(KERNEL_PYTHON), "-m", "bash_kernel", "-f", "{connection_file}"]


def _echo_hi(info: dict[str, object]) -> None:
    client = connect_client(info)
    try:
        reply, outputs = execute(client, "echo hi")
        assert reply["status"] == "ok"
        assert "".join(outputs).strip() == "hi"
    finally:
        client.stop_channels()


@requires_kernel_venv
@pytest.mark.slow
def test_bash_kernel_through_kernel_argv_env(start_launcher: StartLauncher) -> None:
    launched = start_launcher(env={"KERNEL_ARGV": json.dumps(BASH_ARGV)})
    _echo_hi(launched.info)
    assert "-m bash_kernel -f" in launched.log


@requires_python39
def test_launcher_sources_compile_and_help_runs_on_python39(tmp_path: Path) -> None:
    sources = sorted(str(p) for p in (ROOT / "kernel_launcher").glob("*.py"))
    compile_all = "import sys\nfor p in sys.argv[1:]: compile(open(p).read(), p, 'exec')"
    subprocess.run([str(PYTHON39), "-c", compile_all, *sources], check=True, timeout=60)
    # --help without pycryptodomex installed: the crypto import is lazy.
    tree = launcher_tree(tmp_path, with_crypto=False)
    result = subprocess.run(
        [str(PYTHON39), "-m", "elastic_jupyter.kernel_launcher", "--help"],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "--RemoteProcessProxy.public-key" in result.stdout


@requires_python39
@requires_kernel_venv
@pytest.mark.slow
def test_python39_launcher_end_to_end(start_launcher: StartLauncher, tmp_path: Path) -> None:
    tree = launcher_tree(tmp_path, with_crypto=True)
    launched = start_launcher(
        "--",
        *BASH_ARGV,
        command=[str(PYTHON39), "-m", "elastic_jupyter.kernel_launcher"],
        env={"PYTHONPATH": str(tree)},
    )
    _echo_hi(launched.info)
    assert sys.version_info[:2] != (3, 9)  # the test process itself is the gateway side
