"""kopf handlers: JupyterGateway → its objects (see :mod:`gateway_objects`), and their state →
the JupyterGateway's status.

Who calls what:

* kopf calls :func:`gateway_changed` when a JupyterGateway is created, its spec (or labels and
  annotations) change, or the operator starts (resume). It renders the objects with
  :mod:`gateway_objects` and makes the cluster match: create what is missing; replace the
  Deployment only when the hash of its rendered spec changed (so an edit rolls out, and a
  no-op reconcile writes nothing); patch Role, RoleBinding and Service when they drifted. The
  auth Secret is created once and never rewritten.
* :func:`gateway_deployment_event` (Deployments labelled ``component=gateway``),
  :func:`kernelspec_event` (JupyterKernelSpecs) and :func:`gateway_kernel_event` (JupyterKernels
  of a gateway) refresh the status: replica counts, served kernelspecs, kernel count,
  conditions. A status is written only when it differs from the one on the object.
* :func:`gateway_deleted` removes the Roles and RoleBindings a gateway has in other kernel
  namespaces (owner references cannot cross namespaces; everything else is garbage-collected).
  A namespace leaving ``spec.kernelNamespace``/``kernelNamespaces`` loses them at the next
  :func:`gateway_changed`. Both also delete the ClusterRole and ClusterRoleBinding earlier
  releases wrote for ``allowKernelNamespace`` (the gateway no longer needs anything
  cluster-wide).

Bad specs never crash the handler: problems go to the ``Ready``/``Valid``-style conditions and
to Warning Events whose message says what to fix (posted on transitions only).

Objects are written through :mod:`apply` (shared with :mod:`notebooks`).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import urllib.parse
from collections.abc import Mapping
from typing import Any, Final

import kopf

from elastic_jupyter import crds
from elastic_jupyter.operator import (
    apply,
    conditions,
    gateway_objects,
    gateway_status,
    kube,
    namespace_consent,
    network_policy,
    ownership,
    runtime,
)

GATEWAY_DEPLOYMENT_LABELS: Final = {
    crds.LABEL_MANAGED_BY: crds.MANAGED_BY,
    crds.LABEL_COMPONENT: crds.COMPONENT_GATEWAY,
}


# --- Gateway reconcile -----------------------------------------------------------------------


async def _kernelspec_names(client: kube.KubeClient, namespace: str) -> list[str]:
    path = crds.JUPYTER_KERNEL_SPEC.path(namespace)
    listing = await client.get(path)
    return sorted(str(item["metadata"]["name"]) for item in listing.get("items") or [])


async def _kernel_count(client: kube.KubeClient, gateway: Mapping[str, Any]) -> int:
    namespace = gateway_objects.kernel_namespace(gateway)
    path = crds.JUPYTER_KERNEL.path(namespace)
    selector = f"{crds.LABEL_GATEWAY}={gateway['metadata']['name']}"
    listing = await client.get(f"{path}?labelSelector={selector}")
    return len(listing.get("items") or [])


async def _ensure_secret(client: kube.KubeClient, gateway: Mapping[str, Any]) -> None:
    spec = gateway.get("spec") or {}
    if not gateway_objects.auth_enabled(spec):
        return
    secret = gateway_objects.auth_secret(gateway, secrets.token_hex(24))
    current = await apply.get_or_none(client, apply.object_path(secret))
    if current is None:
        await apply.ensure(client, secret)
    elif not ownership.is_ours(current, secret):
        meta = secret["metadata"]
        raise ownership.NameConflictError("Secret", meta["namespace"], meta["name"])


async def _refused_namespaces(client: kube.KubeClient, gateway: Mapping[str, Any]) -> list[str]:
    """The gateway's other kernel namespaces that did not accept kernels from its namespace."""
    source = gateway["metadata"]["namespace"]
    grants = namespace_consent.admin_grants()
    refused = []
    for target in gateway_objects.rbac_namespaces(gateway):
        try:
            namespace = await apply.get_or_none(
                client, apply.collection_path("v1", "namespaces", None) + "/" + target
            )
        except kube.ApiError as error:
            raise kopf.TemporaryError(f"reading namespace {target}: {error}", delay=2) from error
        if not namespace_consent.accepts(namespace, target, source, grants):
            refused.append(target)
    return refused


