"""Create one kernel's JupyterKernel: the code both the process proxy and the CLI run.

:func:`create_kernel` is synchronous on purpose: the CLI calls it directly, the process proxy
calls it on the API client's thread pool (``await api.run(create_kernel, ...)``), so the one
path that reads the template, builds the manifest and creates the object is shared and
Enterprise Gateway's loop is never blocked by it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from elastic_jupyter import crds

from . import kernel_secret
from .api_retry import create_once, retrying
from .kernel_manifest import build_kernel_manifest
from .kernel_resource import (
    GatewayRef,
    KernelPlan,
    KernelRequestError,
    LaunchInput,
    new_name_suffix,
    plan_kernel,
)
from .kube import ApiError, KubeApi, gateways_path, kernels_path, templates_path
from .settings import GatewaySettings

Obj = dict[str, Any]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Created:
    """The JupyterKernel that was created, and where the time went (milliseconds)."""

    plan: KernelPlan
    manifest: Obj
    obj: Obj
    template_ms: float
    build_ms: float
    create_ms: float

    @property
    def uid(self) -> str:
        return str((self.obj.get("metadata") or {}).get("uid") or "")


def gateway_ref(api: KubeApi, settings: GatewaySettings) -> GatewayRef:
    """Look up this gateway's JupyterGateway reference (one GET; blocking).

    The CLI calls it once per kernel; a running gateway looks it up once and keeps it
    (:meth:`.gateway_runtime.GatewayRuntime.gateway_ref`). A gateway started without a
    JupyterGateway object (plain EG, tests) has no uid: its kernels then get no owner reference.
    """
    namespace, name = settings.gateway_namespace, settings.gateway_name
    try:
        obj = retrying(lambda: api.request("GET", gateways_path(namespace, name), timeout=5.0))
        uid = str((obj.get("metadata") or {}).get("uid") or "") or None
    except ApiError as err:
        if not (err.denied or err.not_found):
            raise
        log.info(
            "No JupyterGateway %s/%s (%s): kernels get no owner reference",
            namespace,
            name,
            err.reason,
        )
        uid = None
    return GatewayRef(name=name, namespace=namespace, uid=uid)


def read_template(api: KubeApi, ref: tuple[str, str]) -> Obj:
    """Get a JupyterKernelTemplate; a missing one is a clear 500 naming the kernelspec fix."""
    namespace, name = ref
    try:
        return retrying(lambda: api.request("GET", templates_path(namespace, name), timeout=5.0))
    except ApiError as err:
        if err.not_found:
            raise KernelRequestError(
                500,
                f"JupyterKernelTemplate {namespace}/{name} not found: create it, or fix "
                "--kernel-template-name/--kernel-template-namespace in the kernelspec "
                "(JupyterKernelSpec spec.template)",
            ) from None
        raise KernelRequestError(
            500, f"cannot read JupyterKernelTemplate {namespace}/{name}: {err}"
        ) from None


def _build(
    plan: KernelPlan, template: Obj | None, gateway: GatewayRef, launch_token: str | None
) -> Obj:
    manifest = build_kernel_manifest(plan, template, gateway)
    if launch_token:  # the operator mounts the kernel's Secret into the pod
        annotations = manifest["metadata"].setdefault("annotations", {})
        annotations[crds.ANNOTATION_KERNEL_SECRET] = crds.kernel_secret_name(plan.name)
    return manifest


def create_kernel(
    api: KubeApi,
    settings: GatewaySettings,
    inp: LaunchInput,
    launch_token: str | None = None,
    gateway_of: Callable[[], GatewayRef] | None = None,
) -> Created:
    """Plan, build and create the JupyterKernel for one launch (blocking; see module doc).

    With ``launch_token``, the kernel's Secret holding it is created right after the
    JupyterKernel (its owner; the pod waits for the Secret as kubelets do for mounts).
    ``gateway_of`` returns the JupyterGateway reference (the proxy passes its runtime's cached
    one); without it, it is looked up.
    """
    started = time.perf_counter()
    plan = plan_kernel(inp, settings)
    template = read_template(api, plan.template) if plan.template else None
    gateway = gateway_of() if gateway_of is not None else gateway_ref(api, settings)
    fetched = time.perf_counter()
    manifest = _build(plan, template, gateway, launch_token)
    built = time.perf_counter()
    for attempt in range(3):
        try:
            # 5xx/429 and refused connections are retried; a create that landed before its
            # answer was lost is recognised by its kernel id (see api_retry)
            obj = create_once(
                api,
                kernels_path(plan.namespace),
                manifest,
                _same_kernel(plan.kernel_id),
            )
            break
        except ApiError as err:
            if err.conflict and attempt < 2:  # a name suffix collided: draw another
                plan = plan_kernel(replace(inp, name_suffix=new_name_suffix()), settings)
                manifest = _build(plan, template, gateway, launch_token)
                continue
            if err.status == 0:
                raise KernelRequestError(
                    503, f"the Kubernetes API server is unreachable: {err.message}"
                ) from None
            if err.status == 403:
                raise KernelRequestError(
                    403,
                    f"this gateway may not create JupyterKernels in namespace {plan.namespace}: "
                    "its service account needs a Role there (see "
                    f"elastic_jupyter.gateway_plugin.kernel_watch): {err.message}",
                ) from None
            raise KernelRequestError(
                500,
                f"cannot create JupyterKernel {plan.namespace}/{plan.name}: "
                f"{err.reason}: {err.message}",
            ) from None
    if launch_token:
        try:
            retrying(lambda: kernel_secret.create_secret(api, obj, launch_token))
        except ApiError as err:
            delete_kernel(api, plan.namespace, plan.name)
            raise KernelRequestError(
                403 if err.status == 403 else 500,
                f"cannot create the kernel's Secret {plan.namespace}/{plan.name}: {err.reason}: "
                f"{err.message} (the gateway's Role needs secrets create in {plan.namespace})",
            ) from None
    done = time.perf_counter()
    return Created(
        plan=plan,
        manifest=manifest,
        obj=obj,
        template_ms=(fetched - started) * 1000,
        build_ms=(built - fetched) * 1000,
        create_ms=(done - built) * 1000,
    )


def _same_kernel(kernel_id: str) -> Callable[[Obj], bool]:
    return lambda found: plan_kernel_id(found) == kernel_id


def plan_kernel_id(obj: Obj) -> str:
    """The Enterprise Gateway kernel id a JupyterKernel (or its manifest) is for."""
    return str((obj.get("spec") or {}).get("kernelId") or "")


def delete_kernel(api: KubeApi, namespace: str, name: str, grace_seconds: int | None = 0) -> bool:
    """Delete a JupyterKernel (background propagation); ``False`` when it was already gone."""
    body: Obj = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
    if grace_seconds is not None:
        body["gracePeriodSeconds"] = grace_seconds
    try:
        api.request("DELETE", kernels_path(namespace, name), body=body, timeout=5.0)
    except ApiError as err:
        if err.not_found:
            return False
        raise
    return True
