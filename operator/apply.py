"""Apply desired objects to the cluster and write statuses: the engine the gateway and notebook
handlers share.

Who calls what: :mod:`gateways` and :mod:`notebooks` render manifests with pure functions
(:mod:`gateway_objects`, :mod:`notebook_objects`, :mod:`network_policy`) and hand each one to
:func:`ensure`; they compute a new status and hand it to :func:`write_status`, which writes only
a difference and posts a Warning Event for each condition that newly turned False.
:func:`delete_objects` removes what owner references cannot (objects in other namespaces).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import kopf

from elastic_jupyter import crds
from elastic_jupyter.operator import conditions, kube, ownership

PLURALS: Final = {
    "ServiceAccount": "serviceaccounts",
    "Secret": "secrets",
    "Service": "services",
    "Deployment": "deployments",
    "Role": "roles",
    "RoleBinding": "rolebindings",
    "ClusterRole": "clusterroles",
    "ClusterRoleBinding": "clusterrolebindings",
    "NetworkPolicy": "networkpolicies",
    "JupyterGateway": crds.JUPYTER_GATEWAY.plural,
    "JupyterNotebook": crds.JUPYTER_NOTEBOOK.plural,
}


def event_ref(obj: Mapping[str, Any]) -> kopf.Body:
    """An object reference for ``kopf.event`` (the involvedObject of posted Events)."""
    meta = obj["metadata"]
    return kopf.Body(
        {
            "apiVersion": obj.get("apiVersion") or crds.API_VERSION,
            "kind": obj.get("kind") or crds.JUPYTER_GATEWAY.kind,
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
        }
    )


def collection_path(api_version: str, plural: str, namespace: str | None) -> str:
    """The URL of a collection, core (``v1``) or grouped (``apps/v1``); cluster-scoped
    without a namespace."""
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"


def object_path(obj: Mapping[str, Any], name: str | None = None) -> str:
    """The URL of one object given its manifest (or a name in its collection)."""
    meta = obj["metadata"]
    plural = PLURALS[str(obj["kind"])]
    base = collection_path(str(obj["apiVersion"]), plural, meta.get("namespace"))
    return f"{base}/{name or meta['name']}"


async def get_or_none(client: kube.KubeClient, path: str) -> dict[str, Any] | None:
    try:
        return await client.get(path)
    except kube.ApiError as error:
        if error.not_found:
            return None
        raise


def _hash(obj: Mapping[str, Any]) -> str:
    return str(
        ((obj.get("metadata") or {}).get("annotations") or {}).get(crds.ANNOTATION_SPEC_HASH)
    )


async def ensure(client: kube.KubeClient, desired: Mapping[str, Any]) -> str:
    """Make one object match ``desired``; return what was done (created/updated/unchanged).

    * Secret, ServiceAccount: create only (a token is never rewritten).
    * Deployment: replaced when the spec-hash annotation differs (this is the rollout).
    * Service: merge-patched when the spec-hash annotation differs (clusterIP is kept).
    * Role: rules patched when they differ. RoleBinding: subjects patched when they differ.

    An existing object that is not ours (:func:`ownership.is_ours`: no controller owner reference
    to the same resource, nor our owner annotation) is never patched, replaced or adopted:
    :class:`ownership.NameConflictError` says so instead.
    """
    path = object_path(desired)
    kind = str(desired["kind"])
    try:
        current = await get_or_none(client, path)
        if current is None:
            collection = path.rsplit("/", 1)[0]
            await client.create(collection, desired)
            return "created"
        if not ownership.is_ours(current, desired):
            meta = desired["metadata"]
            raise ownership.NameConflictError(kind, meta.get("namespace"), str(meta["name"]))
        if kind in ("Secret", "ServiceAccount"):
            return "unchanged"
        if kind == "Deployment":
            if _hash(current) == _hash(desired):
                return "unchanged"
            body = dict(desired)
            body["metadata"] = {
                **desired["metadata"],
                "resourceVersion": current["metadata"].get("resourceVersion"),
            }
            await client.request("PUT", path, body)
            return "updated"
        patch: dict[str, Any] = {}
        if kind == "Service" and _hash(current) != _hash(desired):
            spec = desired["spec"]
            patch = {
                "metadata": {"labels": desired["metadata"]["labels"]},
                "spec": {k: spec[k] for k in ("ports", "selector", "sessionAffinity") if k in spec},
            }
            patch["metadata"]["annotations"] = desired["metadata"].get("annotations") or {}
        elif kind == "Role" and current.get("rules") != desired["rules"]:
            patch = {"rules": desired["rules"]}
        elif kind == "RoleBinding" and current.get("subjects") != desired["subjects"]:
            patch = {"subjects": desired["subjects"]}
        elif kind == "NetworkPolicy" and current.get("spec") != desired["spec"]:
            patch = {"spec": desired["spec"]}
        if not patch:
            return "unchanged"
        await client.merge_patch(path, patch)
        return "updated"
    except kube.ApiError as error:
        if error.retryable or error.conflict:
            raise kopf.TemporaryError(f"{kind} {path}: {error}", delay=2) from error
        raise kopf.PermanentError(f"{kind} {path}: {error}") from error


async def patch_status(
    client: kube.KubeClient,
    resource: crds.ResourceNames,
    body: Mapping[str, Any],
    new_status: dict[str, Any],
) -> bool:
    """Write ``status`` when it differs from the object's; return whether it was written."""
    old = dict(body.get("status") or {})
    if conditions.status_patch(old, new_status, new_status) is None:
        return False
    meta = body["metadata"]
    try:
        return await merge_status(client, resource, meta["namespace"], meta["name"], new_status)
    except kube.ApiError as error:
        raise kopf.TemporaryError(f"status of {meta['name']}: {error}", delay=2) from error


