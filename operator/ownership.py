"""Metadata the JupyterGateway and JupyterNotebook builders share: pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from elastic_jupyter import crds


def owner_reference(obj: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """The controller owner reference pointing at one of our custom resources."""
    meta = obj["metadata"]
    return {
        "apiVersion": crds.API_VERSION,
        "kind": kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(
    owner_ref: dict[str, Any],
    owner_meta: Mapping[str, Any],
    labels: dict[str, str],
    name: str | None = None,
) -> dict[str, Any]:
    """Metadata of an object owned by ``owner_meta``'s resource: its namespace, labels, owner."""
    return {
        "name": name or owner_meta["name"],
        "namespace": owner_meta["namespace"],
        "labels": labels,
        "ownerReferences": [owner_ref],
    }


def opaque_secret(meta: dict[str, Any], key: str, value: str) -> dict[str, Any]:
    """An Opaque Secret holding one string."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": "Opaque",
        "stringData": {key: value},
    }


# --- Never take over what is not ours -----------------------------------------------------------


class NameConflictError(Exception):
    """An object we would write exists already and is not ours: it is left alone."""

    def __init__(self, kind: str, namespace: str | None, name: str) -> None:
        where = f"{namespace}/{name}" if namespace else name
        self.message = (
            f"{kind} {where} already exists and is not owned by this resource: it is left "
            "untouched; rename this resource or delete that object"
        )
        super().__init__(self.message)


def owner_annotation(obj: Mapping[str, Any]) -> str:
    """``<namespace>/<name>/<uid>`` of a custom resource: marks what it owns in other namespaces
    (annotation :data:`crds.ANNOTATION_OWNER`), where owner references cannot point."""
    meta = obj["metadata"]
    return f"{meta['namespace']}/{meta['name']}/{meta.get('uid')}"


def is_ours(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Whether the existing ``current`` belongs to the owner ``desired`` names.

    Ours means: a controller owner reference with the uid ``desired``'s controller reference
    has, or (objects in other namespaces) the same owner annotation. An object without either
    merely shares the name (a RoleBinding ``edit`` of the namespace, a user's ConfigMap…).
    """
    current_meta = current.get("metadata") or {}
    desired_meta = desired.get("metadata") or {}
    wanted = [r for r in desired_meta.get("ownerReferences") or [] if r.get("controller")]
    if wanted:
        uid = wanted[0].get("uid")
        return any(
            r.get("controller") and r.get("uid") == uid
            for r in current_meta.get("ownerReferences") or []
        )
    mark = (desired_meta.get("annotations") or {}).get(crds.ANNOTATION_OWNER)
    if mark:
        return bool((current_meta.get("annotations") or {}).get(crds.ANNOTATION_OWNER) == mark)
    return False


#: Conflicts found at the last reconcile, by owner uid (the status refreshes in between keep
#: reporting them; the next reconcile replaces the entry).
CONFLICTS: dict[str, list[str]] = {}
