"""kopf handlers: JupyterNotebook → Deployment, Service and token Secret (built by
:mod:`notebook_objects`), and their state → the JupyterNotebook's status.

Who calls what:

* kopf calls :func:`notebook_changed` on create, on spec/label/annotation changes and on
  operator start. It reads the referenced JupyterGateway (for its token Secret), creates the
  token Secret when one is needed (never rewritten), copies the gateway token when the gateway
  lives in another namespace, then applies the server's configuration ConfigMap (its data
  patched when the rendered file changed), the Deployment (replaced only when its rendered spec
  changed: edits roll out, no-ops write nothing) and the Service, and writes the status.
* :func:`notebook_deployment_event` refreshes the status when the notebook's Deployment moves
  (pod ready, rollout done).
* :func:`gateway_event` re-reconciles the notebooks pointing at a gateway when that gateway
  appears, disappears or switches auth on or off, so a notebook created before its gateway
  gets the gateway token, and ``GatewayResolved`` follows.

A missing gateway is not fatal: the notebook is deployed (the server starts; kernels fail until
the gateway exists) and ``GatewayResolved=False`` with a Warning Event says what to fix.

Listen address: jupyter_server listens on the pod IP (``$(POD_IP)``) by default, which is what
the sandbox needs (its pods share one network namespace). ``kubectl port-forward`` reaches a
pod through its loopback interface, so on a real cluster set ``EJ_NOTEBOOK_BIND_ADDRESS=0.0.0.0``
in the operator's environment (``deploy/`` does).
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Mapping
from typing import Any, Final

import kopf

from elastic_jupyter import crds
from elastic_jupyter.operator import (
    conditions,
    gateways,
    kube,
    notebook_objects,
    ownership,
    settings,
)

NOTEBOOKS: Final = (crds.GROUP, crds.VERSION, crds.JUPYTER_NOTEBOOK.plural)
NOTEBOOK_DEPLOYMENT_LABELS: Final = {
    crds.LABEL_MANAGED_BY: crds.MANAGED_BY,
    crds.LABEL_COMPONENT: crds.COMPONENT_NOTEBOOK,
}
BIND_ADDRESS_ENV: Final = "EJ_NOTEBOOK_BIND_ADDRESS"


def bind_address() -> str:
    """Where notebook servers listen: ``$EJ_NOTEBOOK_BIND_ADDRESS``, else the pod IP."""
    return os.environ.get(BIND_ADDRESS_ENV) or notebook_objects.POD_IP_ADDRESS


@kopf.index(*NOTEBOOKS)
def notebooks_by_gateway(
    name: str, namespace: str | None, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], tuple[str, str]]:
    """Index: (gateway namespace, gateway name) → (namespace, name) of each notebook using it."""
    ref = notebook_objects.gateway_ref(body)
    return {} if ref is None or not namespace else {ref: (namespace, name)}


async def _secret_token(client: kube.KubeClient, namespace: str, name: str, key: str) -> str | None:
    secret = await gateways.get_or_none(client, f"/api/v1/namespaces/{namespace}/secrets/{name}")
    if secret is None:
        return None
    raw = (secret.get("data") or {}).get(key)
    if raw:
        return base64.b64decode(raw).decode()
    value = (secret.get("stringData") or {}).get(key)
    return str(value) if value else None


async def _copy_gateway_token(
    client: kube.KubeClient, notebook: Mapping[str, Any], gateway: Mapping[str, Any] | None
) -> None:
    """A gateway in another namespace: keep the notebook's copy of its token current."""
    ref = notebook_objects.gateway_ref(notebook)
    enabled, secret_name = notebook_objects.gateway_auth(gateway)
    if ref is None or not enabled or ref[0] == notebook["metadata"]["namespace"]:
        return
    token = await _secret_token(client, ref[0], secret_name, crds.AUTH_TOKEN_KEY)
    if token is None:
        message = f"gateway token Secret {ref[0]}/{secret_name} does not exist yet"
        raise kopf.TemporaryError(message, delay=2)
    copy = notebook_objects.gateway_copy_secret(notebook, token)
    meta = copy["metadata"]
    key = notebook_objects.GATEWAY_TOKEN_KEY
    current = await _secret_token(client, meta["namespace"], meta["name"], key)
    if current is None:
        await gateways.ensure(client, copy)
    elif current != token:  # the gateway's token was replaced
        existing = await gateways.get_or_none(client, gateways.object_path(copy))
        if existing is not None and not ownership.is_ours(existing, copy):
            raise ownership.NameConflictError("Secret", meta["namespace"], meta["name"])
        await client.request("PUT", gateways.object_path(copy), copy)


async def _apply_config_map(client: kube.KubeClient, desired: Mapping[str, Any]) -> str:
    """Create the server's configuration ConfigMap, or patch its data when it differs (the
    Deployment's pod template carries the file's digest, so the pods follow)."""
    meta = desired["metadata"]
    collection = gateways.collection_path("v1", "configmaps", meta["namespace"])
    current = await gateways.get_or_none(client, f"{collection}/{meta['name']}")
    if current is None:
        await client.create(collection, desired)
        return "created"
    if not ownership.is_ours(current, desired):
        raise ownership.NameConflictError("ConfigMap", meta["namespace"], meta["name"])
    if current.get("data") == desired["data"]:
        return "unchanged"
    await client.merge_patch(f"{collection}/{meta['name']}", {"data": desired["data"]})
    return "updated"


