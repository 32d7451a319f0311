"""kopf handlers: JupyterNotebook → Deployment, Service and token Secret (built by
:mod:`notebook_objects`), and their state → the JupyterNotebook's status.

Who calls what:

* kopf calls :func:`notebook_changed` on create, on spec/label/annotation changes and on
  operator start. It reads the referenced JupyterGateway, creates the login token Secret when
  one is needed (never rewritten), issues the notebook its own gateway token when the gateway
  grants it (same namespace or ``spec.notebookNamespaces``) and registers the token's digest in
  the gateway's ``<gateway>-clients`` Secret (revoking both when the grant goes), then applies
  the server's configuration ConfigMap (its data
  patched when the rendered file changed), the Deployment (replaced only when its rendered spec
  changed: edits roll out, no-ops write nothing) and the Service, and writes the status.
* :func:`notebook_deployment_event` refreshes the status when the notebook's Deployment moves
  (pod ready, rollout done).
* :func:`gateway_event` re-reconciles the notebooks pointing at a gateway when that gateway
  appears, disappears, switches auth on or off or changes its grants, so a notebook created
  before its gateway gets its gateway token, and ``GatewayResolved`` follows.

A missing gateway is not fatal: the notebook is deployed (the server starts; kernels fail until
the gateway exists) and ``GatewayResolved=False`` with a Warning Event says what to fix.

Listen address: jupyter_server listens on the pod IP (``$(POD_IP)``) by default, which is what
the sandbox needs (its pods share one network namespace). ``kubectl port-forward`` reaches a
pod through its loopback interface, so on a real cluster set ``EJ_NOTEBOOK_BIND_ADDRESS=0.0.0.0``
in the operator's environment (``deploy/`` does).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from collections.abc import Mapping
from typing import Any, Final

import kopf

from elastic_jupyter import crds
from elastic_jupyter.operator import (
    apply,
    conditions,
    direct_notebooks,
    kube,
    notebook_objects,
    ownership,
    runtime,
)

NOTEBOOK_DEPLOYMENT_LABELS: Final = {
    crds.LABEL_MANAGED_BY: crds.MANAGED_BY,
    crds.LABEL_COMPONENT: crds.COMPONENT_NOTEBOOK,
}
BIND_ADDRESS_ENV: Final = "EJ_NOTEBOOK_BIND_ADDRESS"


def bind_address() -> str:
    """Where notebook servers listen: ``$EJ_NOTEBOOK_BIND_ADDRESS``, else the pod IP."""
    return os.environ.get(BIND_ADDRESS_ENV) or notebook_objects.POD_IP_ADDRESS


@kopf.index(*crds.JUPYTER_NOTEBOOK)
def notebooks_by_gateway(
    name: str, namespace: str | None, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], tuple[str, str]]:
    """Index: (gateway namespace, gateway name) → (namespace, name) of each notebook using it."""
    ref = notebook_objects.gateway_ref(body)
    return {} if ref is None or not namespace else {ref: (namespace, name)}


async def _secret_token(client: kube.KubeClient, namespace: str, name: str, key: str) -> str | None:
    secret = await apply.get_or_none(client, f"/api/v1/namespaces/{namespace}/secrets/{name}")
    if secret is None:
        return None
    raw = (secret.get("data") or {}).get(key)
    if raw:
        return base64.b64decode(raw).decode()
    value = (secret.get("stringData") or {}).get(key)
    return str(value) if value else None


async def _register_client(
    client: kube.KubeClient,
    gateway: Mapping[str, Any],
    notebook: Mapping[str, Any],
    digest: str | None,
) -> None:
    """Add (or with ``None`` remove) the notebook's token digest in the gateway's clients
    Secret. A merge patch touches only this notebook's key, so notebooks never race."""
    desired = notebook_objects.gateway_clients_secret(gateway)
    path = apply.object_path(desired)
    key = notebook_objects.gateway_client_key(notebook)
    value = base64.b64encode(digest.encode()).decode() if digest else None
    current = await apply.get_or_none(client, path)
    if current is None:
        if digest is None:
            return
        desired["data"] = {key: value}
        await apply.ensure(client, desired)
        return
    if (current.get("data") or {}).get(key) != value:
        await client.merge_patch(path, {"data": {key: value}})


