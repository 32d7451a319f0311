"""Live kernelspecs for a direct-mode notebook server (``provisioner/kernelspecs.py``).

Against the sandbox with the real operator rendering JupyterKernelSpecs into ConfigMaps, and the
manager running under the notebook's own ServiceAccount (the grants the operator gives a
direct-mode JupyterNotebook): what the server lists follows the JupyterKernelSpecs - added,
edited, deleted - without a restart, with the process proxy stanza renamed for the provisioner.
(jupyter_server 2 serving it over HTTP is ``tests/e2e/test_direct_mode.py``.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from elastic_jupyter import crds
from elastic_jupyter.operator.service_accounts import direct_notebook_kubeconfig
from elastic_jupyter.provisioner import kernelspecs
from elastic_jupyter.sandbox.cluster import SandboxCluster
from tests.helpers import wait_for

SPECS = "/apis/{g}/{v}/namespaces/{ns}/jupyterkernelspecs"


def kernelspec(name: str, display: str) -> dict[str, Any]:
    return {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_KERNEL_SPEC.kind,
        "metadata": {"name": name},
        "spec": {
            "language": "python",
            "displayName": display,
            "image": "ghcr.io/elastic-jupyter/kernel-py:0.1.0",
            # the seed's class name and argv
            "className": "enterprise_gateway.services.processproxies.kubeflow.KubeflowProcessProxy",
            "command": [
                "kubeflow-launcher",
                "--RemoteProcessProxy.kernel-id",
                "{kernel_id}",
                "--RemoteProcessProxy.port-range",
                "{port_range}",
                "--RemoteProcessProxy.response-address",
                "{response_address}",
                "--RemoteProcessProxy.public-key",
                "{public_key}",
            ],
        },
    }


def specs_path(namespace: str) -> str:
    return SPECS.format(g=crds.GROUP, v=crds.VERSION, ns=namespace)


@pytest.fixture
def manager_env(
    sandbox: SandboxCluster, op_namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    kubeconfig = direct_notebook_kubeconfig(sandbox, op_namespace, "nb")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv(kernelspecs.NAMESPACE_ENV, op_namespace)
    monkeypatch.setenv(kernelspecs.DIR_ENV, str(tmp_path))
    monkeypatch.delenv(kernelspecs.KERNELS_ENV, raising=False)
    yield op_namespace


def listed(manager: kernelspecs.DirectKernelSpecManager) -> dict[str, dict[str, Any]]:
    out = {}
    for name, directory in manager.find_kernel_specs().items():
        out[name] = json.loads((Path(directory) / "kernel.json").read_text())
    return out


def test_kernelspecs_follow_the_namespace_live(sandbox: SandboxCluster, manager_env: str) -> None:
    namespace = manager_env
    manager = kernelspecs.DirectKernelSpecManager()
    try:
        # nothing in the namespace yet: the built-in Python kernelspec, for the provisioner
        builtin = listed(manager)
        assert list(builtin) == [crds.BUILTIN_KERNELSPEC]
        stanza = builtin[crds.BUILTIN_KERNELSPEC]["metadata"]
        assert "process_proxy" not in stanza
        assert stanza["kernel_provisioner"]["provisioner_name"] == "kubeflow-provisioner"

        sandbox.request("POST", specs_path(namespace), kernelspec("py-a", "Python A"))
        wait_for(lambda: "py-a" in listed(manager), 20, 0.1, "py-a listed")
        spec = listed(manager)["py-a"]
        assert spec["display_name"] == "Python A"
        assert spec["argv"][:3] == [
            "kubeflow-launcher",
            "--RemoteProcessProxy.kernel-id",
            "{kernel_id}",
        ]
        provisioner = spec["metadata"]["kernel_provisioner"]
        assert provisioner["provisioner_name"] == "kubeflow-provisioner"
        assert provisioner["config"]["image_name"] == "ghcr.io/elastic-jupyter/kernel-py:0.1.0"
        assert "process_proxy" not in spec["metadata"]
        assert crds.BUILTIN_KERNELSPEC not in listed(manager)

        # edited, then deleted: visible without restarting anything
        patch = json.dumps({"spec": {"displayName": "Python A, edited"}})
        sandbox.kubectl("patch", "-n", namespace, "jks", "py-a", "--type=merge", "-p", patch)
        wait_for(
            lambda: listed(manager).get("py-a", {}).get("display_name") == "Python A, edited",
            20,
            0.1,
            "the edit listed",
        )
        sandbox.request("DELETE", f"{specs_path(namespace)}/py-a")
        wait_for(lambda: "py-a" not in listed(manager), 20, 0.1, "py-a gone")
    finally:
        manager.stop_mirror()


def test_only_the_selected_kernelspecs_are_served(
    sandbox: SandboxCluster, manager_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespace = manager_env
    monkeypatch.setenv(kernelspecs.KERNELS_ENV, "chosen")
    for name in ("chosen", "other"):
        sandbox.request("POST", specs_path(namespace), kernelspec(name, name))
    manager = kernelspecs.DirectKernelSpecManager()
    try:
        wait_for(lambda: list(listed(manager)) == ["chosen"], 20, 0.1, "only the chosen one")
    finally:
        manager.stop_mirror()
