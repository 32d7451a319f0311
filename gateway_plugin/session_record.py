"""A kernel session as stored on Kubernetes: pure functions, no Enterprise Gateway.

The non-secret part (kernel id, user, kernelspec, connection info without the key, the process
or provisioner info naming the JupyterKernel) is the JupyterKernel's annotation
``kubeflow.tkestack.io/kernel-session``; the HMAC key and the launch arguments are keys of the
kernel's Secret (:mod:`.kernel_secret`). The gateway's session store (:mod:`.session_store`)
and the kernel provisioner (direct mode) both write and read sessions with these functions.
"""

from __future__ import annotations

import json
from typing import Any

from elastic_jupyter import crds

Obj = dict[str, Any]

_SECRET_FIELDS = ("key",)


#: Key of the JupyterKernel's identity in EG's ``process_info`` and the provisioner's info.
KERNEL_RESOURCE_KEY = "kernel_resource"


def kernel_resource_record(namespace: str | None, name: str | None, uid: str) -> Obj:
    """The JupyterKernel a session runs in, as both front ends persist it (the process proxy's
    ``get_process_info``, the provisioner's ``get_provisioner_info``)."""
    return {
        "group": crds.GROUP,
        "version": crds.VERSION,
        "plural": crds.JUPYTER_KERNEL.plural,
        "namespace": namespace,
        "name": name,
        "uid": uid,
    }


def kernel_resource_of(info: Obj) -> tuple[str, str, str]:
    """(namespace, name, uid) of the JupyterKernel in persisted process/provisioner info."""
    resource = info.get(KERNEL_RESOURCE_KEY) or {}
    return (
        str(resource.get("namespace") or ""),
        str(resource.get("name") or ""),
        str(resource.get("uid") or ""),
    )


def session_annotation(session: Obj) -> str:
    """The non-secret part of an EG kernel session, as stored on the JupyterKernel."""
    info = {k: v for k, v in (session.get("connection_info") or {}).items() if k not in ("key",)}
    public = {
        "kernel_id": session.get("kernel_id"),
        "username": session.get("username"),
        "kernel_name": session.get("kernel_name"),
        "connection_info": info,
        "process_info": session.get("process_info") or {},
    }
    return json.dumps(public, sort_keys=True, default=str)


def session_secret_data(session: Obj) -> dict[str, str]:
    """The secret part of an EG kernel session: the HMAC key and the launch arguments."""
    key = (session.get("connection_info") or {}).get("key") or b""
    text = key.decode("utf-8") if isinstance(key, bytes) else str(key)
    return {
        crds.SESSION_SECRET_CONNECTION_KEY: text,
        crds.SESSION_SECRET_LAUNCH_ARGS: json.dumps(
            session.get("launch_args") or {}, sort_keys=True, default=str
        ),
    }


def session_from_parts(annotation: str, secret: dict[str, str]) -> Obj | None:
    """Rebuild EG's session dictionary from the annotation and the Secret; ``None`` if broken."""
    try:
        public = json.loads(annotation)
        launch_args = json.loads(secret.get(crds.SESSION_SECRET_LAUNCH_ARGS) or "{}")
    except ValueError:
        return None
    key = secret.get(crds.SESSION_SECRET_CONNECTION_KEY)
    if not isinstance(public, dict) or not public.get("kernel_id") or key is None:
        return None
    info = dict(public.get("connection_info") or {})
    info["key"] = key.encode("utf-8")
    return {
        "kernel_id": str(public["kernel_id"]),
        "username": str(public.get("username") or ""),
        "kernel_name": str(public.get("kernel_name") or ""),
        "connection_info": info,
        "launch_args": launch_args if isinstance(launch_args, dict) else {},
        "process_info": dict(public.get("process_info") or {}),
    }
