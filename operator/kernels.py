"""kopf handlers: JupyterKernel → Pod, and the pod's state → the JupyterKernel's status.

Who calls what:

* kopf calls :func:`kernel_event` for every watch event of a JupyterKernel and
  :func:`kernel_pod_event` for every event of a pod labelled ``component=kernel`` and managed by
  us. Both are thin: :mod:`kernel_pod` builds the pod, :mod:`kernel_status` interprets it.
* kopf keeps the indexes :func:`kernel_objects` and :func:`kernel_pods` and — this is why they
  exist — runs no handler before both are filled from their initial lists. After a restart the
  operator therefore knows every existing pod and status before it acts: it never creates a
  second pod and never rewrites a status that is already right.

Design for few API writes (the floor for one kernel start is 2: create the pod, write the
status once it runs):

* Level-based ``on.event`` handlers instead of ``on.create``: kopf then adds no finalizer (the
  pod is garbage-collected through its owner reference, so nothing needs one) and writes no
  "last handled" annotation.
* The status is written only when it differs from the one last written (kept in memory, so the
  check does not wait for our own write to come back through the watch).
* A plain Pending status (pod exists, nothing wrong) is held back for
  :data:`PENDING_STATUS_GRACE` seconds: on a healthy node the pod runs before that and one
  write says Running. Once a plain Pending is written, further progress that is still plain
  Pending (node assigned, IP assigned, container creating) is not written either; the next
  write is Running or a problem. Any problem (Unschedulable, image errors…) is written at once.
* Events are posted for transitions of (phase, reason) only, by kopf's background poster.

So a kernel start costs: POST pod, PATCH status (Running), POST Event (Running) — 3 writes; 4
when the pod stays Pending longer than the grace period (one more PATCH saying Pending).

Failures: a pod that cannot be created because the request is wrong (422, 403…) makes the kernel
``Failed``/``PodCreateFailed``; server trouble is retried with backoff inside the handler
(kopf does not retry ``on.event`` handlers). 409 AlreadyExists means the pod is there: adopt it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any, Final

import aiohttp
import kopf

from elastic_jupyter import crds
from elastic_jupyter.operator import (
    apply,
    kernel_pod,
    kernel_status,
    kube,
    pod_policy,
    runtime,
    warm_pools,
)

#: Seconds a plain Pending status is held back (see the module docstring).
PENDING_STATUS_GRACE: Final = 1.5
#: Seconds before a failed status write is tried again.
RETRY_DELAY: Final = 2.0
#: Waits between attempts to create a pod while the API server has trouble.
CREATE_BACKOFF: Final = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)
#: JupyterKernel annotation: the last generation whose spec edit was reported (not applied).
ANNOTATION_SPEC_CHANGE_REPORTED: Final = f"{crds.GROUP}/spec-change-reported"

POD_LABELS: Final = {
    crds.LABEL_COMPONENT: crds.COMPONENT_KERNEL,
    crds.LABEL_MANAGED_BY: crds.MANAGED_BY,
}


def _owner_uid(pod: Mapping[str, Any]) -> str | None:
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == crds.JUPYTER_KERNEL.kind and ref.get("controller"):
            return str(ref.get("uid"))
    return None


def _kernel_name(pod: Mapping[str, Any]) -> str | None:
    metadata = pod.get("metadata") or {}
    label = (metadata.get("labels") or {}).get(crds.LABEL_KERNEL)
    return str(label) if label else metadata.get("name")


# --- Indexes (kopf fills them before any handler runs) ---------------------------------------
# Coroutines although they do no I/O: kopf runs plain functions in a thread pool, and a thread
# hop per watch event costs more than the indexing itself.


@kopf.index(*crds.JUPYTER_KERNEL)
async def kernel_objects(
    name: str, namespace: str | None, body: kopf.Body, **_: Any
) -> dict[runtime.Key, dict[str, Any]]:
    """JupyterKernels by (namespace, name): the body as last seen."""
    return {(namespace or "", name): dict(body)}


@kopf.index("v1", "pods", labels=POD_LABELS)
async def kernel_pods(namespace: str | None, body: kopf.Body, **_: Any) -> dict[runtime.Key, str]:
    """Kernel pods by (namespace, kernel name): the uid of the JupyterKernel that owns each."""
    name = _kernel_name(body)
    return {(namespace or "", name): _owner_uid(body) or ""} if name else {}


def _first(index: kopf.Index[Any, Any], key: runtime.Key) -> Any:
    store = index.get(key)
    for value in store or ():
        return value
    return None


def _record(
    state: runtime.Runtime, key: runtime.Key, body: Mapping[str, Any] | None
) -> runtime.KernelRecord | None:
    """The record of the JupyterKernel ``body`` (created on first sight, replaced on a new uid)."""
    if body is None:
        return state.kernels.get(key)
    metadata = body.get("metadata") or {}
    uid = str(metadata.get("uid") or "")
    record = state.kernels.get(key)
    if record is None or record.uid != uid:
        record = runtime.KernelRecord(
            namespace=key[0],
            name=key[1],
            uid=uid,
            body=dict(body),
            status=dict(body.get("status") or {}),
            created=crds.epoch_seconds(metadata.get("creationTimestamp")),
        )
        state.kernels[key] = record
    else:
        record.body = dict(body)
    record.deleting = bool(metadata.get("deletionTimestamp"))
    return record


# --- Status writing ---------------------------------------------------------------------------


async def _write_status(
    state: runtime.Runtime, record: runtime.KernelRecord, new: dict[str, Any], logger: Any
) -> None:
    """PATCH the status if it changed, post the transition's Events, observe metrics.

    Called with ``record.lock`` held.
    """
    now = crds.rfc3339()
    patch = kernel_status.status_patch(record.status, new, now)
    if patch is None:
        return
    try:
        written = await apply.merge_status(
            state.client, crds.JUPYTER_KERNEL, record.namespace, record.name, patch
        )
    except kube.ApiError:
        state.metrics.reconcile_errors.labels(crds.JUPYTER_KERNEL.kind).inc()
        raise
    if not written:  # the kernel is gone: nothing left to report on
        state.kernels.pop((record.namespace, record.name), None)
        return
    state.metrics.api_writes.labels("patch", "jupyterkernels/status").inc()
    old = record.status
    record.status = new
    for event in kernel_status.transition_events(old, new):
        kopf.event(record.ref, type=event.type, reason=event.reason, message=event.message)
    started = new.get("phase") == crds.PHASE_RUNNING and old.get("phase") != crds.PHASE_RUNNING
    if started and record.created is not None:
        state.metrics.start_seconds.observe(max(0.0, time.time() - record.created))
    logger.debug("Status of %s/%s: %s", record.namespace, record.name, patch)


async def _sync(state: runtime.Runtime, record: runtime.KernelRecord, logger: Any) -> None:
    """Bring the kernel's status in line with the latest pod state the operator has seen."""
    async with record.lock:
        if record.deleting or kernel_status.is_terminal(record.status):
            return  # a finished kernel's status never changes again
        now = crds.rfc3339()
        if record.pod is not None:
            new = kernel_status.kernel_status(record.pod, record.status, now)
            new = warm_pools.pooled_phase(record.body, new)  # a waiting pool kernel: Pooled
            if kernel_status.is_quiet_pending(new):
                if record.status.get("phase"):
                    if kernel_status.is_quiet_pending(record.status):
                        return  # still just Pending: scheduling progress is not worth a write
                else:
                    seen = record.pod_seen_at or time.monotonic()
                    wait = PENDING_STATUS_GRACE - (time.monotonic() - seen)
                    if wait > 0:
                        _recheck_later(state, record, wait, logger)
                        return
        elif record.pod_deleted:
            try:
                if not await _kernel_still_wants_pod(state, record):
                    return
            except (kube.ApiError, aiohttp.ClientError, asyncio.TimeoutError) as error:
                logger.warning("Reading kernel %s failed, retrying: %s", record.name, error)
                _recheck_later(state, record, RETRY_DELAY, logger)
                return
            new = kernel_status.failed_status(
                crds.REASON_POD_DELETED,
                f"pod {record.name} was deleted; the kernel is not restarted by the operator",
                record.status,
                now,
                pod_name=record.name,
            )
        else:
            return
        try:
            await _write_status(state, record, new, logger)
        except (kube.ApiError, aiohttp.ClientError, asyncio.TimeoutError) as error:
            # Nothing else may wake this kernel up (its pod can stay Running for hours): retry.
            logger.warning("Writing the status of %s failed, retrying: %s", record.name, error)
            _recheck_later(state, record, RETRY_DELAY, logger)


