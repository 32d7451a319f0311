"""kopf handlers: keep each JupyterKernelSpec's warm pool full (``spec.warmPool``).

Who calls what:

* kopf calls :func:`pool_kernelspec_event` for every kernelspec event and
  :func:`pool_kernel_event` for every event of a pool kernel (label ``…/pool``): a kernel was
  claimed, failed, or deleted (its pod deleted makes it ``Failed/PodDeleted``). Both reconcile
  that one pool (:func:`reconcile_pool`), which is level-based: the pure
  :func:`warm_pool_objects.plan_pool` says how many kernels to create and which to delete.
* a ticker task per pool (:func:`_ensure_ticker`) re-checks it every few seconds, to retire
  kernels older than ``maxIdleAge`` and claims never completed. It reads only the operator's
  indexes: no API request while nothing is to be done, so an idle pooled kernel costs nothing.

Creating a pool kernel is two POSTs (the JupyterKernel, then its Secret with a fresh claim key),
sent concurrently for a whole refill; the kernel handlers (:mod:`kernels`) then create its pod
like any kernel's, and write ``status.phase: Pooled`` instead of ``Running`` while it waits
(:func:`pooled_phase`). Kernels created but not yet seen through the watch are remembered in
memory, so two reconciles in a row never overfill a pool.

GPUs: ``--max-pooled-gpus`` (``ELASTIC_JUPYTER_MAX_POOLED_GPUS``, default 0) caps the GPUs held by
waiting pool kernels cluster-wide; a pool kept smaller by it says so in a Warning Event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any, Final

import kopf

from elastic_jupyter import crds
from elastic_jupyter.crds import warm_pool
from elastic_jupyter.operator import apply, kube, runtime
from elastic_jupyter.operator import warm_pool_objects as objects

#: Seconds between pool checks for idle age and unfinished claims.
TIMER_INTERVAL: Final = 2.0


def _epoch(timestamp: Any) -> float:
    # a pool kernel without a readable creation time counts as created now (never culled early)
    value = crds.epoch_seconds(timestamp)
    return time.time() if value is None else value


# --- indexes --------------------------------------------------------------------------------


@kopf.index(*crds.JUPYTER_KERNEL, labels={warm_pool.LABEL_POOL: kopf.PRESENT})
async def pool_kernels(
    namespace: str | None, body: kopf.Body, **_: Any
) -> dict[runtime.Key, dict[str, Any]]:
    """Pool kernels (waiting or claimed) by (namespace, kernelspec)."""
    pool = str((body.get("metadata", {}).get("labels") or {}).get(warm_pool.LABEL_POOL))
    return {(namespace or "", pool): dict(body)}


@kopf.index(*crds.JUPYTER_KERNEL_SPEC)
async def pool_kernelspecs(
    namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> dict[runtime.Key, dict[str, Any]]:
    """Kernelspecs by (namespace, name)."""
    return {(namespace or "", name): dict(body)}


@kopf.index(*crds.JUPYTER_KERNEL_TEMPLATE)
async def pool_templates(
    namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> dict[runtime.Key, dict[str, Any]]:
    """Templates by (namespace, name): what a pool kernel's pod is built from."""
    return {(namespace or "", name): dict(body)}


def _first(index: kopf.Index[Any, Any], key: Any) -> Any:
    for value in index.get(key) or ():
        return value
    return None


# --- the status of a waiting pool kernel ----------------------------------------------------


