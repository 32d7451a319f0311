"""kopf side of a JupyterNotebook in direct mode (objects built by :mod:`direct_notebook_objects`).

* :func:`apply_objects` (called by :func:`notebooks.reconcile`): the ServiceAccount, RBAC and
  NetworkPolicies of a direct-mode notebook; in another kernel namespace only after its consent
  (:mod:`namespace_consent`, as for gateways), and ours there deleted when consent is withdrawn.
  A notebook leaving direct mode loses all of them. Returns the problems to report
  (``NamespaceNotAccepted``).
* :func:`notebook_consent_recheck`: consent given or withdrawn takes effect without an edit.
* :func:`direct_notebook_deleted`: a deleted direct-mode notebook leaves nothing behind: the
  operator deletes its JupyterKernels in every kernel namespace (by the notebook's uid
  annotation; their pods and Secrets go with them by owner reference), waits for them, then
  deletes the RBAC and policy it had in another kernel namespace. In its own namespace owner
  references remove the rest.
"""

from __future__ import annotations

import contextlib
import urllib.parse
from collections.abc import Mapping
from typing import Any

import kopf

from elastic_jupyter import crds
from elastic_jupyter.operator import (
    apply,
    conditions,
    direct_notebook_objects,
    kube,
    namespace_consent,
    notebook_objects,
    ownership,
    runtime,
)

objects = direct_notebook_objects


async def consent_problems(client: kube.KubeClient, notebook: Mapping[str, Any]) -> list[str]:
    """``NamespaceNotAccepted`` when the kernel namespace is another one that did not accept
    kernels from the notebook's namespace."""
    target = objects.other_kernel_namespace(notebook)
    if target is None or not objects.is_direct(notebook):
        return []
    source = notebook["metadata"]["namespace"]
    try:
        namespace = await apply.get_or_none(
            client, apply.collection_path("v1", "namespaces", None) + "/" + target
        )
    except kube.ApiError as error:
        raise kopf.TemporaryError(f"reading namespace {target}: {error}", delay=2) from error
    if namespace_consent.accepts(namespace, target, source, namespace_consent.admin_grants()):
        return []
    return [
        conditions.Problem(
            namespace_consent.refusal_message(target, source), crds.REASON_NAMESPACE_NOT_ACCEPTED
        )
    ]


def _all_possible(notebook: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The home objects a direct-mode notebook may have that grant or open something (its
    Role has one name either way). The ServiceAccount stays: without a binding it may do
    nothing, and the pod no longer uses it (the operator never deletes ServiceAccounts)."""
    spec = {**dict(notebook.get("spec") or {}), "kernels": {"mode": objects.MODE_DIRECT}}
    home = objects.home_objects({**notebook, "spec": spec}, 0)
    return [o for o in home if o["kind"] != "ServiceAccount"]


async def apply_objects(
    client: kube.KubeClient,
    notebook: Mapping[str, Any],
    logger: Any,
    old: Mapping[str, Any] | None = None,
) -> list[str]:
    """Make a notebook's direct-mode objects match its spec; return consent problems.
    ``old`` (the previous spec, on an update) tells what the notebook had before."""
    if old is not None and objects.is_direct(old):
        await apply.delete_objects(client, objects.stale_external_objects(old, notebook))
        if not objects.is_direct(notebook):
            # Deleted only when they are ours (owner reference): a namesake stays.
            await _delete_owned(client, _all_possible(notebook))
    if not objects.is_direct(notebook):
        return []
    problems = await consent_problems(client, notebook)
    external = objects.external_objects(notebook)
    if problems:
        await apply.delete_objects(client, external)
        external = []
    port = notebook_objects.port(notebook.get("spec") or {})
    for desired in [*objects.home_objects(notebook, port), *external]:
        result = await apply.ensure(client, desired)
        if result != "unchanged":
            meta = desired["metadata"]
            logger.info("%s %s/%s %s", desired["kind"], meta["namespace"], meta["name"], result)
    if objects.other_kernel_namespace(notebook) is not None:
        # The kernel policy lives in the kernel namespace now: none at home.
        await _delete_owned(client, [objects.kernel_policy(_at_home(notebook))])
    return problems


def _at_home(notebook: Mapping[str, Any]) -> dict[str, Any]:
    spec = dict(notebook.get("spec") or {})
    spec["kernels"] = {**dict(spec.get("kernels") or {}), "namespace": None}
    return {**notebook, "spec": spec}


async def _delete_owned(client: kube.KubeClient, candidates: list[dict[str, Any]]) -> None:
    for obj in candidates:
        current = await apply.get_or_none(client, apply.object_path(obj))
        if current is not None and ownership.is_ours(current, obj):
            with contextlib.suppress(kube.ApiError):
                await client.request("DELETE", apply.object_path(obj))


async def delete_kernels(client: kube.KubeClient, notebook: Mapping[str, Any]) -> int:
    """Delete the notebook's JupyterKernels in its kernel namespace; return how many are left
    (still terminating)."""
    namespace = objects.kernel_namespace(notebook)
    path = crds.JUPYTER_KERNEL.path(namespace)
    query = urllib.parse.urlencode({"labelSelector": objects.kernel_selector(notebook)})
    try:
        items = (await client.request("GET", f"{path}?{query}"))["items"]
    except kube.ApiError as error:
        if error.not_found:
            return 0
        raise kopf.TemporaryError(f"listing kernels in {namespace}: {error}", delay=2) from error
    left = 0
    for kernel in objects.owned_kernels(notebook, items):
        left += 1
        if kernel["metadata"].get("deletionTimestamp"):
            continue
        with contextlib.suppress(kube.ApiError):  # counted as left: checked again next time
            await client.request("DELETE", f"{path}/{kernel['metadata']['name']}")
    return left


def _is_direct(body: kopf.Body, **_: Any) -> bool:
    return objects.is_direct(body)


def _has_other_kernel_namespace(body: kopf.Body, **_: Any) -> bool:
    return objects.is_direct(body) and objects.other_kernel_namespace(body) is not None


@kopf.on.delete(*crds.JUPYTER_NOTEBOOK, when=_is_direct)
async def direct_notebook_deleted(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """No kernel, pod, Secret or Role of a deleted notebook is left, in any namespace: the
    kernels first (while the notebook's RBAC still lets its server see them go), then the
    grants in another kernel namespace."""
    client = runtime.from_memo(memo).client
    left = await delete_kernels(client, body)
    if left:
        raise kopf.TemporaryError(f"{left} JupyterKernel(s) of this notebook still going", delay=1)
    await apply.delete_objects(client, objects.external_objects(body))


@kopf.timer(
    *crds.JUPYTER_NOTEBOOK,
    interval=namespace_consent.recheck_seconds(),
    initial_delay=namespace_consent.recheck_seconds(),
    when=_has_other_kernel_namespace,
)
async def notebook_consent_recheck(
    body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """Re-apply a direct-mode notebook whose kernels run in another namespace, so consent
    given or withdrawn there takes effect without anyone editing the notebook."""
    from elastic_jupyter.operator import notebooks  # notebooks imports this module

    state = runtime.from_memo(memo)
    meta = body["metadata"]
    async with state.lock(crds.JUPYTER_NOTEBOOK.plural, meta["namespace"], meta["name"]):
        fresh = await apply.fetch_custom(
            state.client, crds.JUPYTER_NOTEBOOK, meta["namespace"], meta["name"]
        )
        if fresh is not None and not fresh["metadata"].get("deletionTimestamp"):
            await notebooks.reconcile(state.client, fresh, logger)