async def _issue_gateway_token(
    client: kube.KubeClient, notebook: Mapping[str, Any], gateway: Mapping[str, Any] | None
) -> None:
    """Give the notebook its own gateway token when the gateway grants it; else revoke it."""
    meta = notebook["metadata"]
    enabled, _secret = notebook_objects.gateway_auth(gateway)
    name = notebook_objects.gateway_copy_secret_name(meta["name"])
    key = notebook_objects.GATEWAY_TOKEN_KEY
    secret_path = f"/api/v1/namespaces/{meta['namespace']}/secrets/{name}"
    if gateway is None:
        return
    # Identity only (owner reference, name): whose the Secret is, never written as is.
    mine = notebook_objects.gateway_copy_secret(notebook, "")
    if not enabled or not notebook_objects.gateway_granted(notebook, gateway):
        await _register_client(client, gateway, notebook, None)
        existing = await apply.get_or_none(client, secret_path)
        if existing is not None and ownership.is_ours(existing, mine):
            await client.request("DELETE", secret_path)
        return
    token = await _secret_token(client, meta["namespace"], name, key)
    if token is None:
        desired = notebook_objects.gateway_copy_secret(notebook, secrets.token_hex(24))
        existing = await apply.get_or_none(client, secret_path)
        if existing is None:
            await apply.ensure(client, desired)
        elif ownership.is_ours(existing, mine):  # an earlier release's copy of the admin token
            await client.request("PUT", secret_path, desired)
        else:
            raise ownership.NameConflictError("Secret", meta["namespace"], name)
        token = await _secret_token(client, meta["namespace"], name, key)
        if token is None:
            raise kopf.TemporaryError(f"Secret {name} has no {key} yet", delay=1)
    digest = hashlib.sha256(token.encode()).hexdigest()
    await _register_client(client, gateway, notebook, digest)


async def _apply_config_map(client: kube.KubeClient, desired: Mapping[str, Any]) -> str:
    """Create the server's configuration ConfigMap, or patch its data when it differs (the
    Deployment's pod template carries the file's digest, so the pods follow)."""
    meta = desired["metadata"]
    collection = apply.collection_path("v1", "configmaps", meta["namespace"])
    current = await apply.get_or_none(client, f"{collection}/{meta['name']}")
    if current is None:
        await client.create(collection, desired)
        return "created"
    if not ownership.is_ours(current, desired):
        raise ownership.NameConflictError("ConfigMap", meta["namespace"], meta["name"])
    if current.get("data") == desired["data"]:
        return "unchanged"
    await client.merge_patch(f"{collection}/{meta['name']}", {"data": desired["data"]})
    return "updated"


async def reconcile(
    client: kube.KubeClient,
    notebook: Mapping[str, Any],
    logger: Any,
    old: Mapping[str, Any] | None = None,
) -> None:
    """Render and apply a notebook's objects, then write its status (``old``: the previous
    spec on an update, so that what it alone had goes)."""
    meta, spec = notebook["metadata"], notebook.get("spec") or {}
    problems = notebook_objects.validate(spec)
    ref = notebook_objects.gateway_ref(notebook)
    gateway = None
    uid = str(meta.get("uid"))
    ownership.CONFLICTS.pop(uid, None)
    try:
        if ref is not None:
            gateway = await apply.get_or_none(client, crds.JUPYTER_GATEWAY.path(ref[0], ref[1]))
        if not problems:
            if notebook_objects.needs_token_secret(spec):
                await apply.ensure(
                    client, notebook_objects.token_secret(notebook, secrets.token_hex(24))
                )
            await _issue_gateway_token(client, notebook, gateway)
            # Direct mode: ServiceAccount, RBAC, NetworkPolicies; consent of a kernel namespace.
            consent = await direct_notebooks.apply_objects(client, notebook, logger, old)
            if consent:  # kept for the status refreshes until the next reconcile
                ownership.CONFLICTS.setdefault(uid, []).extend(consent)
                problems = [*problems, *consent]
            config = notebook_objects.config_map(notebook)
            if await _apply_config_map(client, config) != "unchanged":
                logger.info("ConfigMap %s applied", config["metadata"]["name"])
            for desired in (
                notebook_objects.deployment(notebook, gateway, bind_address()),
                notebook_objects.service(notebook),
            ):
                result = await apply.ensure(client, desired)
                if result != "unchanged":
                    logger.info("%s %s %s", desired["kind"], desired["metadata"]["name"], result)
    except kube.ApiError as error:
        raise kopf.TemporaryError(f"notebook {meta['name']}: {error}", delay=2) from error
    except ownership.NameConflictError as error:
        conflict = conditions.Problem(error.message, crds.REASON_NAME_CONFLICT)
        ownership.CONFLICTS.setdefault(uid, []).append(conflict)
        problems = [*problems, conflict]
    misplaced = notebook_objects.misplaced_template_metadata(spec)
    if misplaced:
        kopf.event(
            apply.event_ref(notebook),
            type="Warning",
            reason=crds.REASON_MISPLACED_TEMPLATE_METADATA,
            message=(
                f"spec.template.metadata has {', '.join(misplaced)}, which is not applied: "
                "did you mean spec.template.metadata.labels?"
            ),
        )
    await refresh_status(client, notebook, problems, gateway=gateway, gateway_read=True)


