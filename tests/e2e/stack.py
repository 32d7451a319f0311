"""The whole elastic-jupyter stack for end-to-end tests: sandbox + real operator + example.

The sandbox (API server, kubelet, scheduler with 2 ``nvidia.com/gpu``, Deployments, Services)
comes from the session fixture ``sandbox`` of ``tests/conftest.py``; ``conftest.py`` adds a
namespace and the operator. This module loads the step library shared with ``make demo``
(``examples/demo_session.py``) and says what is still missing for the full stack.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load_demo_session() -> ModuleType:
    """Import ``examples/demo_session.py`` (the examples folder is not a package)."""
    name = "elastic_jupyter_demo_session"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / "demo_session.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their module while being built
    spec.loader.exec_module(module)
    return module


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
