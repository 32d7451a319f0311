"""The import layering of docs/architecture.md, read from the source with ``ast`` (no import runs).

* ``kernel_launcher`` (inside every kernel image) imports nothing of ours, and nothing outside
  the standard library but pycryptodomex (``Cryptodome``).
* ``crds`` imports no other part: both sides import it.
* ``gateway_plugin`` and ``operator`` never import each other.
* ``sandbox`` and the product never import each other.
* ``harness`` (demo, e2e, benchmarks) may import anything; no product part imports it.
* ``provisioner`` (direct mode) imports ``crds`` and only the gateway plugin's core modules
  (``GATEWAY_CORE``), which import no Enterprise Gateway or tornado at module level and only
  each other; nothing of the product imports ``provisioner``.
* ``tests/`` and ``bench/`` may import anything.

Every import statement counts, at module level or inside a function, absolute or relative.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "elastic_jupyter"
PARTS = (
    "crds",
    "gateway_plugin",
    "operator",
    "kernel_launcher",
    "sandbox",
    "harness",
    "provisioner",
)
PRODUCT = ("crds", "gateway_plugin", "operator", "kernel_launcher", "provisioner")

#: For each part, the parts of ours it must not import.
FORBIDDEN: dict[str, set[str]] = {
    "kernel_launcher": set(PARTS) - {"kernel_launcher"},
    "crds": set(PARTS) - {"crds"},
    "gateway_plugin": {"operator", "sandbox", "harness", "provisioner"},
    "operator": {"gateway_plugin", "sandbox", "harness", "provisioner"},
    "sandbox": set(PRODUCT) | {"harness"},
    "harness": set(),
    "provisioner": {"operator", "sandbox", "harness", "kernel_launcher"},
}
#: The gateway plugin's modules both front ends share (the provisioner may import these only).
GATEWAY_CORE = frozenset(
    {
        "api_retry",
        "client_limits",
        "comm_port",
        "kernel_manifest",
        "kernel_resource",
        "kernel_secret",
        "kernel_watch",
        "kernelspec_mirror",  # the kernelspec ConfigMaps → a directory (live kernelspecs)
        "kube",
        "launcher",
        "launcher_cli",
        "response_listener",
        "session_record",
        "settings",
    }
)
#: What the shared core must not import at module level (it runs without a gateway).
GATEWAY_ONLY = ("enterprise_gateway", "tornado", "jupyter_server", "jupyter_client")
#: Outside the standard library, what kernel images are promised to have for the launcher.
LAUNCHER_THIRD_PARTY = {"Cryptodome"}
#: The kernel-side entry point of a warm-pool kernel runs *as* the ipykernel process (only for
#: kernelspecs whose kernel is ipykernel), so it alone may import ipykernel.
KERNEL_SIDE_THIRD_PARTY = {"kernel_launcher/warm_kernel.py": {"ipykernel"}}


def imported_modules(path: Path, part: str, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``, a module of ``part``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    # The package a relative import starts from: the module's own (``__init__`` or not).
    package = [PACKAGE, part, *path.relative_to(root / part).parts[:-1]]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            # ``from .x``: the module's package; each further dot goes one package up.
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module = ".".join(filter(None, [base, node.module or ""]))
            if node.module is None or module == PACKAGE:
                # ``from . import x`` / ``from elastic_jupyter import crds``: x is a module.
                for alias in node.names:
                    yield node.lineno, f"{module}.{alias.name}"
            else:
                yield node.lineno, module


def our_part(module: str) -> str | None:
    """The part of ours that ``module`` belongs to, or None for anything else."""
    bits = module.split(".")
    if bits[0] == PACKAGE and len(bits) > 1 and bits[1] in PARTS:
        return bits[1]
    return None


def violations(root: Path = ROOT) -> list[str]:
    """Every import that breaks the layering, as ``path:line: part imports module``."""
    found = []
    for part, forbidden in FORBIDDEN.items():
        folder = root / part
        for path in sorted(folder.rglob("*.py")):
            for line, module in imported_modules(path, part, root):
                target = our_part(module)
                where = f"{path.relative_to(root)}:{line}"
                if target in forbidden:
                    found.append(f"{where}: {part} imports {module}")
                elif part == "kernel_launcher" and target is None:
                    top = module.split(".")[0]
                    allowed = LAUNCHER_THIRD_PARTY | KERNEL_SIDE_THIRD_PARTY.get(
                        str(path.relative_to(root)), set()
                    )
                    if top not in sys.stdlib_module_names and top not in allowed:
                        found.append(f"{where}: kernel_launcher imports {module}")
    return found


def test_every_part_keeps_to_its_layer() -> None:
    assert violations() == []


def gateway_modules_of(path: Path, part: str, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """(line, module name) of every ``elastic_jupyter.gateway_plugin.<module>`` ``path``
    imports (``from elastic_jupyter.gateway_plugin import x`` counts as module ``x``)."""
    prefix = f"{PACKAGE}.gateway_plugin"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == prefix and not node.level:
            for alias in node.names:
                yield node.lineno, alias.name
    for line, module in imported_modules(path, part, root):
        if module.startswith(prefix + "."):
            yield line, module[len(prefix) + 1 :].split(".")[0]


def core_violations(root: Path = ROOT) -> list[str]:
    """The provisioner importing a non-core gateway module; a core module importing EG,
    tornado or jupyter at module level, or a gateway module that is not core."""
    found = []
    for path in sorted((root / "provisioner").rglob("*.py")):
        for line, name in gateway_modules_of(path, "provisioner", root):
            if name not in GATEWAY_CORE:
                found.append(f"{path.relative_to(root)}:{line}: provisioner imports {name}")
    for name in sorted(GATEWAY_CORE):
        path = root / "gateway_plugin" / f"{name}.py"
        if not path.exists():
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in tree.body:  # module level only: imports inside functions run on demand
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            if isinstance(node, ast.ImportFrom) and node.level:
                mods = [f"{PACKAGE}.gateway_plugin.{node.module or a.name}" for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mods = [node.module or ""]
            else:
                mods = [a.name for a in node.names]
            for module in mods:
                where = f"{path.relative_to(root)}:{node.lineno}"
                if module.split(".")[0] in GATEWAY_ONLY:
                    found.append(f"{where}: core module imports {module}")
                prefix = f"{PACKAGE}.gateway_plugin."
                if module.startswith(prefix) and module[len(prefix) :] not in GATEWAY_CORE:
                    found.append(f"{where}: core module imports {module}")
    return found


def test_the_shared_core_runs_without_a_gateway() -> None:
    assert core_violations() == []
    assert all((ROOT / "gateway_plugin" / f"{m}.py").exists() for m in GATEWAY_CORE)


@pytest.mark.parametrize(
    ("folder", "source", "expected"),
    [
        ("provisioner", "from elastic_jupyter.gateway_plugin import process_proxy\n", "imports"),
        ("provisioner", "from elastic_jupyter.gateway_plugin.adoption import x\n", "imports"),
        ("gateway_plugin", "from tornado import web\n", "core module imports tornado"),
        ("gateway_plugin", "from .session_store import x\n", "session_store"),
    ],
)
def test_a_core_crossing_is_reported(
    tmp_path: Path, folder: str, source: str, expected: str
) -> None:
    (tmp_path / "provisioner").mkdir()
    (tmp_path / "gateway_plugin").mkdir()
    name = "bad.py" if folder == "provisioner" else "kube.py"
    (tmp_path / folder / name).write_text(source, encoding="utf-8")
    found = core_violations(tmp_path)
    assert len(found) == 1 and expected in found[0], found


def test_the_parts_exist() -> None:
    """The rules name real folders (a renamed part would make them vacuous)."""
    for part in PARTS:
        assert list((ROOT / part).glob("*.py")), f"{part}/ has no Python modules"


@pytest.mark.parametrize(
    ("part", "source", "expected"),
    [
        ("gateway_plugin", "from elastic_jupyter.operator import main\n", "imports"),
        ("operator", "from elastic_jupyter import gateway_plugin\n", "imports"),
        ("operator", "def f():\n    import elastic_jupyter.sandbox.cluster\n", "imports"),
        ("sandbox", "from elastic_jupyter.crds import GROUP\n", "imports"),
        ("crds", "import elastic_jupyter.harness\n", "imports"),
        ("kernel_launcher", "import yaml\n", "kernel_launcher imports yaml"),
        ("kernel_launcher", "from elastic_jupyter.crds import GROUP\n", "imports"),
    ],
)
def test_a_crossing_import_is_reported(
    tmp_path: Path, part: str, source: str, expected: str
) -> None:
    (tmp_path / part).mkdir()
    (tmp_path / part / "bad.py").write_text(source, encoding="utf-8")
    found = violations(tmp_path)
    assert len(found) == 1 and expected in found[0], found


def test_allowed_imports_are_not_reported(tmp_path: Path) -> None:
    sources = {
        "operator": "from elastic_jupyter import crds\nimport operator\n",
        "gateway_plugin": "from elastic_jupyter.crds import GROUP\n",
        "kernel_launcher": "import json\nfrom Cryptodome.Cipher import AES\n",
        "harness": "from elastic_jupyter.sandbox.cluster import SandboxCluster\n",
    }
    for part, source in sources.items():
        (tmp_path / part).mkdir()
        (tmp_path / part / "ok.py").write_text(source, encoding="utf-8")
    assert violations(tmp_path) == []


def test_relative_imports_resolve_to_their_part(tmp_path: Path) -> None:
    module = ROOT / "kernel_launcher" / "cli.py"
    names = {name for _, name in imported_modules(module, "kernel_launcher")}
    assert "elastic_jupyter.kernel_launcher.errors" in names