async def refresh_status(
    client: kube.KubeClient,
    notebook: Mapping[str, Any],
    problems: list[str] | None = None,
    gateway: Mapping[str, Any] | None = None,
    gateway_read: bool = False,
) -> None:
    """Recompute and write a notebook's status; Warning Events for new problems."""
    meta, spec = notebook["metadata"], notebook.get("spec") or {}
    if problems is None:
        problems = notebook_objects.validate(spec)
        problems += ownership.CONFLICTS.get(str(meta.get("uid")), [])
    ref = notebook_objects.gateway_ref(notebook)
    try:
        if not gateway_read and ref is not None:
            path = crds.JUPYTER_GATEWAY.path(ref[0], ref[1])
            gateway = await apply.get_or_none(client, path)
        path = apply.collection_path("apps/v1", "deployments", meta["namespace"])
        dep = await apply.get_or_none(client, f"{path}/{meta['name']}")
    except kube.ApiError as error:
        raise kopf.TemporaryError(
            f"reading the state of {meta['name']}: {error}", delay=2
        ) from error
    granted = notebook_objects.gateway_granted(notebook, gateway)
    new = notebook_objects.status(
        notebook, dep, gateway is not None, problems, crds.rfc3339(), granted
    )
    # not ready yet: a normal state (Valid reports bad specs)
    quiet = (crds.CONDITION_READY,)
    await apply.write_status(client, crds.JUPYTER_NOTEBOOK, notebook, new, quiet)


async def _fetch(client: kube.KubeClient, namespace: str, name: str) -> dict[str, Any] | None:
    return await apply.fetch_custom(client, crds.JUPYTER_NOTEBOOK, namespace, name)


@kopf.on.resume(*crds.JUPYTER_NOTEBOOK)
@kopf.on.create(*crds.JUPYTER_NOTEBOOK)
@kopf.on.update(*crds.JUPYTER_NOTEBOOK)
async def notebook_changed(
    body: kopf.Body, old: Any, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """Make the notebook's objects match its spec (rolls out edits; writes nothing if equal)."""
    state = runtime.from_memo(memo)
    meta = body["metadata"]
    before = {"metadata": meta, "spec": (old or {}).get("spec") or {}} if old else None
    async with state.lock(crds.JUPYTER_NOTEBOOK.plural, meta["namespace"], meta["name"]):
        fresh = await _fetch(state.client, meta["namespace"], meta["name"])
        if fresh is not None:
            await reconcile(state.client, fresh, logger, before)


@kopf.on.event("apps", "v1", "deployments", labels=NOTEBOOK_DEPLOYMENT_LABELS)
async def notebook_deployment_event(
    body: kopf.Body, namespace: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """The notebook's Deployment moved: refresh the notebook's status."""
    name = (body["metadata"].get("labels") or {}).get(crds.LABEL_NOTEBOOK)
    if not name or not namespace:
        return
    state = runtime.from_memo(memo)
    async with state.lock(crds.JUPYTER_NOTEBOOK.plural, namespace, str(name)):
        notebook = await _fetch(state.client, namespace, str(name))
        if notebook is None or notebook["metadata"].get("deletionTimestamp"):
            return
        try:
            await refresh_status(state.client, notebook)
        except kopf.TemporaryError:
            return  # on.event handlers are not retried: the next event refreshes again


def _gateway_fingerprint(event_type: str, body: Mapping[str, Any]) -> tuple[Any, ...]:
    exists = event_type != "DELETED" and not body["metadata"].get("deletionTimestamp")
    enabled, secret = notebook_objects.gateway_auth(body if exists else None)
    grants = tuple(sorted((body.get("spec") or {}).get("notebookNamespaces") or []))
    return exists, enabled, secret, grants


@kopf.on.event(*crds.JUPYTER_GATEWAY)
async def gateway_event(
    event: kopf.RawEvent,
    body: kopf.Body,
    name: str,
    namespace: str | None,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **kwargs: Any,
) -> None:
    """A gateway appeared, went, or changed auth: reconcile the notebooks that use it."""
    index: kopf.Index[tuple[str, str], tuple[str, str]] = kwargs["notebooks_by_gateway"]
    state = runtime.from_memo(memo)
    seen = state.gateway_seen
    key = (namespace or "", name)
    fingerprint = _gateway_fingerprint(str(event.get("type")), body)
    if seen.get(key) == fingerprint:
        return
    seen[key] = fingerprint
    for nb_namespace, nb_name in list(index.get(key, [])):
        async with state.lock(crds.JUPYTER_NOTEBOOK.plural, nb_namespace, nb_name):
            notebook = await _fetch(state.client, nb_namespace, nb_name)
            if notebook is None:
                continue
            try:
                await reconcile(state.client, notebook, logger)
            except (kopf.TemporaryError, kopf.PermanentError) as error:
                logger.warning("notebook %s/%s: %s", nb_namespace, nb_name, error)
