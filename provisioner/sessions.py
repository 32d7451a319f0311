"""Direct-mode kernel sessions on the JupyterKernel, written and read like the gateway's.

The kernel session (kernel id, kernelspec, connection info, the JupyterKernel's identity) is
stored with the gateway's own functions (``gateway_plugin/session_record.py``): the
annotation ``kubeflow.tkestack.io/kernel-session`` plus the key ``connection-key`` of the
kernel's Secret. jupyter_server's session (path, name, type: what ``/api/sessions`` lists) is
the annotation ``kubeflow.tkestack.io/notebook-session``, written when the session is created.
All blocking: callers run them on the API thread pool.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from elastic_jupyter import crds
from elastic_jupyter.gateway_plugin.kernel_secret import put_kernel_secret, read_kernel_secret
from elastic_jupyter.gateway_plugin.kube import KubeApi, kernels_path
from elastic_jupyter.gateway_plugin.session_record import (
    session_annotation,
    session_from_parts,
    session_secret_data,
)

Obj = dict[str, Any]

#: The fields of a jupyter_server session kept on the JupyterKernel.
NOTEBOOK_SESSION_FIELDS = ("id", "path", "name", "type")


def kernel_session(
    kernel_id: str, kernel_name: str, connection_info: Mapping[str, Any], identity: Obj
) -> Obj:
    """A kernel session in the gateway's (EG's) shape; ``process_info`` holds the provisioner
    info that names the JupyterKernel."""
    return {
        "kernel_id": kernel_id,
        "username": "",
        "kernel_name": kernel_name,
        "connection_info": dict(connection_info),
        "launch_args": {},
        "process_info": identity,
    }


def _annotate(api: KubeApi, namespace: str, name: str, annotations: Mapping[str, str]) -> None:
    api.request(
        "PATCH",
        kernels_path(namespace, name),
        body={"metadata": {"annotations": dict(annotations)}},
        content_type="application/merge-patch+json",
        timeout=5.0,
    )


def save_kernel_session(
    api: KubeApi,
    namespace: str,
    name: str,
    uid: str,
    session: Obj,
    notebook: Mapping[str, Any] | None = None,
) -> None:
    """The key into the kernel's Secret first, then the annotation: an annotation always means
    a complete session (as in the gateway's store). ``notebook``: the jupyter_server session
    of a restarted kernel, carried over to its new JupyterKernel."""
    put_kernel_secret(api, namespace, name, uid, session_secret_data(session), exists=True)
    annotations = {crds.ANNOTATION_KERNEL_SESSION: session_annotation(session)}
    if notebook is not None:
        annotations[crds.ANNOTATION_NOTEBOOK_SESSION] = notebook_session_annotation(notebook)
    _annotate(api, namespace, name, annotations)


def notebook_session_annotation(model: Mapping[str, Any]) -> str:
    """jupyter_server's session model, the fields a restarted server needs."""
    return json.dumps({k: model.get(k) for k in NOTEBOOK_SESSION_FIELDS}, sort_keys=True)


def save_notebook_session(
    api: KubeApi, namespace: str, name: str, model: Mapping[str, Any]
) -> None:
    _annotate(
        api, namespace, name, {crds.ANNOTATION_NOTEBOOK_SESSION: notebook_session_annotation(model)}
    )


def notebook_session(obj: Obj) -> Obj | None:
    """The jupyter_server session stored on a JupyterKernel, if any."""
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(
        crds.ANNOTATION_NOTEBOOK_SESSION
    )
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) and value.get("path") is not None else None


def load_kernel_session(api: KubeApi, obj: Obj) -> Obj | None:
    """The kernel session of a JupyterKernel (its annotation + one Secret GET); ``None`` when
    it has none or it is broken."""
    meta = obj.get("metadata") or {}
    text = (meta.get("annotations") or {}).get(crds.ANNOTATION_KERNEL_SESSION)
    if not text:
        return None
    secret = read_kernel_secret(api, str(meta.get("namespace")), str(meta.get("name")))
    return session_from_parts(text, secret) if secret is not None else None
