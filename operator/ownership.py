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