async def _kernel_still_wants_pod(state: runtime.Runtime, record: runtime.KernelRecord) -> bool:
    """Whether a deleted pod's kernel still exists and is not being deleted itself.

    A read, because the pod watch and the kernel watch are separate streams: the pod's DELETED
    event of a garbage-collected pod may arrive before the kernel's own deletion is seen.
    """
    try:
        body = await state.client.get(crds.JUPYTER_KERNEL.path(record.namespace, record.name))
    except kube.ApiError as error:
        if error.not_found:
            state.kernels.pop((record.namespace, record.name), None)
            return False
        raise
    metadata = body.get("metadata") or {}
    return metadata.get("uid") == record.uid and not metadata.get("deletionTimestamp")


def _recheck_later(
    state: runtime.Runtime, record: runtime.KernelRecord, delay: float, logger: Any
) -> None:
    if record.recheck is not None and not record.recheck.done():
        return

    async def recheck() -> None:
        await asyncio.sleep(delay)
        record.recheck = None
        if state.kernels.get((record.namespace, record.name)) is record:
            await _sync(state, record, logger)

    record.recheck = state.spawn(recheck())


# --- Pod creation -----------------------------------------------------------------------------


async def _fail_creation(
    state: runtime.Runtime,
    record: runtime.KernelRecord,
    message: str,
    logger: Any,
    reason: str = crds.REASON_POD_CREATE_FAILED,
) -> None:
    state.metrics.reconcile_errors.labels(crds.JUPYTER_KERNEL.kind).inc()
    logger.error("Cannot create the pod of %s/%s: %s", record.namespace, record.name, message)
    async with record.lock:
        new = kernel_status.failed_status(reason, message, record.status, crds.rfc3339())
        await _write_status(state, record, new, logger)


