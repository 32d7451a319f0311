"""The whole elastic-jupyter stack for end-to-end tests: sandbox + real operator + example.

The sandbox (API server, kubelet, scheduler with 2 ``nvidia.com/gpu``, Deployments, Services)
comes from the session fixture ``sandbox`` of ``tests/conftest.py``; ``conftest.py`` adds a
namespace and the operator; the steps are :mod:`elastic_jupyter.harness.user_path` (shared with
``make demo``). This module says what is still missing for the full stack.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

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
