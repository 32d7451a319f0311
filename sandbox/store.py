"""Object storage, the global ``resourceVersion`` counter, event history and watch fan-out.

:class:`Store` is owned by :class:`.state.ApiState`; only it writes. Stored objects are never
mutated in place: every write stores a fresh dict, so lists, watch replays and history entries
can hand out references without deep copies (the HTTP layer only serialises them).

Indexes: objects by ``(group, plural)`` → namespace → name (O(1) get, per-namespace lists),
objects by ``metadata.uid``, and dependents by owner uid (for garbage collection).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from .resources import ResKey
from .selectors import Selector

JsonObj = dict[str, Any]
ObjRef = tuple[ResKey, str, str]  # ((group, plural), namespace or "", name)

T = TypeVar("T")

MAX_PENDING_EVENTS = 20000
"""Events queued for one watch before the server gives up on its client."""

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"


def clone(value: T) -> T:
    """Deep copy of JSON data (several times faster than ``copy.deepcopy`` for it)."""
    return cast(T, _clone(value))


def _clone(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value


@dataclass
class Event:
    """One change, kept in the bounded history and pushed to live watchers."""

    rv: int
    res: ResKey
    type: str
    obj: JsonObj
    old: JsonObj | None = None
    # serialised lines per apiVersion, so N watchers of one event encode it once
    encoded: dict[str, bytes] = field(default_factory=dict)


class Watcher:
    """A live watch: a namespace filter, a selector predicate and a queue of matching events.

    The API server's watch handler drains the queue; :meth:`Store.emit` feeds it. Selector
    transitions are translated like kube-apiserver does: an object that starts matching is
    sent as ADDED, one that stops matching as DELETED.
    """

    def __init__(
        self, res: ResKey, namespace: str | None, predicate: Callable[[JsonObj], bool]
    ) -> None:
        self.res = res
        self.namespace = namespace
        self.predicate = predicate
        self.queue: asyncio.Queue[tuple[str, JsonObj, Event | None]] = asyncio.Queue()
        self.overflowed = False

    def translate(self, ev: Event) -> tuple[str, JsonObj] | None:
        """The (type, object) this watcher should see for ``ev``, or ``None``."""
        namespace = (ev.obj.get("metadata") or {}).get("namespace", "")
        if self.namespace is not None and namespace != self.namespace:
            return None
        now = self.predicate(ev.obj)
        if ev.type == MODIFIED and ev.old is not None:
            before = self.predicate(ev.old)
            if now and before:
                return MODIFIED, ev.obj
            if now:
                return ADDED, ev.obj
            if before:
                return DELETED, ev.obj
            return None
        return (ev.type, ev.obj) if now else None

    def offer(self, ev: Event) -> None:
        """Queue ``ev`` if it concerns this watcher; end a watch whose client cannot keep up.

        kube-apiserver also closes watches whose buffer overflows; clients resume from their
        last resourceVersion (or re-list after a 410).
        """
        if self.overflowed:
            return
        if self.queue.qsize() >= MAX_PENDING_EVENTS:
            self.overflowed = True
            self.queue.put_nowait(("STOP", {}, None))
            return
        seen = self.translate(ev)
        if seen is not None:
            self.queue.put_nowait((seen[0], seen[1], ev if seen[0] == ev.type else None))


class Store:
    """In-memory objects with one global ``resourceVersion`` counter and watch history."""

    def __init__(self, history_size: int = 5000) -> None:
        self.rv = 0
        self._objects: dict[ResKey, dict[str, dict[str, JsonObj]]] = {}
        self._by_uid: dict[str, ObjRef] = {}
        self._dependents: dict[str, set[ObjRef]] = {}
        self._history: deque[Event] = deque(maxlen=max(1, history_size))
        self._watchers: dict[ResKey, set[Watcher]] = {}
        # (label key, value) -> {(namespace, name)} per resource, for selector lists
        self._labels: dict[ResKey, dict[tuple[str, str], set[tuple[str, str]]]] = {}
        # writes per resource, so caches derived from one resource (RBAC) know when to rebuild
        self.changes: dict[ResKey, int] = {}

    # --- reads ---------------------------------------------------------------------------
    def get(self, res: ResKey, namespace: str, name: str) -> JsonObj | None:
        """O(1) lookup; cluster-scoped objects live under namespace ``""``."""
        return self._objects.get(res, {}).get(namespace, {}).get(name)

    def iter(self, res: ResKey, namespace: str | None = None) -> Iterator[JsonObj]:
        """Objects of one resource, in one namespace or (``None``) all of them."""
        spaces = self._objects.get(res, {})
        if namespace is not None:
            yield from spaces.get(namespace, {}).values()
            return
        for objs in spaces.values():
            yield from objs.values()

    def candidates(
        self, res: ResKey, namespace: str | None, selector: Selector
    ) -> Iterable[JsonObj]:
        """A superset of the objects ``selector`` can match, narrowed by name or label index.

        The caller still applies the selector; this only avoids scanning every object when
        a request names one object or requires one label value (EG's ``kernel_id=<id>``).
        """
        name = selector.name()
        spaces = self._objects.get(res, {})
        if name is not None:
            if namespace is not None:
                found = spaces.get(namespace, {}).get(name)
                return [found] if found is not None else []
            return [objs[name] for objs in spaces.values() if name in objs]
        pairs = selector.label_equalities()
        if not pairs:
            return self.iter(res, namespace)
        index = self._labels.get(res, {})
        refs = min((index.get(pair, set()) for pair in pairs), key=len)
        out = []
        for ns, obj_name in sorted(refs):
            if namespace is None or ns == namespace:
                obj = spaces.get(ns, {}).get(obj_name)
                if obj is not None:
                    out.append(obj)
        return out

    def count_in_namespace(self, namespace: str) -> int:
        """How many namespaced objects of any resource still live in ``namespace``."""
        return sum(len(spaces.get(namespace, {})) for spaces in self._objects.values())

    def resources_in_namespace(self, namespace: str) -> list[ResKey]:
        """Resource keys with at least one object in ``namespace``."""
        return [res for res, spaces in self._objects.items() if spaces.get(namespace)]

    def by_uid(self, uid: str) -> ObjRef | None:
        """Where the object with ``uid`` lives, if it exists."""
        return self._by_uid.get(uid)

    def dependents(self, owner_uid: str) -> list[ObjRef]:
        """Objects whose ``ownerReferences`` name ``owner_uid``."""
        return sorted(self._dependents.get(owner_uid, ()))

    # --- writes --------------------------------------------------------------------------
    def next_rv(self) -> int:
        """Advance the global counter (one per stored change)."""
        self.rv += 1
        return self.rv

    def put(self, res: ResKey, obj: JsonObj, event_type: str, old: JsonObj | None) -> None:
        """Store ``obj`` (whose metadata already carries its new resourceVersion) and emit."""
        meta = obj["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        self._objects.setdefault(res, {}).setdefault(ns, {})[name] = obj
        self.changes[res] = self.changes.get(res, 0) + 1
        ref: ObjRef = (res, ns, name)
        if old is not None:
            self._unindex_owners(old, ref)
            self._unindex_labels(res, old)
        self._by_uid[meta["uid"]] = ref
        self._index_owners(obj, ref)
        self._index_labels(res, obj)
        self.emit(Event(int(meta["resourceVersion"]), res, event_type, obj, old))

    def remove(self, res: ResKey, namespace: str, name: str) -> JsonObj | None:
        """Delete an object for good and emit DELETED carrying a fresh resourceVersion."""
        spaces = self._objects.get(res, {})
        objs = spaces.get(namespace, {})
        old = objs.pop(name, None)
        if old is None:
            return None
        if not objs:
            spaces.pop(namespace, None)
        self.changes[res] = self.changes.get(res, 0) + 1
        ref: ObjRef = (res, namespace, name)
        self._unindex_owners(old, ref)
        self._unindex_labels(res, old)
        self._by_uid.pop(old["metadata"]["uid"], None)
        final = dict(old)
        final["metadata"] = dict(old["metadata"], resourceVersion=str(self.next_rv()))
        self.emit(Event(self.rv, res, DELETED, final, None))
        return final

    def _index_labels(self, res: ResKey, obj: JsonObj) -> None:
        meta = obj["metadata"]
        labels = meta.get("labels")
        if not isinstance(labels, dict) or not labels:
            return
        key = (meta.get("namespace", ""), meta["name"])
        index = self._labels.setdefault(res, {})
        for pair in labels.items():
            index.setdefault(pair, set()).add(key)

    def _unindex_labels(self, res: ResKey, obj: JsonObj) -> None:
        meta = obj["metadata"]
        labels = meta.get("labels")
        if not isinstance(labels, dict) or not labels:
            return
        key = (meta.get("namespace", ""), meta["name"])
        index = self._labels.get(res, {})
        for pair in labels.items():
            refs = index.get(pair)
            if refs is not None:
                refs.discard(key)
                if not refs:
                    del index[pair]

    def _index_owners(self, obj: JsonObj, ref: ObjRef) -> None:
        for owner in obj["metadata"].get("ownerReferences") or ():
            uid = owner.get("uid") if isinstance(owner, dict) else None
            if uid:
                self._dependents.setdefault(uid, set()).add(ref)

    def _unindex_owners(self, obj: JsonObj, ref: ObjRef) -> None:
        for owner in obj["metadata"].get("ownerReferences") or ():
            uid = owner.get("uid") if isinstance(owner, dict) else None
            deps = self._dependents.get(uid) if uid else None
            if deps is not None:
                deps.discard(ref)
                if not deps:
                    del self._dependents[uid]  # type: ignore[arg-type]

    # --- events & watches -------------------------------------------------------------------
    def emit(self, ev: Event) -> None:
        """Record ``ev`` in the history and hand it to live watchers of its resource."""
        self._history.append(ev)
        for watcher in list(self._watchers.get(ev.res, ())):
            watcher.offer(ev)

    def oldest_replayable(self) -> int:
        """The smallest ``resourceVersion`` a watch can resume from without a 410."""
        if len(self._history) < (self._history.maxlen or 0) or not self._history:
            return 0
        return self._history[0].rv - 1

    def history_since(self, res: ResKey, rv: int) -> list[Event]:
        """Events of ``res`` newer than ``rv`` (caller checked :meth:`oldest_replayable`)."""
        return [ev for ev in self._history if ev.rv > rv and ev.res == res]

    def subscribe(self, watcher: Watcher) -> None:
        """Start delivering live events to ``watcher``."""
        self._watchers.setdefault(watcher.res, set()).add(watcher)

    def unsubscribe(self, watcher: Watcher) -> None:
        """Stop delivering events (the watch ended or the client went away)."""
        watchers = self._watchers.get(watcher.res)
        if watchers is not None:
            watchers.discard(watcher)

    def close_watchers(self, res: ResKey) -> None:
        """End every live watch of ``res`` (its CRD is gone, as kube-apiserver does)."""
        for watcher in self._watchers.pop(res, set()):
            watcher.queue.put_nowait(("STOP", {}, None))
