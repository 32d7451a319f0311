"""The JupyterKernel manifest of a planned kernel launch: a pure function, no cluster.

:func:`.kernel_resource.plan_kernel` judges a launch and returns a
:class:`~.kernel_resource.KernelPlan`; :func:`build_kernel_manifest` turns that plan plus the
JupyterKernelTemplate into the JupyterKernel to create. The process proxy (:mod:`.launcher`), a
warm-pool claim (:mod:`.warm_pool`) and the ``kubeflow-launcher`` CLI call it; the operator then
builds the pod from the JupyterKernel (``operator/kernel_pod.py``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from elastic_jupyter import crds

from . import client_limits, kernel_resource
from .kernel_resource import GatewayRef, KernelPlan, KernelRequestError

Obj = dict[str, Any]


def default_pod_template() -> Obj:
    """The pod template used when a kernelspec names no JupyterKernelTemplate."""
    return {"metadata": {}, "spec": {"containers": [{"name": crds.KERNEL_CONTAINER_NAME}]}}


def _pod_template(template: Mapping[str, Any] | None, ref: tuple[str, str] | None) -> Obj:
    if template is None:
        return default_pod_template()
    where = f"JupyterKernelTemplate {ref[0]}/{ref[1]}" if ref else "the JupyterKernelTemplate"
    pod = (template.get("spec") or {}).get("template")
    if not isinstance(pod, Mapping):
        raise KernelRequestError(500, f"{where} has no spec.template: add a pod template")
    result: Obj = copy.deepcopy(dict(pod))
    spec = result.get("spec")
    if not isinstance(spec, dict) or not spec.get("containers"):
        raise KernelRequestError(
            500, f"{where} has no spec.template.spec.containers: add a container named kernel"
        )
    meta = result.get("metadata")
    result["metadata"] = dict(meta) if isinstance(meta, Mapping) else {}
    return result


def _merge_env(existing: Sequence[Any], ours: Sequence[tuple[str, str]]) -> list[Obj]:
    names = {name for name, _ in ours}
    kept = [dict(e) for e in existing if isinstance(e, Mapping) and e.get("name") not in names]
    return kept + [{"name": name, "value": value} for name, value in ours]


def _apply_identity(pod_spec: Obj, container: Obj, plan: KernelPlan) -> None:
    """Put the client's allowed uid, gid and service account into the pod template.

    The pod's ``securityContext`` gets ``runAsUser``/``runAsGroup``; a kernel container whose
    template sets them itself (which would win over the pod's) gets them too. Keys the plan
    does not set stay as the template has them.
    """
    ids = {"runAsUser": plan.run_as_user, "runAsGroup": plan.run_as_group}
    chosen = {k: v for k, v in ids.items() if v is not None}
    if chosen:
        pod_context = pod_spec.get("securityContext")
        pod_spec["securityContext"] = {
            **(pod_context if isinstance(pod_context, Mapping) else {}),
            **chosen,
        }
        own = container.get("securityContext")
        if isinstance(own, Mapping) and any(k in own for k in chosen):
            container["securityContext"] = {
                **own,
                **{k: v for k, v in chosen.items() if k in own},
            }
    if plan.service_account:
        pod_spec.pop("serviceAccount", None)  # the deprecated alias would contradict it
        pod_spec["serviceAccountName"] = plan.service_account


def _owned_by_gateway(metadata: Obj, gateway: GatewayRef) -> None:
    labels = metadata["labels"]
    if gateway.uid:  # ownership across namespaces (sweeps, adoption, the operator's clean-up)
        labels[crds.LABEL_GATEWAY_UID] = gateway.uid
    if gateway.uid and gateway.namespace == metadata["namespace"]:
        metadata["ownerReferences"] = [
            {
                "apiVersion": crds.API_VERSION,
                "kind": crds.JUPYTER_GATEWAY.kind,
                "name": gateway.name,
                "uid": gateway.uid,
                "controller": True,
            }
        ]


def _owned_by_notebook(metadata: Obj, pod: Obj, notebook: GatewayRef) -> None:
    """Direct mode: the notebook label and annotations instead of the gateway's, and an owner
    reference (not controller: the operator's own notebook objects are its controllers) when
    the kernel runs in the notebook's namespace and the notebook's uid is known."""
    for labels in (metadata["labels"], pod["metadata"]["labels"]):
        labels.pop(crds.LABEL_GATEWAY, None)
        labels[crds.LABEL_NOTEBOOK] = notebook.name
    annotations = metadata.setdefault("annotations", {})
    annotations[crds.ANNOTATION_NOTEBOOK_NAMESPACE] = notebook.namespace
    annotations[crds.ANNOTATION_NOTEBOOK_UID] = notebook.uid or ""
    if notebook.uid and notebook.namespace == metadata["namespace"]:
        metadata["ownerReferences"] = [
            {
                "apiVersion": crds.API_VERSION,
                "kind": crds.JUPYTER_NOTEBOOK.kind,
                "name": notebook.name,
                "uid": notebook.uid,
                "controller": False,
                "blockOwnerDeletion": False,
            }
        ]


def build_kernel_manifest(
    plan: KernelPlan, template: Mapping[str, Any] | None, gateway: GatewayRef
) -> Obj:
    """Return the JupyterKernel to create for ``plan`` from the JupyterKernelTemplate object.

    The pod template (its metadata labels and annotations included) comes from the template;
    the kernel labels are added to both the JupyterKernel and its pod template; the first
    container (or the one named ``kernel``) gets the image (none when neither the kernelspec
    nor the template names one: the operator then uses its default kernel image), the
    launcher's env and the resources; the client's allowed uid, gid and service account go
    into the pod template (:func:`_apply_identity`). The JupyterGateway becomes the owner
    when the kernel lives in its namespace and its uid is known (owner references cannot
    cross namespaces).
    """
    labels = dict(plan.labels)
    pod = _pod_template(template, plan.template)
    pod_labels = pod["metadata"].get("labels")
    pod["metadata"]["labels"] = {**(pod_labels if isinstance(pod_labels, Mapping) else {})}
    pod["metadata"]["labels"].update(labels)
    containers: list[Obj] = pod["spec"]["containers"]
    index = next(
        (i for i, c in enumerate(containers) if c.get("name") == crds.KERNEL_CONTAINER_NAME), 0
    )
    container = containers[index]
    # Image precedence: the kernelspec's (or an allowed client KERNEL_IMAGE), else the
    # template's; with neither, the operator puts its default kernel image on the pod.
    if plan.image:
        container["image"] = plan.image
    # The template's own limits are a maximum too (checked here: the plan has no template).
    caps = client_limits.maximum("the kernel template's limits", container.get("resources"))
    refusal = client_limits.resource_refusal(
        dict(plan.client_resources), caps, kernel_resource.quantity
    )
    if refusal:
        raise KernelRequestError(403, refusal)
    container["env"] = _merge_env(container.get("env") or [], plan.container_env)
    _apply_identity(pod["spec"], container, plan)
    if plan.resources:
        merged: Obj = copy.deepcopy(container.get("resources") or {})
        for kind, values in plan.resources.items():
            merged[kind] = {**(merged.get(kind) or {}), **values}
        container["resources"] = merged

    metadata: Obj = {"name": plan.name, "namespace": plan.namespace, "labels": labels}
    if plan.owner:
        metadata["annotations"] = {crds.ANNOTATION_CLIENT: plan.owner}
    spec: Obj = {
        "template": pod,
        "kernelId": plan.kernel_id,
        "kernelName": plan.kernelspec_name,
        "username": plan.username,
    }
    if gateway.is_notebook:
        _owned_by_notebook(metadata, pod, gateway)
    else:
        _owned_by_gateway(metadata, gateway)
        spec["gateway"] = {"name": gateway.name, "namespace": gateway.namespace}
    return {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_KERNEL.kind,
        "metadata": metadata,
        "spec": spec,
    }
