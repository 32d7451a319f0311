"""The whole elastic-jupyter stack for end-to-end tests: sandbox + real operator + example.

The sandbox (API server, kubelet, scheduler with 2 ``nvidia.com/gpu``, Deployments, Services)
comes from the session fixture ``sandbox`` of ``tests/conftest.py``; ``conftest.py`` adds a
namespace and the operator; the steps are :mod:`elastic_jupyter.harness.user_path` (shared with
``make demo``). This module says what is still missing for the full stack.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from elastic_jupyter import harness

ROOT = Path(__file__).resolve().parents[2]


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def missing_parts(gpu: bool = False) -> list[str]:
    """What the full stack still lacks in this work tree (empty when everything is there)."""
    missing = []
    for module, what in (
        ("elastic_jupyter.sandbox.cluster", "the sandbox cluster (sandbox/cluster.py)"),
        ("elastic_jupyter.operator.main", "the operator CLI (operator/main.py)"),
        ("elastic_jupyter.gateway_plugin.process_proxy", "the gateway's process proxy"),
        ("elastic_jupyter.kernel_launcher.cli", "the in-pod launcher CLI"),
    ):
        if not _importable(module):
            missing.append(what)
    if not shutil.which("kubectl"):
        missing.append("kubectl on PATH")
    examples = [ROOT / "examples" / "elastic"] + ([ROOT / "examples" / "gpu"] if gpu else [])
    for directory in examples:
        if not any(directory.glob("*.y*ml")):
            missing.append(f"the example manifests in {directory.relative_to(ROOT)}/")
    if not (ROOT / "tests" / "conftest.py").exists():
        missing.append("the sandbox fixtures (tests/conftest.py)")
    return missing


def skip_unless_built(gpu: bool = False) -> None:
    """Skip the test, naming what is missing, when the full stack is not built."""
    missing = missing_parts(gpu)
    if missing:
        pytest.skip("the full stack is not built yet: missing " + "; ".join(missing))


@contextlib.contextmanager
def operator_serving(
    sandbox: Any,
    namespace: str,
    log: Path,
    env: Mapping[str, str] | None = None,
    delete_namespace: bool = True,
) -> Iterator[harness.Kubectl]:
    """The real operator (as the admin unless ``env`` says otherwise) serving ``namespace``,
    created here and deleted afterwards (unless the whole sandbox goes anyway); yields kubectl
    in that namespace."""
    sandbox.create_namespace(namespace)
    try:
        env = sandbox.env() if env is None else env
        with harness.operator_process(env, log, "--namespace", namespace, *harness.NO_PORTS):
            yield harness.Kubectl(str(sandbox.kubeconfig), namespace)
    finally:
        if delete_namespace:
            sandbox.delete_namespace(namespace)


@contextlib.contextmanager
def example_up(
    kubectl: harness.Kubectl,
    log: Path,
    say: Callable[[str], None] = print,
    timeout_s: float = 120,
) -> Iterator[harness.UserPath]:
    """The elastic example applied and Running (gateway, kernelspec, template, notebook); its
    objects are deleted afterwards. When it does not come up, the operator's log is printed."""
    path = harness.UserPath(kubectl, say=say, timeout_s=timeout_s)
    try:
        path.apply_example()
    except Exception:
        print("operator log (tail):\n" + log.read_text(errors="replace")[-6000:])
        raise
    try:
        yield path
    finally:
        if path.channel is not None:
            path.channel.close()
        kinds = "jupyternotebooks,jupytergateways,jupyterkernels"
        kubectl.run("delete", kinds, "--all", "--wait=false", check=False)
