"""kopf handlers: JupyterKernelSpec → ``kernel.json`` ConfigMap, and the kernelspec's status.

Who calls what:

* kopf calls :func:`kernelspec_event` for every watch event of a JupyterKernelSpec; the
  template handlers in :mod:`kernel_templates` call :func:`reconcile` for each kernelspec that
  refers to a template that appeared, changed or was deleted (found through the
  :func:`kernelspecs_by_template` index).
* :func:`reconcile` is level-based and idempotent: render (:mod:`kernelspec_configmap`), make
  the ConfigMap match (create, or merge-patch when it differs), then write the status if it
  changed. Deleting a kernelspec needs no handler: its ConfigMap has an owner reference and is
  garbage-collected, so no finalizer is added.

Reads are cheap and writes are not: the ConfigMap is read only when this run has not yet seen it
match the rendering, and statuses are compared with what was last written before patching.
kopf does not retry ``on.event`` handlers, so :func:`kernelspec_event` retries API failures
itself with backoff (:data:`RETRY_DELAYS`); after that the next event of the kernelspec or its
template reconciles again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any, Final

import kopf

from elastic_jupyter import crds
from elastic_jupyter.operator import apply, kube, ownership, pod_policy, runtime
from elastic_jupyter.operator import kernelspec_configmap as render_mod

RETRY_DELAYS: Final = (1.0, 2.0, 4.0, 8.0)
#: Templates by (namespace, name): (valid, reason, message, image of the kernel container).
TemplateIndex = kopf.Index[runtime.Key, tuple[bool, str, str, str]]


@kopf.index(*crds.JUPYTER_KERNEL_SPEC)
async def kernelspecs_by_template(body: kopf.Body, **_: Any) -> dict[runtime.Key, dict[str, Any]]:
    """Kernelspecs by the (namespace, name) of the template they refer to: their bodies."""
    ref = render_mod.template_ref(body)
    return {(ref.namespace, ref.name): dict(body)} if ref else {}


async def write_status(
    state: runtime.Runtime,
    resource: crds.ResourceNames,
    body: Mapping[str, Any],
    new: Mapping[str, Any],
) -> tuple[dict[str, Any], bool]:
    """PATCH ``new`` into the object's status if it differs from what is known.

    Returns the previous status and whether a write happened. Shared with
    :mod:`kernel_templates`.
    """
    metadata = body.get("metadata") or {}
    namespace, name, uid = metadata["namespace"], metadata["name"], str(metadata.get("uid"))
    plural = resource.plural
    known = state.statuses.get((plural, namespace, name))
    old = known[1] if known and known[0] == uid else dict(body.get("status") or {})
    patch = render_mod.status_patch(old, new)
    if patch is None:
        return old, False
    if not await apply.merge_status(state.client, resource, namespace, name, patch):
        return old, False
    state.metrics.api_writes.labels("patch", f"{plural}/status").inc()
    state.statuses[(plural, namespace, name)] = (uid, dict(new))
    return old, True


def _first(values: Iterable[Any] | None) -> Any:
    for value in values or ():
        return value
    return None


async def _ensure_configmap(state: runtime.Runtime, desired: dict[str, Any], logger: Any) -> str:
    """Create or update the ConfigMap; return its name."""
    metadata = desired["metadata"]
    namespace, name = metadata["namespace"], metadata["name"]
    if state.configmaps.get((namespace, name)) == desired["data"]:
        return str(name)
    try:
        current: dict[str, Any] | None = await state.client.get(
            kube.configmaps_path(namespace, name)
        )
    except kube.ApiError as error:
        if not error.not_found:
            raise
        current = None
    if current is None:
        try:
            await state.client.create(kube.configmaps_path(namespace), desired)
            state.metrics.api_writes.labels("create", "configmaps").inc()
            logger.info("Created ConfigMap %s/%s", namespace, name)
        except kube.ApiError as error:
            if not error.conflict:
                raise
            current = await state.client.get(kube.configmaps_path(namespace, name))
    if current is not None and not ownership.is_ours(current, desired):
        # Somebody else's ConfigMap of that name: never adopted (adopting it would also have it
        # garbage-collected with the kernelspec).
        raise ownership.NameConflictError("ConfigMap", namespace, name)
    if current is not None and render_mod.configmap_differs(current, desired):
        patch = {
            "metadata": {
                "labels": metadata["labels"],
                "ownerReferences": metadata["ownerReferences"],
            },
            "data": desired["data"],
        }
        await state.client.merge_patch(kube.configmaps_path(namespace, name), patch)
        state.metrics.api_writes.labels("patch", "configmaps").inc()
        logger.info("Updated ConfigMap %s/%s", namespace, name)
    state.configmaps[(namespace, name)] = desired["data"]
    return str(name)


async def reconcile(
    state: runtime.Runtime, body: Mapping[str, Any], templates: TemplateIndex, logger: Any
) -> None:
    """Make the kernelspec's ConfigMap and status match its spec and its template's state."""
    metadata = body.get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        return
    namespace, name = str(metadata.get("namespace")), str(metadata.get("name"))
    ref = kopf.Body(
        {
            "apiVersion": crds.API_VERSION,
            "kind": crds.JUPYTER_KERNEL_SPEC.kind,
            "metadata": {"name": name, "namespace": namespace, "uid": str(metadata.get("uid"))},
        }
    )
    async with state.lock(crds.JUPYTER_KERNEL_SPEC.plural, namespace, name):
        allowed = pod_policy.admin_policy().allowed_process_proxies()
        rendering = render_mod.render(body, allowed)
        configmap_name = None
        try:
            if rendering.configmap is not None:
                try:
                    configmap_name = await _ensure_configmap(state, rendering.configmap, logger)
                except ownership.NameConflictError as error:
                    problem = (crds.REASON_NAME_CONFLICT, error.message)
                    rendering = render_mod.Rendering(None, rendering.template, problem)
            template = rendering.template
            validity = (
                _first(templates.get((template.namespace, template.name))) if template else None
            )
            known = state.statuses.get((crds.JUPYTER_KERNEL_SPEC.plural, namespace, name))
            previous = known[1] if known else body.get("status")
            image = render_mod.kernel_image(
                body, validity[3] if validity else None, state.options.default_kernel_image
            )
            new = render_mod.kernelspec_status(
                rendering,
                validity,
                configmap_name,
                int(metadata.get("generation") or 1),
                previous,
                crds.rfc3339(),
                image,
            )
            old, written = await write_status(state, crds.JUPYTER_KERNEL_SPEC, body, new)
        except kube.ApiError as error:
            state.metrics.reconcile_errors.labels(crds.JUPYTER_KERNEL_SPEC.kind).inc()
            raise kopf.TemporaryError(f"kernelspec {namespace}/{name}: {error}", delay=5) from error
        if written:
            condition = new["conditions"][0]
            before = _first(
                c for c in (old.get("conditions") or []) if c.get("type") == crds.CONDITION_VALID
            )
            if not before or before.get("reason") != condition["reason"]:
                kopf.event(
                    ref,
                    type="Normal" if new["valid"] else "Warning",
                    reason=condition["reason"],
                    message=condition["message"],
                )


@kopf.on.event(*crds.JUPYTER_KERNEL_SPEC)
async def kernelspec_event(
    type: str,
    body: kopf.Body,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **kwargs: Any,
) -> None:
    """A kernelspec appeared or changed: render its ConfigMap and report its validity."""
    kernel_templates: TemplateIndex = kwargs["kernel_templates"]  # kopf passes indexes by name
    state = runtime.from_memo(memo)
    if type == "DELETED":
        metadata = body.get("metadata") or {}
        key = (str(metadata.get("namespace")), str(metadata.get("name")))
        state.configmaps.pop(key, None)
        state.statuses.pop((crds.JUPYTER_KERNEL_SPEC.plural, *key), None)
        return
    for delay in (*RETRY_DELAYS, None):
        try:
            await reconcile(state, dict(body), kernel_templates, logger)
            return
        except kopf.TemporaryError as error:
            logger.warning("%s", error)
            if delay is None:
                return
            await asyncio.sleep(delay)