async def _problems(client: kube.KubeClient, gateway: Mapping[str, Any]) -> list[str]:
    """Everything wrong with a gateway: its spec, namespace consent, name conflicts."""
    problems: list[str] = list(gateway_objects.validate(gateway.get("spec") or {}))
    source = gateway["metadata"]["namespace"]
    for target in await _refused_namespaces(client, gateway):
        problems.append(
            conditions.Problem(
                namespace_consent.refusal_message(target, source),
                crds.REASON_NAMESPACE_NOT_ACCEPTED,
            )
        )
    problems.extend(ownership.CONFLICTS.get(str(gateway["metadata"].get("uid")), []))
    return problems


async def reconcile(client: kube.KubeClient, gateway: Mapping[str, Any], logger: Any) -> None:
    """Render and apply a gateway's objects, then refresh its status.

    Kernel-namespace RBAC goes only to namespaces that accepted this gateway's namespace
    (:mod:`namespace_consent`); one that withdrew loses ours. An object named like ours but not
    ours stops the reconcile and shows as ``NameConflict`` in the status.
    """
    spec = gateway.get("spec") or {}
    uid = str(gateway["metadata"].get("uid"))
    ownership.CONFLICTS.pop(uid, None)
    problems = gateway_objects.validate(spec)
    if not problems:
        refused = set(await _refused_namespaces(client, gateway))
        external = [
            *gateway_objects.external_objects(gateway),
            *network_policy.external_policies(gateway),
        ]
        await apply.delete_objects(
            client, [o for o in external if o["metadata"]["namespace"] in refused]
        )
        try:
            await _apply(client, gateway, refused, logger)
        except ownership.NameConflictError as error:
            ownership.CONFLICTS[uid] = [
                conditions.Problem(error.message, crds.REASON_NAME_CONFLICT)
            ]
    await refresh_status(client, gateway)


async def _apply(
    client: kube.KubeClient, gateway: Mapping[str, Any], refused: set[str], logger: Any
) -> None:
    await _ensure_secret(client, gateway)
    objects = [
        *gateway_objects.owned_objects(gateway),
        *network_policy.owned_policies(gateway),
        *network_policy.external_policies(gateway),
    ]
    for desired in objects:
        if desired["metadata"].get("namespace") in refused:
            continue
        result = await apply.ensure(client, desired)
        if result != "unchanged":
            logger.info("%s %s %s", desired["kind"], desired["metadata"]["name"], result)
            if desired["kind"] == "Deployment" and result == "updated":
                kopf.event(
                    apply.event_ref(gateway),
                    type="Normal",
                    reason=crds.REASON_ROLLING_OUT,
                    message="the gateway spec changed: rolling out a new gateway pod",
                )


async def refresh_status(
    client: kube.KubeClient,
    gateway: Mapping[str, Any],
    problems: list[str] | None = None,
) -> None:
    """Recompute and write a gateway's status; post Warning Events for new problems."""
    meta = gateway["metadata"]
    if problems is None:
        problems = await _problems(client, gateway)
    deployment_path = (
        apply.collection_path("apps/v1", "deployments", meta["namespace"]) + "/" + meta["name"]
    )
    try:
        dep = await apply.get_or_none(client, deployment_path)
        names = await _kernelspec_names(client, meta["namespace"])
        count = await _kernel_count(client, gateway)
    except kube.ApiError as error:
        raise kopf.TemporaryError(
            f"reading the state of {meta['name']}: {error}", delay=2
        ) from error
    new = gateway_status.status(gateway, dep, names, count, problems, crds.rfc3339())
    # not ready yet, no rollout: normal states (Valid reports bad specs)
    quiet = (crds.CONDITION_READY, crds.CONDITION_PROGRESSING)
    await apply.write_status(client, crds.JUPYTER_GATEWAY, gateway, new, quiet)