async def _ensure_pod(state: runtime.Runtime, record: runtime.KernelRecord, logger: Any) -> None:
    """Create the kernel's pod; 409 AlreadyExists means it is there already (adopted).

    A kernel whose template has the wrong shape (``InvalidSpec``) or that the admin's pod policy
    forbids (``PolicyViolation``) gets no pod: its status says which field, and the gateway
    fails the launch with that message at once.
    """
    shapes = pod_policy.shape_problems((record.body.get("spec") or {}).get("template"))
    if shapes:
        message = f"invalid pod template: {pod_policy.describe(shapes)}"
        await _fail_creation(state, record, message, logger, crds.REASON_INVALID_SPEC)
        return
    try:
        manifest = kernel_pod.build_pod(record.body, state.options.default_kernel_image)
    except kernel_pod.InvalidKernelError as error:
        await _fail_creation(state, record, str(error), logger)
        return
    refused = pod_policy.violations(manifest["spec"], pod_policy.admin_policy())
    if refused:
        message = f"refused by the kernel pod policy: {pod_policy.describe(refused)}"
        await _fail_creation(state, record, message, logger, crds.REASON_POLICY_VIOLATION)
        return
    misplaced = kernel_pod.misplaced_template_metadata(
        (record.body.get("spec") or {}).get("template")
    )
    if misplaced:
        kopf.warn(
            record.ref,
            reason=crds.REASON_MISPLACED_TEMPLATE_METADATA,
            message=f"spec.template.metadata has {', '.join(misplaced)}, which Kubernetes ignores;"
            " did you mean spec.template.metadata.labels?",
        )
    path = kube.pods_path(record.namespace)
    for attempt, delay in enumerate((*CREATE_BACKOFF, None)):
        try:
            await state.client.create(path, manifest)
            state.metrics.api_writes.labels("create", "pods").inc()
            record.pod_created = True
            return
        except kube.ApiError as error:
            if error.conflict:
                # Ours (an earlier run created it): adopt. A previous kernel's of the same
                # name, still being garbage-collected: its DELETED event brings us back here.
                record.pod_created = await _pod_owner(state, record) in (record.uid, None)
                return
            if not error.retryable or delay is None:
                await _fail_creation(state, record, f"{error.reason}: {error.message}", logger)
                return
            problem = str(error)
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            if delay is None:
                await _fail_creation(state, record, f"API server unreachable: {error}", logger)
                return
            problem = repr(error)
        state.metrics.reconcile_errors.labels(crds.JUPYTER_KERNEL.kind).inc()
        logger.warning("Creating pod %s failed (attempt %d): %s", record.name, attempt + 1, problem)
        await asyncio.sleep(delay)


async def _pod_owner(state: runtime.Runtime, record: runtime.KernelRecord) -> str | None:
    """The uid of the JupyterKernel owning the existing pod named like ``record`` (or None)."""
    try:
        pod = await state.client.get(f"{kube.pods_path(record.namespace)}/{record.name}")
    except kube.ApiError:
        return None
    return _owner_uid(pod)