async def merge_status(
    client: kube.KubeClient,
    resource: crds.ResourceNames,
    namespace: str,
    name: str,
    patch: Mapping[str, Any],
) -> bool:
    """Merge-patch one object's ``status`` subresource: every status write of the operator goes
    through here. False when the object is gone (nothing left to report on); other API errors
    are raised for the caller to retry or count."""
    try:
        await client.merge_patch(resource.path(namespace, name, "status"), {"status": patch})
    except kube.ApiError as error:
        if error.not_found:
            return False
        raise
    return True


def transitions(
    old: Mapping[str, Any], new: Mapping[str, Any]
) -> list[tuple[str, Mapping[str, Any]]]:
    """Conditions of ``new`` that turned False (or appeared False): (type, condition)."""
    before = {c.get("type"): c for c in old.get("conditions") or []}
    result = []
    for cond in new.get("conditions") or []:
        prev = before.get(cond["type"]) or {}
        changed = any(prev.get(k) != cond.get(k) for k in ("status", "reason", "message"))
        if cond["status"] == crds.CONDITION_FALSE and changed:
            result.append((str(cond["type"]), cond))
    return result


async def write_status(
    client: kube.KubeClient,
    resource: crds.ResourceNames,
    body: Mapping[str, Any],
    new: dict[str, Any],
    quiet_types: tuple[str, ...],
) -> None:
    """Patch ``status`` to ``new``; a Warning Event per condition newly False (but quiet ones)."""
    old = dict(body.get("status") or {})
    if await patch_status(client, resource, body, new):
        for type_, cond in transitions(old, new):
            if type_ in quiet_types:
                continue
            kopf.event(
                event_ref(body),
                type="Warning",
                reason=str(cond.get("reason")),
                message=str(cond.get("message")),
            )


async def fetch_custom(
    client: kube.KubeClient, resource: crds.ResourceNames, namespace: str, name: str
) -> dict[str, Any] | None:
    """One of our custom resources as read now, None if absent."""
    path = resource.path(namespace, name)
    try:
        return await get_or_none(client, path)
    except kube.ApiError as error:
        raise kopf.TemporaryError(f"reading {resource.kind} {namespace}/{name}: {error}") from error


async def delete_objects(client: kube.KubeClient, objects: list[dict[str, Any]]) -> None:
    """Delete objects (bindings first); already gone is fine. An object carrying an owner mark
    (external RBAC) is deleted only when it is ours: a namesake is somebody else's."""
    for obj in reversed(objects):
        try:
            if (obj["metadata"].get("annotations") or {}).get(crds.ANNOTATION_OWNER):
                current = await get_or_none(client, object_path(obj))
                if current is None or not ownership.is_ours(current, obj):
                    continue
            await client.request("DELETE", object_path(obj))
        except kube.ApiError as error:
            if not error.not_found:
                raise kopf.TemporaryError(f"deleting {obj['kind']}: {error}", delay=2) from error
