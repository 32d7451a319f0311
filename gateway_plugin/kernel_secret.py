"""The per-kernel Secret: named exactly like its JupyterKernel, owned by it, written by the gateway.

One small module on purpose: everything the gateway keeps secret about one kernel lives in this
Secret under its own key (``connection-key``: the kernel's HMAC key; ``launch-args``: EG's
launch arguments, which carry the client's env and headers; other features add their own keys).
Writes are create-or-merge: :func:`put_kernel_secret` never removes a key it was not given, so
independent writers share the object. The JupyterKernel is the Secret's controller owner, so
deleting the kernel (shutdown, culling, the operator's clean-up) deletes the Secret with it.

RBAC: the gateway's service account needs ``secrets`` create, get and patch in each kernel
namespace (``operator/gateway_objects.py`` grants exactly that); nothing else reads these.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from elastic_jupyter import crds

from .kube import ApiError, KubeApi

Obj = dict[str, Any]


def secret_path(namespace: str, name: str | None = None) -> str:
    """REST path of the Secrets of ``namespace`` (or of one)."""
    path = f"/api/v1/namespaces/{quote(namespace, safe='')}/secrets"
    return path if name is None else f"{path}/{quote(name, safe='')}"


def _encoded(data: Mapping[str, str]) -> dict[str, str]:
    return {k: base64.b64encode(v.encode("utf-8")).decode("ascii") for k, v in data.items()}


def kernel_secret_manifest(
    namespace: str, kernel_name: str, kernel_uid: str, data: Mapping[str, str]
) -> Obj:
    """The Secret of JupyterKernel ``namespace/kernel_name`` (uid ``kernel_uid``) holding
    ``data`` (plain text values, base64-encoded here)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": kernel_name,
            "namespace": namespace,
            "labels": {
                crds.LABEL_MANAGED_BY: crds.MANAGED_BY,
                crds.LABEL_KERNEL: kernel_name,
            },
            "ownerReferences": [
                {
                    "apiVersion": crds.API_VERSION,
                    "kind": crds.JUPYTER_KERNEL.kind,
                    "name": kernel_name,
                    "uid": kernel_uid,
                    "controller": True,
                    "blockOwnerDeletion": False,
                }
            ],
        },
        "data": _encoded(data),
    }


def put_kernel_secret(
    api: KubeApi, namespace: str, kernel_name: str, kernel_uid: str, data: Mapping[str, str]
) -> None:
    """Create the kernel's Secret with ``data``, or merge ``data`` into the existing one (other
    keys are kept). Raises :class:`~.kube.ApiError`."""
    manifest = kernel_secret_manifest(namespace, kernel_name, kernel_uid, data)
    try:
        api.request("POST", secret_path(namespace), body=manifest, timeout=5.0)
        return
    except ApiError as err:
        if err.status != 409:
            raise
    api.request(
        "PATCH",
        secret_path(namespace, kernel_name),
        body={"data": manifest["data"]},
        content_type="application/merge-patch+json",
        timeout=5.0,
    )


def read_kernel_secret(api: KubeApi, namespace: str, kernel_name: str) -> dict[str, str] | None:
    """The decoded keys of the kernel's Secret; ``None`` when there is none."""
    try:
        obj = api.request("GET", secret_path(namespace, kernel_name), timeout=5.0)
    except ApiError as err:
        if err.status == 404:
            return None
        raise
    data = obj.get("data") or {}
    return {
        str(k): base64.b64decode(str(v)).decode("utf-8", "replace")
        for k, v in data.items()
        if isinstance(v, str)
    }
