"""Every example applies to the sandbox and comes up under the real operator.

``examples/elastic`` is exercised in depth by ``tests/operator/test_gateway_notebook_e2e.py``;
here every example folder (elastic included) is applied unchanged, in its own namespace, and
checked: its gateways run and serve exactly the kernelspecs the example declares, its
notebooks run, and the original's field names survive the CRD schemas (nothing pruned).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from elastic_jupyter import crds
from elastic_jupyter.sandbox.cluster import SandboxCluster
from tests.examples import support
from tests.helpers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.kubectl]

EXAMPLES = support.REPO / "examples"
FOLDERS = sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir() and any(p.glob("*.yaml")))
PLURALS = {names.kind: names.plural for names in crds.ALL_KINDS}


def manifests(folder: str) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((EXAMPLES / folder).glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def test_the_examples_cover_the_original_scenarios() -> None:
    assert {"elastic", "custom-kernels", "gpu", "notebook-only", "direct"} <= set(FOLDERS)
    gpu = manifests("gpu")
    template = next(d for d in gpu if d["kind"] == "JupyterKernelTemplate")
    limits = template["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == 1
    only = manifests("notebook-only")
    assert [d["kind"] for d in only] == ["JupyterNotebook"]
    assert "gateway" not in only[0]["spec"]
    direct = manifests("direct")
    notebook = next(d for d in direct if d["kind"] == "JupyterNotebook")
    assert notebook["spec"]["kernels"]["mode"] == "Direct" and "gateway" not in notebook["spec"]
    assert not any(d["kind"] == "JupyterGateway" for d in direct)


@pytest.fixture(scope="module")
def operator(sandbox: SandboxCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    with support.running_operator(sandbox, "ejex-*", log):
        yield log


@pytest.fixture(scope="module")
def applied(sandbox: SandboxCluster, operator: Path) -> Iterator[dict[str, str]]:
    """Every example folder applied with ``kubectl apply -f`` in its own namespace."""
    namespaces = {}
    for folder in FOLDERS:
        namespace = support.new_namespace(sandbox, "ejex")
        sandbox.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / folder))
        namespaces[folder] = namespace
    yield namespaces
    for namespace in namespaces.values():
        sandbox.delete_namespace(namespace)


@pytest.mark.parametrize("folder", FOLDERS)
def test_example_comes_up(
    sandbox: SandboxCluster, operator: Path, applied: dict[str, str], folder: str
) -> None:
    namespace = applied[folder]
    docs = manifests(folder)
    # The original field names are kept: what was applied is what is stored.
    for doc in docs:
        stored = support.custom(sandbox, PLURALS[doc["kind"]], namespace, doc["metadata"]["name"])
        for key, value in doc["spec"].items():
            assert stored["spec"][key] == value, (doc["kind"], key)

    def phase(doc: dict[str, Any]) -> str:
        obj = support.custom(sandbox, PLURALS[doc["kind"]], namespace, doc["metadata"]["name"])
        return str((obj.get("status") or {}).get("phase"))

    kernelspecs = sorted(d["metadata"]["name"] for d in docs if d["kind"] == "JupyterKernelSpec")
    for doc in docs:
        if doc["kind"] not in ("JupyterGateway", "JupyterNotebook"):
            continue
        try:
            wait_for(lambda doc=doc: phase(doc) == "Running", 60, 0.25, f"{doc['kind']} Running")
        except AssertionError as error:
            raise AssertionError(f"{error}\noperator log:\n{support.tail(operator)}") from None
        if doc["kind"] == "JupyterGateway":
            name = doc["metadata"]["name"]
            token = support.secret_value(sandbox, namespace, crds.gateway_auth_secret_name(name))
            url = support.service_url(sandbox, namespace, name) + "/api/kernelspecs"

            def served(url: str = url, token: str = token) -> list[str]:
                status, body = support.http_get(url, token)
                return sorted(body["kernelspecs"]) if status == 200 else []

            wait_for(lambda: served() == kernelspecs, 10, 0.2, f"{name} serving {kernelspecs}")
