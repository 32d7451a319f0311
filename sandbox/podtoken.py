"""A pod's service account credentials, as a kubelet mounts them.

A real kubelet asks the TokenRequest API for a token of the pod's ServiceAccount, bound to the
pod, and mounts it with ``ca.crt`` and ``namespace`` at
``/var/run/secrets/kubernetes.io/serviceaccount``. The sandbox kubelet does the same into
``<pod dir>/serviceaccount/`` (mapped to that mount path, see :mod:`.podenv`), and, since pod
processes reach the API server over plain HTTP rather than through the in-cluster Service,
writes ``<pod dir>/serviceaccount/kubeconfig`` with that token and points ``KUBECONFIG`` at it.

Nothing is mounted (no token, no kubeconfig, no ``KUBECONFIG``) when
``automountServiceAccountToken`` is false on the pod, or on the ServiceAccount with the pod
not saying otherwise. The token dies with the pod or the account (:mod:`.access`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from .kubeclient import ApiError, KubeClient, Obj, resource_path
from .kubeconfig import write_kubeconfig
from .podenv import ConfigError

MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"


class ApiEndpoint(Protocol):
    pod_api_url: str
    pod_api_ca: bytes


async def mount_service_account(
    client: KubeClient,
    pod: Obj,
    pod_dir: Path,
    owner: tuple[int | None, int | None],
    endpoint: ApiEndpoint,
) -> Path | None:
    """Write the pod's token files; returns the directory (``None``: no automount)."""
    meta = pod["metadata"]
    spec = pod.get("spec") or {}
    namespace = str(meta.get("namespace") or "default")
    account = str(spec.get("serviceAccountName") or "default")
    sa = await client.get_or_none(resource_path("v1", "serviceaccounts", namespace, account))
    if sa is None:
        raise ConfigError(
            f'serviceaccount "{account}" not found in namespace "{namespace}"',
            "CreateContainerConfigError",
        )
    automount = spec.get("automountServiceAccountToken")
    if automount is None:
        automount = sa.get("automountServiceAccountToken")
    if automount is False:
        return None
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "uid": meta.get("uid"),
            }
        },
    }
    path = resource_path("v1", "serviceaccounts", namespace, account, "token")
    try:
        answer = await client.request("POST", path, body=body)
    except ApiError as err:  # the pod or account went away meanwhile: retried like config
        raise ConfigError(
            f"requesting a token: {err.message}", "CreateContainerConfigError"
        ) from err
    token = str((answer.get("status") or {}).get("token") or "")
    target = pod_dir / "serviceaccount"
    target.mkdir(parents=True, exist_ok=True)
    target.chmod(0o755)
    uid, gid = owner
    # readable by the pod's user only when the kubelet can hand the files over (runs as root)
    mode = 0o600 if uid is not None else 0o644
    files = {"token": token, "namespace": namespace, "ca.crt": endpoint.pod_api_ca.decode()}
    for name, content in files.items():
        file = target / name
        file.write_text(content, encoding="utf-8")
        file.chmod(mode)
    write_kubeconfig(
        target / "kubeconfig",
        endpoint.pod_api_url or client.base_url,
        token,
        namespace=namespace,
        user=f"system:serviceaccount:{namespace}:{account}",
        mode=mode,
        ca_pem=endpoint.pod_api_ca,
    )
    if uid is not None:
        for name in (*files, "kubeconfig"):
            os.chown(target / name, uid, gid if gid is not None else 0)
    return target