def pooled_phase(body: Mapping[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A waiting pool kernel whose pod runs is ``Pooled``, not ``Running`` (called by
    :mod:`kernels` before it writes a status)."""
    labels = (body.get("metadata") or {}).get("labels") or {}
    waiting = labels.get(warm_pool.LABEL_POOL_STATE) == warm_pool.POOL_STATE_POOLED
    if waiting and new.get("phase") == crds.PHASE_RUNNING:
        return {**new, "phase": crds.PHASE_POOLED}
    return new


def claimed_since_pooled(body: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """A kernel the operator reported ``Pooled`` that a gateway has claimed since."""
    labels = (body.get("metadata") or {}).get("labels") or {}
    return (
        status.get("phase") == crds.PHASE_POOLED
        and labels.get(warm_pool.LABEL_POOL_STATE) == warm_pool.POOL_STATE_CLAIMED
    )


# --- reconcile ------------------------------------------------------------------------------


def _members(
    state: runtime.Runtime, kernels: kopf.Index[runtime.Key, dict[str, Any]], key: runtime.Key
) -> list[objects.Member]:
    memory = state.warm_pools
    seen: dict[str, objects.Member] = {}
    for body in kernels.get(key) or ():
        meta = body.get("metadata") or {}
        name = str(meta.get("name"))
        if (key[0], name) in memory.deleted:
            continue
        seen[name] = objects.Member.from_object(body, _epoch(meta.get("creationTimestamp")))
    created = memory.created.setdefault(key, {})
    for name in list(created):
        if name in seen:
            del created[name]  # the watch has it now
        elif time.time() - created[name] > 60:
            del created[name]  # never seen: it failed to appear; let the plan recreate it
        else:
            seen[name] = objects.Member(
                name=name,
                state=warm_pool.POOL_STATE_POOLED,
                phase="",
                created=created[name],
            )
    return list(seen.values())


def _pooled_gpus(state: runtime.Runtime, kernels: kopf.Index[runtime.Key, dict[str, Any]]) -> int:
    """GPUs held by waiting pool kernels in every pool (the cap is cluster-wide)."""
    total = 0
    for key in list(kernels):
        total += sum(
            m.gpus
            for m in _members(state, kernels, key)
            if m.state == warm_pool.POOL_STATE_POOLED and not m.deleting
        )
    return total


async def _create_one(
    state: runtime.Runtime, kernelspec: Mapping[str, Any], template: Mapping[str, Any] | None
) -> str:
    meta = kernelspec.get("metadata") or {}
    namespace, ks_name = str(meta.get("namespace")), str(meta.get("name"))
    name = objects.pool_kernel_name(ks_name)
    manifest = objects.pool_kernel_manifest(kernelspec, template, name)
    state.warm_pools.created.setdefault((namespace, ks_name), {})[name] = time.time()
    path = f"/apis/{crds.GROUP}/{crds.VERSION}/namespaces/{namespace}/{crds.JUPYTER_KERNEL.plural}"
    try:
        obj = await state.client.create(path, manifest)
        state.metrics.api_writes.labels("create", "jupyterkernels").inc()
        secret = objects.claim_key_secret(obj, objects.new_claim_key())
        await state.client.create(f"/api/v1/namespaces/{namespace}/secrets", secret)
        state.metrics.api_writes.labels("create", "secrets").inc()
    except kube.ApiError:
        state.warm_pools.created.get((namespace, ks_name), {}).pop(name, None)
        raise
    return name


async def _delete(state: runtime.Runtime, namespace: str, name: str) -> None:
    state.warm_pools.deleted.add((namespace, name))
    body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
    try:
        await state.client.request("DELETE", crds.JUPYTER_KERNEL.path(namespace, name), body)
        state.metrics.api_writes.labels("delete", "jupyterkernels").inc()
    except kube.ApiError as error:
        if not error.not_found:
            state.warm_pools.deleted.discard((namespace, name))
            raise


async def _ensure_network_policy(state: runtime.Runtime, kernelspec: Mapping[str, Any]) -> None:
    """Create the pool's NetworkPolicy once per kernelspec (409: it is there)."""
    policy = objects.pool_network_policy(kernelspec)
    meta = policy["metadata"]
    key = (str(meta["namespace"]), str(meta["ownerReferences"][0]["uid"]))
    memory = state.warm_pools
    if key in memory.policies:
        return
    path = apply.collection_path("networking.k8s.io/v1", "networkpolicies", meta["namespace"])
    try:
        await state.client.create(path, policy)
        state.metrics.api_writes.labels("create", "networkpolicies").inc()
    except kube.ApiError as error:
        if not error.conflict:
            raise
    memory.policies.add(key)


async def reconcile_pool(
    state: runtime.Runtime,
    key: runtime.Key,
    kernelspecs: kopf.Index[runtime.Key, dict[str, Any]],
    kernels: kopf.Index[runtime.Key, dict[str, Any]],
    templates: kopf.Index[runtime.Key, dict[str, Any]],
    logger: Any,
) -> None:
    """Bring one pool to its size (create, delete), level-based."""
    namespace, ks_name = key
    async with state.lock("warm-pools", namespace, ks_name):
        kernelspec = _first(kernelspecs, key)
        deleting = bool(kernelspec and (kernelspec.get("metadata") or {}).get("deletionTimestamp"))
        try:
            pool = objects.pool_spec(kernelspec) if kernelspec and not deleting else None
        except ValueError as error:
            logger.warning("kernelspec %s/%s: %s", namespace, ks_name, error)
            pool = None
        template = None
        if pool is not None and kernelspec is not None:
            ref = (kernelspec.get("spec") or {}).get("template") or {}
            if ref.get("name"):
                template = _first(templates, (ref.get("namespace") or namespace, ref["name"]))
                if template is None:
                    return  # the kernelspec's status says TemplateNotFound; nothing to pool
        gpus = 0
        if pool is not None and kernelspec is not None:
            gpus = objects.gpus_of(
                objects.pool_kernel_manifest(kernelspec, template, "x")["spec"]["template"]
            )
        budget = state.options.max_pooled_gpus - _pooled_gpus(state, kernels) if gpus else None
        plan = objects.plan_pool(
            pool,
            _members(state, kernels, key),
            time.time(),
            gpus_per_kernel=gpus,
            gpu_budget=budget,
            claim_timeout=state.options.pool_claim_timeout,
        )
        if pool is not None and kernelspec is not None:
            await _ensure_network_policy(state, kernelspec)
        for name, why in plan.delete:
            logger.info("Pool %s/%s: deleting %s (%s)", namespace, ks_name, name, why)
            await _delete(state, namespace, name)
        if plan.gpu_limited and kernelspec is not None and key not in state.warm_pools.gpu_warned:
            state.warm_pools.gpu_warned.add(key)
            kopf.warn(
                kernelspec,
                reason=crds.REASON_WARM_POOL_GPU_LIMIT,
                message="warm pool kept below spec.warmPool.size: waiting pool kernels may hold "
                f"at most {state.options.max_pooled_gpus} GPUs cluster-wide "
                "(operator --max-pooled-gpus)",
            )
        if plan.create and kernelspec is not None:
            results = await asyncio.gather(
                *(_create_one(state, kernelspec, template) for _ in range(plan.create)),
                return_exceptions=True,
            )
            failed = [r for r in results if isinstance(r, BaseException)]
            if failed:
                raise kopf.TemporaryError(f"pool {namespace}/{ks_name}: {failed[0]}", delay=2)
            logger.info("Pool %s/%s: created %d kernels", namespace, ks_name, plan.create)


async def _reconcile_retrying(
    state: runtime.Runtime, key: runtime.Key, kwargs: Mapping[str, Any], logger: Any
) -> None:
    for delay in (1.0, 2.0, 4.0, None):
        try:
            await reconcile_pool(
                state,
                key,
                kwargs["pool_kernelspecs"],
                kwargs["pool_kernels"],
                kwargs["pool_templates"],
                logger,
            )
            return
        except (kopf.TemporaryError, kube.ApiError) as error:
            logger.warning("%s", error)
            if delay is None:
                return
            await asyncio.sleep(delay)


@kopf.on.event(*crds.JUPYTER_KERNEL_SPEC)
async def pool_kernelspec_event(
    type: str, name: str, namespace: str | None, memo: kopf.Memo, logger: kopf.Logger, **kw: Any
) -> None:
    """A kernelspec appeared, changed or went away: its pool follows."""
    state = runtime.from_memo(memo)
    await _reconcile_retrying(state, (namespace or "", name), kw, logger)
    _ensure_ticker(state, (namespace or "", name), kw, logger)


@kopf.on.event(*crds.JUPYTER_KERNEL, labels={warm_pool.LABEL_POOL: kopf.PRESENT})
async def pool_kernel_event(
    type: str,
    body: kopf.Body,
    namespace: str | None,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **kw: Any,
) -> None:
    """A pool kernel was claimed, failed or deleted: refill its pool."""
    state = runtime.from_memo(memo)
    meta = body.get("metadata") or {}
    if type == "DELETED":
        state.warm_pools.deleted.discard((namespace or "", str(meta.get("name"))))
    pool = str((meta.get("labels") or {}).get(warm_pool.LABEL_POOL) or "")
    await _reconcile_retrying(state, (namespace or "", pool), kw, logger)
    _ensure_ticker(state, (namespace or "", pool), kw, logger)


def _ensure_ticker(
    state: runtime.Runtime, key: runtime.Key, kw: Mapping[str, Any], logger: Any
) -> None:
    """Re-check a pool every few seconds while it has a pool or members: retire kernels past
    ``maxIdleAge`` and claims never completed. Reads the indexes only: no API request while
    there is nothing to do. (Not a kopf timer: kopf would put a finalizer on the kernelspec.)"""
    memory = state.warm_pools
    task = memory.tickers.get(key)
    if task is not None and not task.done():
        return

    async def tick() -> None:
        while True:
            await asyncio.sleep(TIMER_INTERVAL)
            kernelspec = _first(kw["pool_kernelspecs"], key)
            has_pool = bool(kernelspec and (kernelspec.get("spec") or {}).get("warmPool"))
            if not has_pool and not kw["pool_kernels"].get(key):
                memory.tickers.pop(key, None)
                return
            await _reconcile_retrying(state, key, kw, logger)

    memory.tickers[key] = state.spawn(tick())