async def reconcile(client: kube.KubeClient, notebook: Mapping[str, Any], logger: Any) -> None:
    """Render and apply a notebook's objects, then write its status."""
    meta, spec = notebook["metadata"], notebook.get("spec") or {}
    problems = notebook_objects.validate(spec)
    ref = notebook_objects.gateway_ref(notebook)
    gateway = None
    uid = str(meta.get("uid"))
    ownership.CONFLICTS.pop(uid, None)
    try:
        if ref is not None:
            gateway = await gateways.get_or_none(
                client, kube.custom_path(crds.JUPYTER_GATEWAY.plural, ref[0], ref[1])
            )
        if not problems:
            if notebook_objects.needs_token_secret(spec):
                await gateways.ensure(
                    client, notebook_objects.token_secret(notebook, secrets.token_hex(24))
                )
            await _copy_gateway_token(client, notebook, gateway)
            config = notebook_objects.config_map(notebook)
            if await _apply_config_map(client, config) != "unchanged":
                logger.info("ConfigMap %s applied", config["metadata"]["name"])
            for desired in (
                notebook_objects.deployment(notebook, gateway, bind_address()),
                notebook_objects.service(notebook),
            ):
                result = await gateways.ensure(client, desired)
                if result != "unchanged":
                    logger.info("%s %s %s", desired["kind"], desired["metadata"]["name"], result)
    except kube.ApiError as error:
        raise kopf.TemporaryError(f"notebook {meta['name']}: {error}", delay=2) from error
    except ownership.NameConflictError as error:
        conflict = conditions.Problem(error.message, crds.REASON_NAME_CONFLICT)
        ownership.CONFLICTS[uid] = [conflict]
        problems = [*problems, conflict]
    misplaced = notebook_objects.misplaced_template_metadata(spec)
    if misplaced:
        kopf.event(
            gateways.event_ref(notebook),
            type="Warning",
            reason=crds.REASON_MISPLACED_TEMPLATE_METADATA,
            message=(
                f"spec.template.metadata has {', '.join(misplaced)}, which is not applied: "
                "did you mean spec.template.metadata.labels?"
            ),
        )
    await refresh_status(client, notebook, gateway is not None, problems)


async def refresh_status(
    client: kube.KubeClient,
    notebook: Mapping[str, Any],
    gateway_found: bool | None = None,
    problems: list[str] | None = None,
) -> None:
    """Recompute and write a notebook's status; Warning Events for new problems."""
    meta, spec = notebook["metadata"], notebook.get("spec") or {}
    if problems is None:
        problems = notebook_objects.validate(spec)
        problems += ownership.CONFLICTS.get(str(meta.get("uid")), [])
    ref = notebook_objects.gateway_ref(notebook)
    try:
        if gateway_found is None and ref is not None:
            path = kube.custom_path(crds.JUPYTER_GATEWAY.plural, ref[0], ref[1])
            gateway_found = await gateways.get_or_none(client, path) is not None
        path = gateways.collection_path("apps/v1", "deployments", meta["namespace"])
        dep = await gateways.get_or_none(client, f"{path}/{meta['name']}")
    except kube.ApiError as error:
        raise kopf.TemporaryError(
            f"reading the state of {meta['name']}: {error}", delay=2
        ) from error
    new = notebook_objects.status(notebook, dep, bool(gateway_found), problems, gateways.now())
    # not ready yet: a normal state (Valid reports bad specs)
    quiet = (crds.CONDITION_READY,)
    await gateways.write_status(client, crds.JUPYTER_NOTEBOOK.plural, notebook, new, quiet)


async def _fetch(client: kube.KubeClient, namespace: str, name: str) -> dict[str, Any] | None:
    return await gateways.fetch_custom(client, crds.JUPYTER_NOTEBOOK, namespace, name)


@kopf.on.resume(*NOTEBOOKS)
@kopf.on.create(*NOTEBOOKS)
@kopf.on.update(*NOTEBOOKS)
async def notebook_changed(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    """Make the notebook's objects match its spec (rolls out edits; writes nothing if equal)."""
    state = settings.runtime_of(memo)
    meta = body["metadata"]
    async with state.lock(crds.JUPYTER_NOTEBOOK.plural, meta["namespace"], meta["name"]):
        fresh = await _fetch(state.client, meta["namespace"], meta["name"])
        if fresh is not None:
            await reconcile(state.client, fresh, logger)


@kopf.on.event("apps", "v1", "deployments", labels=NOTEBOOK_DEPLOYMENT_LABELS)
async def notebook_deployment_event(
    body: kopf.Body, namespace: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """The notebook's Deployment moved: refresh the notebook's status."""
    name = (body["metadata"].get("labels") or {}).get(crds.LABEL_NOTEBOOK)
    if not name or not namespace:
        return
    state = settings.runtime_of(memo)
    async with state.lock(crds.JUPYTER_NOTEBOOK.plural, namespace, str(name)):
        notebook = await _fetch(state.client, namespace, str(name))
        if notebook is None or notebook["metadata"].get("deletionTimestamp"):
            return
        try:
            await refresh_status(state.client, notebook)
        except kopf.TemporaryError:
            return  # on.event handlers are not retried: the next event refreshes again


def _gateway_fingerprint(event_type: str, body: Mapping[str, Any]) -> tuple[bool, bool, str]:
    exists = event_type != "DELETED" and not body["metadata"].get("deletionTimestamp")
    enabled, secret = notebook_objects.gateway_auth(body if exists else None)
    return exists, enabled, secret


@kopf.on.event(*gateways.GATEWAYS)
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
    state = settings.runtime_of(memo)
    seen: dict[tuple[str, str], tuple[bool, bool, str]] = memo.setdefault("gateway_seen", {})
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
