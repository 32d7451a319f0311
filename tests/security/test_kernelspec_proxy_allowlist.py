"""Attack: a tenant writes a JupyterKernelSpec with EG's ``LocalProcessProxy`` (its ``command``
runs inside the gateway pod, which holds the gateway token and service account), or plants a
ConfigMap with the kernelspec label for the gateway to serve. The operator refuses the class
(``Valid=False`` naming ``spec.className``) and renders nothing; the gateway serves only
ConfigMaps a JupyterKernelSpec owns, with an allowed process proxy.
"""

# The fixtures come from tenant_support (imported below), which ruff sees as redefined.
# ruff: noqa: F811

from __future__ import annotations

import json

from elastic_jupyter import crds
from elastic_jupyter.gateway_plugin import kernelspec_sync
from elastic_jupyter.sandbox.cluster import SandboxCluster
from tests.security.tenant_support import (  # noqa: F401 (fixtures)
    custom,
    exists,
    kubectl_apply,
    policy_operator,
    tenant_ns,
    wait_condition,
)

LOCAL = "enterprise_gateway.services.processproxies.processproxy.LocalProcessProxy"


def test_local_process_proxy_is_refused(sandbox: SandboxCluster, tenant_ns: str) -> None:
    kernelspec = {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_KERNEL_SPEC.kind,
        "metadata": {"name": "shell"},
        "spec": {"className": LOCAL, "command": ["sh", "-c", "cat /var/run/secrets/*/token"]},
    }
    kubectl_apply(sandbox, tenant_ns, kernelspec)
    path = custom(crds.JUPYTER_KERNEL_SPEC.plural, tenant_ns, "shell")
    cond = wait_condition(
        sandbox, path, crds.CONDITION_VALID, crds.REASON_PROCESS_PROXY_NOT_ALLOWED
    )
    assert cond["status"] == "False"
    assert "spec.className" in cond["message"] and "LocalProcessProxy" in cond["message"]
    assert not exists(sandbox, f"/api/v1/namespaces/{tenant_ns}/configmaps/shell")


def _planted(owner: bool, proxy: str | None) -> dict[str, object]:
    document: dict[str, object] = {"argv": ["sh"], "display_name": "x", "language": "sh"}
    if proxy:
        document["metadata"] = {"process_proxy": {"class_name": proxy}}
    metadata: dict[str, object] = {"name": "planted", "labels": {crds.LABEL_KERNELSPEC: "planted"}}
    if owner:
        metadata["ownerReferences"] = [
            {
                "apiVersion": crds.API_VERSION,
                "kind": crds.JUPYTER_KERNEL_SPEC.kind,
                "name": "planted",
                "uid": "u",
                "controller": True,
            }
        ]
    return {"metadata": metadata, "data": {"kernel.json": json.dumps(document)}}


def test_gateway_serves_only_kernelspec_owned_configmaps_with_allowed_proxies() -> None:
    allowed = kernelspec_sync.allowed_process_proxies({})
    ours = crds.DEFAULT_PROCESS_PROXY_CLASS
    assert kernelspec_sync.desired_files([_planted(True, ours)], [], allowed) == {
        "planted": _planted(True, ours)["data"]["kernel.json"]  # type: ignore[index]
    }
    # A labelled ConfigMap anyone could create: not served (the namespace has no kernelspec of a
    # JupyterKernelSpec, so the gateway serves only its built-in one).
    served = kernelspec_sync.desired_files([_planted(False, ours)], [], allowed)
    assert list(served) == [crds.BUILTIN_KERNELSPEC]
    # Defence in depth: even an owned one with a local (or no) process proxy is not served.
    assert kernelspec_sync.desired_files([_planted(True, LOCAL)], [], allowed) == {}
    assert kernelspec_sync.desired_files([_planted(True, None)], [], allowed) == {}
    relaxed = kernelspec_sync.allowed_process_proxies({"EJ_ALLOWED_PROCESS_PROXIES": LOCAL})
    assert set(kernelspec_sync.desired_files([_planted(True, LOCAL)], [], relaxed)) == {"planted"}
