"""PATCH bodies by Content-Type: JSON merge patch, JSON patch and strategic merge patch.

Called by :mod:`.state` for ``PATCH`` requests. Strategic merge patch (what kubectl sends for
built-in kinds) is applied as a merge patch that also understands the directives kubectl emits
(``$patch``, ``$setElementOrder/…``, ``$retainKeys``, ``$deleteFromPrimitiveList/…``) and merges
the well-known keyed lists (containers by ``name``, conditions by ``type``, …) element-wise, so
``kubectl apply``/``patch`` of a Pod or Deployment does not wipe sibling fields. It is not a full
implementation of the Go schema-driven algorithm.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

from .errors import ApiError, bad_request

JsonObj = dict[str, Any]

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"
SUPPORTED = (MERGE, JSON_PATCH, STRATEGIC)

# list field name -> merge key, for the lists kubectl patches element-wise
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "tolerations": "key",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
}
# lists of scalars that strategic merge unions instead of replacing
_SET_LISTS = {"finalizers"}


class PatchTestFailedError(Exception):
    """A JSON-patch ``test`` operation did not hold (answered with 409 Conflict)."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: JsonObj, ops: Any) -> JsonObj:
    """RFC 6902 on a copy of ``target``; a failed ``test`` raises :class:`PatchTestFailedError`."""
    if not isinstance(ops, list):
        raise bad_request("json patch must be a list of operations")
    try:
        result = jsonpatch.JsonPatch(ops).apply(target)
    except jsonpatch.JsonPatchTestFailed as exc:
        raise PatchTestFailedError(str(exc)) from exc
    except (
        jsonpatch.JsonPatchException,
        jsonpatch.JsonPointerException,
        TypeError,
        KeyError,
    ) as exc:
        raise ApiError(
            422,
            "Invalid",
            f"the server rejected our request due to an error in our request: {exc}",
            {},
        ) from exc
    if not isinstance(result, dict):
        raise bad_request("json patch must produce an object")
    return result


def strategic_merge_patch(target: Any, patch: Any, field_name: str = "") -> Any:
    """Merge ``patch`` into ``target`` honouring kubectl's strategic-merge directives."""
    if isinstance(patch, list):
        return _merge_list(target, patch, field_name)
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if not k.startswith("$")}
    if directive == "delete":
        return None
    result = dict(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            current = result.get(name)
            if isinstance(current, list) and isinstance(value, list):
                result[name] = [v for v in current if v not in value]
            continue
        if value is None:
            result.pop(key, None)
            continue
        merged = strategic_merge_patch(result.get(key), value, key)
        if merged is None:
            result.pop(key, None)
        else:
            result[key] = merged
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(target: Any, patch: list[Any], field_name: str) -> list[Any]:
    current = list(target) if isinstance(target, list) else []
    if field_name in _SET_LISTS:
        return current + [v for v in patch if v not in current]
    key = _MERGE_KEYS.get(field_name)
    if key is None or not all(isinstance(p, dict) for p in patch):
        return [p for p in copy.deepcopy(patch) if not (isinstance(p, dict) and "$patch" in p)]
    if any(p.get("$patch") == "replace" for p in patch):
        return [p for p in copy.deepcopy(patch) if "$patch" not in p]
    out = [c for c in current]
    for item in patch:
        ident = item.get(key)
        idx = next(
            (i for i, c in enumerate(out) if isinstance(c, dict) and c.get(key) == ident), None
        )
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            out.append(strategic_merge_patch({}, item))
        else:
            out[idx] = strategic_merge_patch(out[idx], item)
    return out


def apply_patch(content_type: str, target: JsonObj, body: Any) -> JsonObj:
    """Dispatch on the request's Content-Type (parameters such as charset ignored).

    The caller has already rejected unsupported media types with 415.
    """
    if content_type == JSON_PATCH:
        return json_patch(target, body)
    if not isinstance(body, dict):
        raise bad_request("patch body must be a JSON object")
    if content_type == STRATEGIC:
        result = strategic_merge_patch(target, body)
    else:
        result = merge_patch(target, body)
    if not isinstance(result, dict):
        raise bad_request("patch must produce an object")
    return result