async def _fetch_gateway(
    client: kube.KubeClient, namespace: str, name: str
) -> dict[str, Any] | None:
    return await apply.fetch_custom(client, crds.JUPYTER_GATEWAY, namespace, name)


# --- Handlers --------------------------------------------------------------------------------


@kopf.on.resume(*crds.JUPYTER_GATEWAY)
@kopf.on.create(*crds.JUPYTER_GATEWAY)
@kopf.on.update(*crds.JUPYTER_GATEWAY)
async def gateway_changed(
    body: kopf.Body,
    old: Any,
    reason: str,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """Make the gateway's objects match its spec (rolls out edits; writes nothing if equal)."""
    state = runtime.from_memo(memo)
    meta = body["metadata"]
    async with state.lock(crds.JUPYTER_GATEWAY.plural, meta["namespace"], meta["name"]):
        # Work on the freshest copy: the status may have moved since this event.
        fresh = await _fetch_gateway(state.client, meta["namespace"], meta["name"])
        if fresh is None:
            return
        await reconcile(state.client, fresh, logger)
        before_spec = (old or {}).get("spec") or {}
        # RBAC the previous spec needed outside the namespace and this one does not.
        if old:
            before = {"metadata": meta, "spec": before_spec}
            stale = gateway_objects.stale_external_objects(before, fresh)
            stale += network_policy.stale_external_policies(before, fresh)
            await apply.delete_objects(state.client, stale)
        # A cluster-wide grant of an earlier release can only exist for a gateway that had
        # allowKernelNamespace; resume (operator start, i.e. after an upgrade) covers a field
        # turned off meanwhile. Other reconciles send no request for it.
        if (
            reason == kopf.Reason.RESUME
            or (fresh.get("spec") or {}).get("allowKernelNamespace")
            or before_spec.get("allowKernelNamespace")
        ):
            await apply.delete_objects(state.client, gateway_objects.legacy_cluster_rbac(fresh))


@kopf.on.event("apps", "v1", "deployments", labels=GATEWAY_DEPLOYMENT_LABELS)
async def gateway_deployment_event(
    body: kopf.Body, namespace: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """A gateway Deployment changed (pods became ready, rollout progressed): refresh status."""
    name = (body["metadata"].get("labels") or {}).get(crds.LABEL_GATEWAY)
    if name and namespace:
        schedule_refresh(memo, namespace, str(name))


@kopf.on.event(*crds.JUPYTER_KERNEL_SPEC)
async def gateway_kernelspec_event(
    event: kopf.RawEvent, namespace: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """A JupyterKernelSpec appeared or went: gateways of its namespace re-check ``kernels``."""
    if event.get("type") not in ("ADDED", "DELETED", None) or not namespace:
        return
    state = runtime.from_memo(memo)
    path = crds.JUPYTER_GATEWAY.path(namespace)
    try:
        listing = await state.client.get(path)
    except kube.ApiError:
        return
    for item in listing.get("items") or []:
        schedule_refresh(memo, namespace, str(item["metadata"]["name"]))


@kopf.on.event(*crds.JUPYTER_KERNEL, labels={crds.LABEL_GATEWAY: kopf.PRESENT})
async def gateway_kernel_event(
    event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    """A kernel of a gateway was created or deleted: refresh the gateway's kernel count."""
    if event.get("type") not in ("ADDED", "DELETED"):
        return
    gateway_name = str(body["metadata"]["labels"][crds.LABEL_GATEWAY])
    owner_ns = body["metadata"]["namespace"]
    for ref in body["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == crds.JUPYTER_GATEWAY.kind:
            gateway_name = str(ref.get("name"))
    schedule_refresh(memo, owner_ns, gateway_name)


#: Seconds a status refresh waits, so that a burst of events (many kernels starting, a rollout
#: moving) costs one status write.
REFRESH_DELAY: Final = 0.3


def schedule_refresh(memo: kopf.Memo, namespace: str, name: str) -> None:
    """Refresh a gateway's status soon; events arriving meanwhile join the same refresh."""
    pending = runtime.from_memo(memo).pending_refresh
    key = (namespace, name)
    if key in pending:
        return
    pending.add(key)

    async def later() -> None:
        await asyncio.sleep(REFRESH_DELAY)
        pending.discard(key)
        await _refresh_by_name(memo, namespace, name)

    runtime.from_memo(memo).spawn(later())


async def _refresh_by_name(memo: kopf.Memo, namespace: str, name: str) -> None:
    state = runtime.from_memo(memo)
    async with state.lock(crds.JUPYTER_GATEWAY.plural, namespace, name):
        # Not retried: a failed refresh waits for the next event.
        with contextlib.suppress(kopf.TemporaryError, kube.ApiError):
            gateway = await _fetch_gateway(state.client, namespace, name)
            if gateway is not None and not gateway["metadata"].get("deletionTimestamp"):
                await refresh_status(state.client, gateway)


def _has_external_objects(body: kopf.Body, **_: Any) -> bool:
    # allowKernelNamespace: an earlier release may have left a cluster-wide grant to delete
    # (such gateways already carried this finalizer then).
    spec = body.get("spec") or {}
    return bool(gateway_objects.external_objects(body)) or bool(spec.get("allowKernelNamespace"))


def _has_other_kernel_namespaces(body: kopf.Body, **_: Any) -> bool:
    return bool(gateway_objects.rbac_namespaces(body))


@kopf.timer(
    *crds.JUPYTER_GATEWAY,
    interval=namespace_consent.recheck_seconds(),
    initial_delay=namespace_consent.recheck_seconds(),
    when=_has_other_kernel_namespaces,
)
async def gateway_consent_recheck(
    body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """Re-apply a gateway with kernel namespaces elsewhere, so that consent given or withdrawn
    there (a Namespace annotation) takes effect without anyone editing the gateway. The
    reconcile reads and compares; it writes only what changed."""
    state = runtime.from_memo(memo)
    meta = body["metadata"]
    async with state.lock(crds.JUPYTER_GATEWAY.plural, meta["namespace"], meta["name"]):
        fresh = await _fetch_gateway(state.client, meta["namespace"], meta["name"])
        if fresh is not None and not fresh["metadata"].get("deletionTimestamp"):
            await reconcile(state.client, fresh, logger)


async def delete_remote_kernels(client: kube.KubeClient, gateway: Mapping[str, Any]) -> int:
    """Delete the gateway's JupyterKernels in its other kernel namespaces; return how many are
    left (still terminating). Its own namespace's go by owner reference."""
    left = 0
    for namespace in gateway_objects.rbac_namespaces(gateway):
        selector = gateway_objects.kernel_selector(gateway)
        path = crds.JUPYTER_KERNEL.path(namespace)
        try:
            query = urllib.parse.urlencode({"labelSelector": selector})
            items = (await client.request("GET", f"{path}?{query}"))["items"]
        except kube.ApiError as error:
            if error.not_found:
                continue
            raise kopf.TemporaryError(
                f"listing kernels in {namespace}: {error}", delay=2
            ) from error
        for kernel in gateway_objects.owned_kernels(gateway, items):
            left += 1
            if kernel["metadata"].get("deletionTimestamp"):
                continue
            with contextlib.suppress(kube.ApiError):  # counted as left: checked again below
                await client.request("DELETE", f"{path}/{kernel['metadata']['name']}")
    return left


@kopf.on.delete(*crds.JUPYTER_GATEWAY, when=_has_external_objects)
async def gateway_deleted(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Remove what garbage collection cannot: the gateway's kernels in other namespaces (before
    the RBAC that let its pod reach them, and by the operator itself, so none is left with its
    GPU), RBAC in other namespaces, and a cluster-wide grant left by an earlier release."""
    client = runtime.from_memo(memo).client
    left = await delete_remote_kernels(client, body)
    if left:
        raise kopf.TemporaryError(
            f"{left} JupyterKernel(s) in other namespaces still going", delay=2
        )
    objects = [*gateway_objects.external_objects(body), *network_policy.external_policies(body)]
    if (body.get("spec") or {}).get("allowKernelNamespace"):
        objects = [*gateway_objects.legacy_cluster_rbac(body), *objects]
    await apply.delete_objects(client, objects)