async def _report_spec_change(
    state: runtime.Runtime, record: runtime.KernelRecord, generation: int, built: int
) -> None:
    """The spec is immutable: say so once per edit (Event + an annotation remembering it)."""
    kopf.warn(
        record.ref,
        reason=crds.REASON_SPEC_IMMUTABLE,
        message=f"spec changed (generation {generation}) after the pod was created from generation"
        f" {built}; the change is not applied. Delete and recreate the kernel instead.",
    )
    path = crds.JUPYTER_KERNEL.path(record.namespace, record.name)
    patch = {"metadata": {"annotations": {ANNOTATION_SPEC_CHANGE_REPORTED: str(generation)}}}
    try:
        await state.client.merge_patch(path, patch)
        state.metrics.api_writes.labels("patch", "jupyterkernels").inc()
    except kube.ApiError as error:
        if not error.not_found:
            raise


# --- Handlers ---------------------------------------------------------------------------------


@kopf.on.event(*crds.JUPYTER_KERNEL)
async def kernel_event(
    type: str,
    name: str,
    namespace: str | None,
    body: kopf.Body,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **kwargs: Any,
) -> None:
    """A JupyterKernel appeared, changed or went away: create its pod if it has none."""
    # kopf passes every index as a keyword named after its function (kept in **kwargs, as
    # kopf's handler protocol does not know our index names).
    kernel_pods: kopf.Index[runtime.Key, str] = kwargs["kernel_pods"]
    state = runtime.from_memo(memo)
    key = (namespace or "", name)
    if type == "DELETED":
        record = state.kernels.pop(key, None)
        if record is not None and record.recheck is not None:
            record.recheck.cancel()
        return
    record = _record(state, key, body)
    if record is None or record.deleting:
        return

    metadata = body.get("metadata") or {}
    generation = int(metadata.get("generation") or 1)
    built = int(
        record.status.get("observedGeneration")
        or ((record.pod or {}).get("metadata", {}).get("annotations") or {}).get(
            kernel_pod.ANNOTATION_GENERATION
        )
        or 0
    )
    reported = str((metadata.get("annotations") or {}).get(ANNOTATION_SPEC_CHANGE_REPORTED) or "")
    if built and generation > built and reported != str(generation):
        await _report_spec_change(state, record, generation, built)

    has_pod = _first(kernel_pods, key) == record.uid
    # A kernel that has had a pod (any status written) never gets a second one: a pod deleted
    # behind our back makes the kernel Failed, and the gateway decides whether to restart it.
    if record.status.get("phase") or record.status.get("podName"):
        if record.pod is not None and warm_pools.claimed_since_pooled(body, record.status):
            await _sync(state, record, logger)  # claimed: Pooled becomes Running
            return
        if not has_pod and record.pod is None and not kernel_status.is_terminal(record.status):
            # Its pod went away while no operator was watching (e.g. during a restart).
            record.note_pod(None)
            await _sync(state, record, logger)
        return
    if record.pod_created:
        return
    if has_pod:
        record.pod_created = True
        return
    await _ensure_pod(state, record, logger)


@kopf.on.event("v1", "pods", labels=POD_LABELS)
async def kernel_pod_event(
    type: str,
    namespace: str | None,
    body: kopf.Body,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **kwargs: Any,
) -> None:
    """A kernel pod changed: mirror it into its JupyterKernel's status."""
    kernel_objects: kopf.Index[runtime.Key, dict[str, Any]] = kwargs["kernel_objects"]
    state = runtime.from_memo(memo)
    name = _kernel_name(body)
    owner = _owner_uid(body)
    if not name or not owner:
        return
    key = (namespace or "", name)
    record = state.kernels.get(key)
    if record is None:
        # First sight of this kernel in this run (e.g. just after a restart): start from the
        # object as the index saw it, so that an unchanged status is not written again.
        record = _record(state, key, _first(kernel_objects, key))
    if record is None:
        return  # no such kernel (any more): the garbage collector deletes its pod
    if record.uid != owner:
        # The pod of an earlier kernel with the same name. Once it is gone, the current
        # kernel may create its own pod.
        if type == "DELETED" and not record.pod_created and not record.status.get("phase"):
            await _ensure_pod(state, record, logger)
        return
    record.note_pod(None if type == "DELETED" else dict(body))
    await _sync(state, record, logger)
