"""Subresources with semantics of their own: ``pods/binding`` and ``<resource>/scale``.

A mixin of :class:`.state.ApiState` (``status`` is a mode of its write pipeline instead).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import errors
from .clock import now
from .errors import Cause
from .kinds import PODS
from .resources import ResKey, ResourceType
from .store import MODIFIED, Store, clone

if TYPE_CHECKING:
    from .state import WriteResult

JsonObj = dict[str, Any]


class Subresources:
    """Binding a pod to a node; reading and writing a scale."""

    # what this mixin uses of ApiState
    store: Store
    rt: Callable[[ResKey], ResourceType]
    get: Callable[[ResourceType, str | None, str], JsonObj]
    _write: Callable[[ResourceType, JsonObj, JsonObj, str | None, bool, str], WriteResult]

    def bind(self, namespace: str, name: str, body: Any) -> JsonObj:
        """POST pods/{name}/binding: set ``spec.nodeName`` (what the scheduler calls)."""
        pods = self.rt(PODS)
        pod = self.get(pods, namespace, name)
        target = (body or {}).get("target") if isinstance(body, dict) else None
        node = (target or {}).get("name") if isinstance(target, dict) else None
        if not node:
            raise errors.invalid(
                "Binding", "", name, [Cause("FieldValueRequired", "Required value", "target.name")]
            )
        current = (pod.get("spec") or {}).get("nodeName")
        if current:
            raise errors.conflict(
                "", "pods/binding", name, f'pod {name} is already assigned to node "{current}"'
            )
        new = clone(pod)
        new["spec"]["nodeName"] = node
        conditions = [
            c
            for c in (new.setdefault("status", {}).get("conditions") or ())
            if c.get("type") != "PodScheduled"
        ]
        conditions.append(
            {
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": now(),
            }
        )
        new["status"]["conditions"] = conditions
        new["metadata"]["resourceVersion"] = str(self.store.next_rv())
        self.store.put(PODS, new, MODIFIED, pod)
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "code": 201,
        }

    def get_scale(self, rt: ResourceType, namespace: str | None, name: str) -> JsonObj:
        """GET <resource>/scale as an ``autoscaling/v1`` Scale."""
        obj = self.get(rt, namespace, name)
        spec_path, status_path, selector_path = self._scale_paths(rt)
        selector = _dig(obj, selector_path) if selector_path else None
        if isinstance(selector, dict):
            selector = ",".join(f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items())
        meta = obj["metadata"]
        scale: JsonObj = {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: meta[k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in meta
            },
            "spec": {"replicas": int(_dig(obj, spec_path) or 0)},
            "status": {"replicas": int(_dig(obj, status_path) or 0)},
        }
        if selector:
            scale["status"]["selector"] = selector
        return scale

    def update_scale(
        self, rt: ResourceType, namespace: str | None, name: str, replicas: Any
    ) -> JsonObj:
        """PUT/PATCH <resource>/scale: write ``spec.replicas`` of the parent object."""
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise errors.invalid(
                "Scale",
                "autoscaling",
                name,
                [
                    Cause(
                        "FieldValueInvalid",
                        f"Invalid value: {replicas!r}: must be greater than or equal to 0",
                        "spec.replicas",
                    )
                ],
            )
        obj = self.get(rt, namespace, name)
        spec_path = self._scale_paths(rt)[0]
        new = clone(obj)
        _put(new, spec_path, replicas)
        self._write(rt, obj, new, None, False, "Ignore")
        return self.get_scale(rt, namespace, name)

    def _scale_paths(self, rt: ResourceType) -> tuple[str, str, str | None]:
        if rt.scale_paths:
            return (
                rt.scale_paths.get("specReplicasPath", ".spec.replicas"),
                rt.scale_paths.get("statusReplicasPath", ".status.replicas"),
                rt.scale_paths.get("labelSelectorPath"),
            )
        return ".spec.replicas", ".status.replicas", ".spec.selector"


def _dig(obj: JsonObj, path: str) -> Any:
    cur: Any = obj
    for part in path.strip(".").split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _put(obj: JsonObj, path: str, value: Any) -> None:
    parts = path.strip(".").split(".")
    cur = obj
    for part in parts[:-1]:
        cur = cur.setdefault(part, {})
    cur[parts[-1]] = value
