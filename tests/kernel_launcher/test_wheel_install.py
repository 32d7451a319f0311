"""The built wheel, installed as in every image (not editable), started in the repository root.

Python puts the current directory first on ``sys.path`` for ``python -c`` and ``python -m``
(the kernel's ``python -m ipykernel_launcher`` too). Our top-level ``operator/`` folder must then
never stand in for the standard library's ``operator`` (``collections`` imports ``eq`` from
it): the folder has no ``__init__.py``, so from the repository root it is at most a namespace
portion, and a regular module anywhere on ``sys.path`` wins over it. Editable installs hide a
regression (their ``.pth`` finder imports the standard module at start-up), so this test builds
the wheel and installs it with ``--no-deps`` into a fresh venv, without system site-packages
(this machine's base Python imports ``operator`` at start-up as well). The kernel's own
dependencies (ipykernel, pycryptodomex) come from the kernel venv's site-packages through a
plain path entry, whose ``.pth`` files Python does not run.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kernel_launcher.conftest import (
    KERNEL_VENV,
    ROOT,
    StartLauncher,
    connect_client,
    execute,
    requires_kernel_venv,
)

pytestmark = [pytest.mark.slow, requires_kernel_venv]

SKIPPED_IN_COPY = (".venv", ".venv-kernel", ".git", ".typecheck", "build", "dist", ".sandbox")


def _base_python() -> str:
    """The interpreter the venvs were made from (a venv of a venv would inherit nothing, but
    this keeps the new venv's ``home`` plain)."""
    return str(getattr(sys, "_base_executable", sys.executable))


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv with only our wheel installed (plus a path entry to the kernel venv)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"  # building in place would leave build/ and *.egg-info behind
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(*SKIPPED_IN_COPY, "__pycache__", "*.egg-info", ".*_cache"),
    )
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"), "."],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if built.returncode != 0 and "No matching distribution" in built.stderr:
        pytest.skip(f"cannot fetch the build backend (offline?): {built.stderr.strip()[-300:]}")
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp / "dist").glob("elastic_jupyter-*.whl")
    venv = tmp / "venv"
    subprocess.run([_base_python(), "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q"]
    subprocess.run(
        [*pip, "--no-deps", "--no-index", str(wheel)],
        check=True,
        timeout=300,
    )
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    kernel_site = sysconfig.get_paths(vars={"base": str(KERNEL_VENV)})["purelib"]
    Path(site, "kernel-venv-deps.pth").write_text(kernel_site + "\n", encoding="utf-8")
    yield venv


def test_stdlib_operator_wins_in_the_repository_root(wheel_venv: Path) -> None:
    python = wheel_venv / "bin" / "python"
    probe = (
        "import collections, operator, elastic_jupyter.operator.kernel_pod as k;"
        "print(operator.__file__); print(k.__file__)"
    )
    done = subprocess.run(
        [str(python), "-c", probe], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    stdlib_operator, kernel_pod = done.stdout.split()
    assert Path(stdlib_operator).parent == Path(sysconfig.get_paths()["stdlib"])
    assert Path(kernel_pod).is_relative_to(wheel_venv)  # the wheel's copy, not the work tree


def test_kernel_launched_in_the_repository_root_runs(
    wheel_venv: Path, start_launcher: StartLauncher
) -> None:
    launched = start_launcher(
        command=[str(wheel_venv / "bin" / "kubeflow-kernel-launcher")], cwd=ROOT
    )
    client = connect_client(launched.info)
    try:
        reply, output = execute(
            client, "import collections, os, operator; print(os.getcwd(), operator.eq(6*7, 42))"
        )
    finally:
        client.stop_channels()
    assert reply["status"] == "ok", reply
    assert "".join(output).split() == [str(ROOT), "True"]
