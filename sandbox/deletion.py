"""DELETE semantics: finalizers, garbage collection by owner references, namespace deletion.

A mixin of :class:`.state.ApiState`. Propagation policies as kube-apiserver and the garbage
collector apply them: ``Background`` removes at once and collects dependents, ``Foreground``
waits for dependents that block their owner, ``Orphan`` strips the owner references; a deleted
namespace shows ``Terminating`` first and is emptied "soon" (``set_deferrer``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import errors
from .clock import now
from .kinds import CRDS, NAMESPACES, SERVICES
from .resources import Registry, ResKey, ResourceType
from .store import MODIFIED, Store, clone

JsonObj = dict[str, Any]

PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")


class Deletion:
    """Deleting one object or a collection, and every cascade that follows."""

    # what this mixin uses of ApiState
    store: Store
    registry: Registry
    _service_ips: set[str]
    _defer: Callable[[Callable[[], None]], None]
    get: Callable[[ResourceType, str | None, str], JsonObj]
    _unregister_crd: Callable[[JsonObj], None]

    def delete(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        *,
        propagation: str | None = None,
        preconditions: JsonObj | None = None,
        dry_run: bool = False,
    ) -> tuple[JsonObj, bool]:
        """DELETE one object. Returns ``(object, removed_now)``.

        Finalizers (including ``foregroundDeletion``/``orphan`` added for those policies) keep
        the object with a ``deletionTimestamp`` until they are gone.
        """
        obj = self.get(rt, namespace, name)
        meta = obj["metadata"]
        pre = preconditions or {}
        if pre.get("uid") and pre["uid"] != meta["uid"]:
            raise errors.conflict(
                rt.group,
                rt.plural,
                name,
                (
                    f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: "
                    f"{meta['uid']}"
                ),
            )
        if pre.get("resourceVersion") and str(pre["resourceVersion"]) != meta["resourceVersion"]:
            raise errors.conflict(
                rt.group,
                rt.plural,
                name,
                (
                    "Precondition failed: ResourceVersion in precondition: "
                    f"{pre['resourceVersion']}, "
                    f"ResourceVersion in object meta: {meta['resourceVersion']}"
                ),
            )
        if propagation not in (None, "Background", "Foreground", "Orphan"):
            raise errors.bad_request(f"propagationPolicy: Unsupported value: {propagation!r}")
        if dry_run:
            return obj, False
        if rt.key == NAMESPACES:
            return self._delete_namespace(obj), False
        policy = propagation or "Background"
        finalizers = list(meta.get("finalizers") or ())
        has_dependents = bool(self.store.dependents(meta["uid"]))
        if policy == "Foreground" and has_dependents and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if policy == "Orphan" and has_dependents and "orphan" not in finalizers:
            finalizers.append("orphan")
        if not finalizers:
            final = self._remove(rt.key, meta.get("namespace", ""), name)
            return final or obj, True
        if not meta.get("deletionTimestamp") or finalizers != meta.get("finalizers"):
            new = clone(obj)
            new_meta = new["metadata"]
            new_meta.setdefault("deletionTimestamp", now())
            new_meta.setdefault("deletionGracePeriodSeconds", 0)
            new_meta["finalizers"] = finalizers
            new_meta["resourceVersion"] = str(self.store.next_rv())
            self.store.put(rt.key, new, MODIFIED, obj)
            obj = new
        if "orphan" in finalizers:
            self._orphan_dependents(obj)
            obj = self._drop_finalizer(rt.key, obj, "orphan")
        if "foregroundDeletion" in finalizers:
            for ref in self.store.dependents(meta["uid"]):
                self._delete_ref(ref, "Background")
            current = self.store.get(rt.key, meta.get("namespace", ""), name)
            if current is not None:
                obj = self._release_foreground(rt.key, current) or obj
        still = self.store.get(rt.key, meta.get("namespace", ""), name)
        return (still, False) if still is not None else (obj, True)

    def delete_collection(
        self,
        rt: ResourceType,
        namespace: str | None,
        predicate: Callable[[JsonObj], bool],
        propagation: str | None = None,
    ) -> list[JsonObj]:
        """DELETE on a collection: delete every matching object; returns them."""
        out = []
        for obj in [o for o in self.store.iter(rt.key, namespace) if predicate(o)]:
            meta = obj["metadata"]
            if self.store.get(rt.key, meta.get("namespace", ""), meta["name"]) is None:
                continue  # already collected as a dependent of an earlier one
            out.append(
                self.delete(rt, meta.get("namespace"), meta["name"], propagation=propagation)[0]
            )
        return out

    def _remove(self, res: ResKey, namespace: str, name: str) -> JsonObj | None:
        """Remove for good, then cascade: CRD instances, dependents, owners, namespaces."""
        final = self.store.remove(res, namespace, name)
        if final is None:
            return None
        meta = final["metadata"]
        if res == CRDS:
            self._unregister_crd(final)
        if res == SERVICES:
            ip = (final.get("spec") or {}).get("clusterIP")
            self._service_ips.discard(ip or "")
        for ref in self.store.dependents(meta["uid"]):
            self._collect(ref, meta["uid"])
        for owner in meta.get("ownerReferences") or ():
            where = self.store.by_uid(owner.get("uid", "")) if isinstance(owner, dict) else None
            if where is not None:
                owner_obj = self.store.get(*where)
                if owner_obj is not None:
                    self._release_foreground(where[0], owner_obj)
        if namespace and res != NAMESPACES:
            self._maybe_finish_namespace(namespace)
        return final

    def _collect(self, ref: tuple[ResKey, str, str], owner_uid: str) -> None:
        """GC one dependent of a removed owner (kept if another owner still exists)."""
        res, ns, name = ref
        obj = self.store.get(res, ns, name)
        if obj is None:
            return
        owners = [o for o in obj["metadata"].get("ownerReferences") or () if isinstance(o, dict)]
        alive = [
            o for o in owners if o.get("uid") != owner_uid and self.store.by_uid(o.get("uid", ""))
        ]
        if alive:
            new = clone(obj)
            new["metadata"]["ownerReferences"] = [o for o in owners if o.get("uid") != owner_uid]
            new["metadata"]["resourceVersion"] = str(self.store.next_rv())
            self.store.put(res, new, MODIFIED, obj)
            return
        self._delete_ref(ref, "Background")

    def _delete_ref(self, ref: tuple[ResKey, str, str], policy: str) -> None:
        res, ns, name = ref
        rt = self.registry.any_version(res)
        if rt is None or self.store.get(res, ns, name) is None:
            return
        self.delete(rt, ns or None, name, propagation=policy)

    def _orphan_dependents(self, owner: JsonObj) -> None:
        uid = owner["metadata"]["uid"]
        for res, ns, name in self.store.dependents(uid):
            obj = self.store.get(res, ns, name)
            if obj is None:
                continue
            new = clone(obj)
            refs = [o for o in new["metadata"].get("ownerReferences") or () if o.get("uid") != uid]
            if refs:
                new["metadata"]["ownerReferences"] = refs
            else:
                new["metadata"].pop("ownerReferences", None)
            new["metadata"]["resourceVersion"] = str(self.store.next_rv())
            self.store.put(res, new, MODIFIED, obj)

    def _drop_finalizer(self, res: ResKey, obj: JsonObj, finalizer: str) -> JsonObj:
        meta = obj["metadata"]
        remaining = [f for f in meta.get("finalizers") or () if f != finalizer]
        if not remaining:
            return self._remove(res, meta.get("namespace", ""), meta["name"]) or obj
        new = clone(obj)
        new["metadata"]["finalizers"] = remaining
        new["metadata"]["resourceVersion"] = str(self.store.next_rv())
        self.store.put(res, new, MODIFIED, obj)
        return new

    def _release_foreground(self, res: ResKey, owner: JsonObj) -> JsonObj | None:
        """Drop ``foregroundDeletion`` once no dependent blocks the owner any more.

        Only dependents whose owner reference sets ``blockOwnerDeletion: true`` (as
        ``kopf.adopt`` and controllers do) hold the owner back, as in kube-controller-manager.
        """
        meta = owner["metadata"]
        if not meta.get("deletionTimestamp") or "foregroundDeletion" not in (
            meta.get("finalizers") or ()
        ):
            return None
        uid = meta["uid"]
        for dep_res, dep_ns, dep_name in self.store.dependents(uid):
            dep = self.store.get(dep_res, dep_ns, dep_name)
            refs = (dep or {}).get("metadata", {}).get("ownerReferences") or ()
            if any(r.get("uid") == uid and r.get("blockOwnerDeletion") for r in refs):
                return None
        return self._drop_finalizer(res, owner, "foregroundDeletion")

    def _delete_namespace(self, ns_obj: JsonObj) -> JsonObj:
        name = ns_obj["metadata"]["name"]
        if name in PROTECTED_NAMESPACES:
            raise errors.forbidden("", "namespaces", name, "this namespace may not be deleted")
        if ns_obj["metadata"].get("deletionTimestamp"):
            return ns_obj
        new = clone(ns_obj)
        new["metadata"]["deletionTimestamp"] = now()
        new["metadata"]["deletionGracePeriodSeconds"] = 0
        new["status"] = {"phase": "Terminating"}
        new["metadata"]["resourceVersion"] = str(self.store.next_rv())
        self.store.put(NAMESPACES, new, MODIFIED, ns_obj)
        # the namespace controller empties it asynchronously; clients see Terminating first
        self._defer(lambda: self._sweep_namespace(name))
        return new

    def _sweep_namespace(self, name: str) -> None:
        for res in self.store.resources_in_namespace(name):
            for obj in list(self.store.iter(res, name)):
                self._delete_ref((res, name, obj["metadata"]["name"]), "Background")
        self._maybe_finish_namespace(name)

    def _maybe_finish_namespace(self, name: str) -> None:
        ns_obj = self.store.get(NAMESPACES, "", name)
        if ns_obj is None or not ns_obj["metadata"].get("deletionTimestamp"):
            return
        if ns_obj["metadata"].get("finalizers") or self.store.count_in_namespace(name):
            return
        self._remove(NAMESPACES, "", name)
