"""Deployment and ReplicaSet controllers (Deployment → ReplicaSet → Pods, as in Kubernetes).

Started by :mod:`.cli`; API clients over HTTP like kube-controller-manager's controllers.

* The **Deployment controller** keeps one ReplicaSet per pod template, named
  ``<deployment>-<pod-template-hash>`` with the ``pod-template-hash`` label and the
  ``deployment.kubernetes.io/revision`` annotation. When the template changes it rolls: the new
  ReplicaSet is scaled up within ``maxSurge`` and old ones scaled down as new pods become
  available within ``maxUnavailable`` (``RollingUpdate``, defaults 25 %/25 %), or old ones first
  (``Recreate``). It writes ``status`` (replicas, updatedReplicas, readyReplicas,
  availableReplicas, unavailableReplicas, observedGeneration, Available and Progressing
  conditions) so ``kubectl rollout status`` works, and prunes old ReplicaSets beyond
  ``revisionHistoryLimit``.
* The **ReplicaSet controller** creates and deletes pods (``generateName`` ``<rs>-``, controller
  ownerReference, so garbage collection deletes them with their owner) to match ``replicas``,
  replaces pods that terminated, and writes replicas/readyReplicas/availableReplicas.

Not emulated: paused deployments, adopting orphan pods by selector, progress deadlines.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import time
from datetime import datetime, timezone
from typing import Any

from .clock import now
from .kubeclient import ApiError, Informer, KubeClient, Obj, WorkQueue, cancel_tasks, resource_path

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_EXPECTATION_TTL = 30.0


def template_hash(template: Obj, collision_count: int = 0) -> str:
    """A stable, label-safe hash of a pod template (FNV-1a 32, encoded as Kubernetes does)."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += str(collision_count).encode()
    value = 0x811C9DC5
    for byte in data:
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE_ALPHABET[ord(ch) % len(_SAFE_ALPHABET)] for ch in str(value))


def _strip_hash(template: Obj) -> Obj:
    result = copy.deepcopy(template)
    labels = (result.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return result


def controller_of(obj: Obj) -> Obj | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def owner_ref(owner: Obj, kind: str, api_version: str) -> Obj:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _scaled(value: Any, total: int, round_up: bool) -> int:
    """Resolve an int-or-percent like ``maxSurge: 25%`` against ``total``."""
    if value is None:
        return 0
    text = str(value)
    if text.endswith("%"):
        amount = int(text[:-1]) * total / 100
        return math.ceil(amount) if round_up else math.floor(amount)
    return int(text)


def rolling_limits(deployment: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) of a RollingUpdate deployment, never both zero."""
    spec = deployment.get("spec") or {}
    desired = int(spec.get("replicas", 1))
    rolling = ((spec.get("strategy") or {}).get("rollingUpdate")) or {}
    surge = _scaled(rolling.get("maxSurge", "25%"), desired, True)
    unavailable = _scaled(rolling.get("maxUnavailable", "25%"), desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def pod_ready(pod: Obj) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def pod_available(pod: Obj, min_ready_seconds: int) -> bool:
    if not pod_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("lastTransitionTime"):
            since = datetime.strptime(cond["lastTransitionTime"], "%Y-%m-%dT%H:%M:%SZ")
            age = datetime.now(timezone.utc).replace(tzinfo=None) - since
            return age.total_seconds() >= min_ready_seconds
    return False


def pod_active(pod: Obj) -> bool:
    return not (pod.get("metadata") or {}).get("deletionTimestamp") and (
        pod.get("status") or {}
    ).get("phase") not in ("Succeeded", "Failed")


def _deletion_rank(pod: Obj) -> tuple[int, int, int, str]:
    """Which pods a scale-down removes first: unscheduled, pending, not ready, newest."""
    status = pod.get("status") or {}
    return (
        0 if not (pod.get("spec") or {}).get("nodeName") else 1,
        0 if status.get("phase") == "Pending" else 1,
        1 if pod_ready(pod) else 0,
        "".join(chr(0x10FFFF - ord(c)) for c in str(pod["metadata"].get("creationTimestamp", ""))),
    )


class DeploymentControllers:
    """Both controllers over shared informers; ``await start()`` then ``await stop()``."""

    def __init__(self, api_url: str, *, token: str = "") -> None:
        self.client = KubeClient(api_url, user_agent="sandbox-controller-manager", token=token)
        self.deployments = Informer(
            self.client, resource_path("apps/v1", "deployments"), self._on_deployment
        )
        self.replicasets = Informer(
            self.client, resource_path("apps/v1", "replicasets"), self._on_replicaset
        )
        self.pods = Informer(self.client, resource_path("v1", "pods"), self._on_pod)
        self.deploy_queue: WorkQueue[tuple[str, str]] = WorkQueue()
        self.rs_queue: WorkQueue[tuple[str, str]] = WorkQueue()
        # ReplicaSet uid → {pod name: deadline} created/deleted but not yet seen by the watch,
        # so that a reconcile racing its own writes neither doubles nor undoes them.
        self.expected_creates: dict[str, dict[str, float]] = {}
        self.expected_deletes: dict[str, dict[str, float]] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        self._sweeps: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        informers = (self.deployments, self.replicasets, self.pods)
        self._tasks = [asyncio.create_task(i.run()) for i in informers]
        for informer in informers:
            await asyncio.wait_for(informer.synced.wait(), 30)
        self._tasks.append(
            asyncio.create_task(self.deploy_queue.run(self.sync_deployment, "deploy"))
        )
        self._tasks.append(asyncio.create_task(self.rs_queue.run(self.sync_replicaset, "rs")))

    async def stop(self) -> None:
        await cancel_tasks([*self._tasks, *self._sweeps])
        await self.client.close()

    # -- event routing --

    async def _on_deployment(self, etype: str, obj: Obj, old: Obj | None) -> None:
        if etype != "DELETED":
            self.deploy_queue.add((obj["metadata"].get("namespace", ""), obj["metadata"]["name"]))
        else:
            self._sweep_later(obj, "apps/v1", "replicasets", self.replicasets)

    async def _on_replicaset(self, etype: str, obj: Obj, old: Obj | None) -> None:
        ns = obj["metadata"].get("namespace", "")
        if etype != "DELETED":
            self.rs_queue.add((ns, obj["metadata"]["name"]))
        else:
            self._sweep_later(obj, "v1", "pods", self.pods)
            self.expected_creates.pop(str(obj["metadata"].get("uid")), None)
            self.expected_deletes.pop(str(obj["metadata"].get("uid")), None)
        owner = controller_of(obj)
        if owner is not None and owner.get("kind") == "Deployment":
            self.deploy_queue.add((ns, str(owner.get("name"))))

    async def _on_pod(self, etype: str, obj: Obj, old: Obj | None) -> None:
        owner = controller_of(obj)
        if owner is None or owner.get("kind") != "ReplicaSet":
            return
        rs_uid = str(owner.get("uid"))
        name = obj["metadata"]["name"]
        if etype == "DELETED":
            self.expected_deletes.get(rs_uid, {}).pop(name, None)
        else:
            self.expected_creates.get(rs_uid, {}).pop(name, None)
        self.rs_queue.add((obj["metadata"].get("namespace", ""), str(owner.get("name"))))

    def _sweep_later(self, owner: Obj, api_version: str, plural: str, informer: Informer) -> None:
        """Delete what we created for an owner that is gone, once in-flight creates landed.

        The owner's DELETED event and its children's events come on different watches, so a
        sync may create a child just after the owner was removed; garbage collection keyed on
        the owner's removal would miss it (Kubernetes' GC also deletes such dangling children).
        """
        uid = str(owner["metadata"].get("uid"))
        ns = str(owner["metadata"].get("namespace") or "")

        async def sweep() -> None:
            await asyncio.sleep(1.0)
            for child in informer.items():
                if (controller_of(child) or {}).get("uid") == uid:
                    name = str(child["metadata"]["name"])
                    await self.client.delete(resource_path(api_version, plural, ns, name))

        task = asyncio.create_task(sweep())
        self._sweeps.add(task)
        task.add_done_callback(self._sweeps.discard)

    # -- ReplicaSets --

    def _owned_pods(self, rs: Obj) -> list[Obj]:
        uid = rs["metadata"]["uid"]
        return [
            p
            for p in self.pods.items()
            if (controller_of(p) or {}).get("uid") == uid
            and p["metadata"].get("namespace") == rs["metadata"].get("namespace")
        ]

    @staticmethod
    def _live(expectations: dict[str, float]) -> set[str]:
        moment = time.monotonic()
        for name in [n for n, deadline in expectations.items() if deadline < moment]:
            expectations.pop(name, None)
        return set(expectations)

    async def sync_replicaset(self, key: tuple[str, str]) -> None:
        rs = self.replicasets.get(*key)
        if rs is None or rs["metadata"].get("deletionTimestamp"):
            return
        ns, name = key
        uid = rs["metadata"]["uid"]
        spec = rs.get("spec") or {}
        desired = int(spec.get("replicas", 1))
        creating = self._live(self.expected_creates.setdefault(uid, {}))
        deleting = self._live(self.expected_deletes.setdefault(uid, {}))
        pods = self._owned_pods(rs)
        active = [p for p in pods if pod_active(p) and p["metadata"]["name"] not in deleting]
        count = len(active) + len(creating - {p["metadata"]["name"] for p in pods})
        pods_path = resource_path("v1", "pods", ns)
        if count < desired:
            template = spec.get("template") or {}
            for _ in range(desired - count):
                meta = copy.deepcopy(template.get("metadata") or {})
                meta.pop("name", None)
                meta["generateName"] = f"{name}-"
                meta["namespace"] = ns
                meta["ownerReferences"] = [owner_ref(rs, "ReplicaSet", "apps/v1")]
                pod = {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": meta,
                    "spec": copy.deepcopy(template.get("spec") or {}),
                }
                created = await self.client.create(pods_path, pod)
                self.expected_creates[uid][created["metadata"]["name"]] = (
                    time.monotonic() + _EXPECTATION_TTL
                )
        elif count > desired:
            for pod in sorted(active, key=_deletion_rank)[: count - desired]:
                pod_name = pod["metadata"]["name"]
                self.expected_deletes[uid][pod_name] = time.monotonic() + _EXPECTATION_TTL
                await self.client.delete(resource_path("v1", "pods", ns, pod_name))
        await self._replicaset_status(rs, active)

    async def _replicaset_status(self, rs: Obj, active: list[Obj]) -> None:
        min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
        labels = ((rs.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels")
        labels = labels or {}
        status = {
            "replicas": len(active),
            "fullyLabeledReplicas": sum(
                1
                for p in active
                if all(p["metadata"].get("labels", {}).get(k) == v for k, v in labels.items())
            ),
            "readyReplicas": sum(1 for p in active if pod_ready(p)),
            "availableReplicas": sum(1 for p in active if pod_available(p, min_ready)),
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        if min_ready and status["availableReplicas"] < status["readyReplicas"]:
            self.rs_queue.add_after(
                (rs["metadata"].get("namespace", ""), rs["metadata"]["name"]), 1.0
            )
        current = rs.get("status") or {}
        if all(current.get(k, 0) == v for k, v in status.items()):
            return
        path = resource_path(
            "apps/v1", "replicasets", rs["metadata"].get("namespace"), rs["metadata"]["name"]
        )
        try:
            await self.client.patch(path + "/status", {"status": status})
        except ApiError as err:
            if err.code != 404:
                raise

    # -- Deployments --

    def _owned_replicasets(self, deployment: Obj) -> list[Obj]:
        uid = deployment["metadata"]["uid"]
        return [
            rs
            for rs in self.replicasets.items()
            if (controller_of(rs) or {}).get("uid") == uid
            and not rs["metadata"].get("deletionTimestamp")
        ]

    async def sync_deployment(self, key: tuple[str, str]) -> None:
        deployment = self.deployments.get(*key)
        if deployment is None or deployment["metadata"].get("deletionTimestamp"):
            return
        ns = key[0]
        spec = deployment.get("spec") or {}
        desired = int(spec.get("replicas", 1))
        template = spec.get("template") or {}
        owned = self._owned_replicasets(deployment)
        new_rs = next(
            (
                rs
                for rs in owned
                if _strip_hash((rs.get("spec") or {}).get("template") or {})
                == _strip_hash(template)
            ),
            None,
        )
        olds = [rs for rs in owned if rs is not new_rs]
        revisions = [int(rs["metadata"].get("annotations", {}).get(REVISION, "0")) for rs in owned]
        rs_path = resource_path("apps/v1", "replicasets", ns)
        strategy = str((spec.get("strategy") or {}).get("type") or "RollingUpdate")
        surge, unavailable = rolling_limits(deployment) if strategy == "RollingUpdate" else (0, 0)

        if new_rs is None:
            new_rs = await self._create_replicaset(
                deployment, rs_path, max(revisions, default=0) + 1
            )
            if new_rs is None:
                return
        elif olds and int(new_rs["metadata"].get("annotations", {}).get(REVISION, "0")) < max(
            revisions
        ):
            # Rolled back to an older template: it becomes the newest revision again.
            await self.client.patch(
                resource_path("apps/v1", "replicasets", ns, new_rs["metadata"]["name"]),
                {"metadata": {"annotations": {REVISION: str(max(revisions) + 1)}}},
            )

        new_replicas = int((new_rs.get("spec") or {}).get("replicas", 0))
        old_total = sum(int((rs.get("spec") or {}).get("replicas", 0)) for rs in olds)
        if strategy == "Recreate":
            if old_total > 0:
                for rs in olds:
                    await self._scale(rs, 0)
                target_new = 0
            elif any(self._pods_of(rs) for rs in olds):
                target_new = new_replicas  # wait for old pods to be gone
            else:
                target_new = desired
            if target_new != new_replicas:
                await self._scale(new_rs, target_new)
        else:
            # Scale the new ReplicaSet up within maxSurge (counted on specs, not statuses)...
            if new_replicas > desired:
                target_new = desired
            else:
                room = desired + surge - (new_replicas + old_total)
                target_new = min(desired, new_replicas + max(0, room))
            if target_new != new_replicas:
                await self._scale(new_rs, target_new)
            # ...and old ones down while at least desired - maxUnavailable stay available. As in
            # Kubernetes the budget starts from spec totals, so a stale status never lets two
            # syncs in a row scale the same pods away twice.
            new_available = int((new_rs.get("status") or {}).get("availableReplicas", 0))
            budget = (
                (target_new + old_total)
                - (desired - unavailable)
                - max(0, target_new - new_available)
            )
            for rs in sorted(olds, key=lambda r: str(r["metadata"].get("creationTimestamp", ""))):
                current = int((rs.get("spec") or {}).get("replicas", 0))
                if budget <= 0:
                    break
                if current == 0:
                    continue
                step = min(current, budget)
                await self._scale(rs, current - step)
                budget -= step
        await self._prune_history(deployment, olds)
        await self._deployment_status(deployment, new_rs, owned, desired, unavailable)

    def _pods_of(self, rs: Obj) -> list[Obj]:
        return [p for p in self._owned_pods(rs) if not p["metadata"].get("deletionTimestamp")]

    async def _create_replicaset(self, deployment: Obj, path: str, revision: int) -> Obj | None:
        spec = deployment.get("spec") or {}
        collision = int((deployment.get("status") or {}).get("collisionCount", 0))
        template = copy.deepcopy(spec.get("template") or {})
        digest = template_hash(template, collision)
        meta = template.setdefault("metadata", {})
        meta.setdefault("labels", {})[HASH_LABEL] = digest
        selector = copy.deepcopy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = digest
        desired = int(spec.get("replicas", 1))
        surge, _ = rolling_limits(deployment)
        name = deployment["metadata"]["name"]
        body = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{name}-{digest}",
                "namespace": deployment["metadata"].get("namespace"),
                "labels": dict(meta["labels"]),
                "annotations": {
                    REVISION: str(revision),
                    DESIRED: str(desired),
                    MAX_REPLICAS: str(desired + surge),
                },
                "ownerReferences": [owner_ref(deployment, "Deployment", "apps/v1")],
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": int(spec.get("minReadySeconds") or 0),
                "selector": selector,
                "template": template,
            },
        }
        try:
            created = await self.client.create(path, body)
        except ApiError as err:
            if err.code != 409:
                raise
            # A foreign ReplicaSet holds the name: bump collisionCount, as Kubernetes does.
            await self._patch_deployment_status(deployment, {"collisionCount": collision + 1})
            return None
        await self.client.patch(
            resource_path("apps/v1", "deployments", deployment["metadata"].get("namespace"), name),
            {"metadata": {"annotations": {REVISION: str(revision)}}},
        )
        return created

    async def _scale(self, rs: Obj, replicas: int) -> None:
        path = resource_path(
            "apps/v1", "replicasets", rs["metadata"].get("namespace"), rs["metadata"]["name"]
        )
        await self.client.patch(path, {"spec": {"replicas": replicas}})

    async def _prune_history(self, deployment: Obj, olds: list[Obj]) -> None:
        limit = int((deployment.get("spec") or {}).get("revisionHistoryLimit", 10))
        idle = [
            rs
            for rs in olds
            if int((rs.get("spec") or {}).get("replicas", 0)) == 0
            and int((rs.get("status") or {}).get("replicas", 0)) == 0
        ]
        idle.sort(key=lambda r: int(r["metadata"].get("annotations", {}).get(REVISION, "0")))
        for rs in idle[: max(0, len(idle) - limit)]:
            await self.client.delete(
                resource_path(
                    "apps/v1",
                    "replicasets",
                    rs["metadata"].get("namespace"),
                    rs["metadata"]["name"],
                )
            )

    async def _deployment_status(
        self, deployment: Obj, new_rs: Obj, owned: list[Obj], desired: int, unavailable: int
    ) -> None:
        def total(field: str, sets: list[Obj]) -> int:
            return sum(int((rs.get("status") or {}).get(field, 0)) for rs in sets)

        everything = owned if any(rs is new_rs for rs in owned) else [*owned, new_rs]
        available = total("availableReplicas", everything)
        updated = int((new_rs.get("status") or {}).get("replicas", 0))
        replicas = total("replicas", everything)
        new_name = new_rs["metadata"]["name"]
        minimum = available >= desired - unavailable
        complete = (
            updated == desired
            and replicas == desired
            and available >= desired
            and int((new_rs.get("status") or {}).get("availableReplicas", 0)) >= desired
        )
        old_conditions = {
            c.get("type"): c for c in (deployment.get("status") or {}).get("conditions") or []
        }

        def condition(ctype: str, ok: bool, reason: str, message: str) -> Obj:
            previous = old_conditions.get(ctype) or {}
            value = "True" if ok else "False"
            stamp = now()
            same = previous.get("status") == value
            return {
                "type": ctype,
                "status": value,
                "reason": reason,
                "message": message,
                "lastUpdateTime": previous.get("lastUpdateTime", stamp)
                if same and previous.get("reason") == reason
                else stamp,
                "lastTransitionTime": previous.get("lastTransitionTime", stamp) if same else stamp,
            }

        status: Obj = {
            "observedGeneration": deployment["metadata"].get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": total("readyReplicas", everything),
            "availableReplicas": available,
            "unavailableReplicas": max(0, replicas - available),
            "conditions": [
                condition(
                    "Available",
                    minimum,
                    "MinimumReplicasAvailable" if minimum else "MinimumReplicasUnavailable",
                    "Deployment has minimum availability."
                    if minimum
                    else "Deployment does not have minimum availability.",
                ),
                condition(
                    "Progressing",
                    True,
                    "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                    f'ReplicaSet "{new_name}" has successfully progressed.'
                    if complete
                    else f'ReplicaSet "{new_name}" is progressing.',
                ),
            ],
        }
        current = deployment.get("status") or {}
        comparable = {k: v for k, v in status.items() if k != "conditions"}
        same_conditions = [(c["type"], c["status"], c["reason"]) for c in status["conditions"]] == [
            (c.get("type"), c.get("status"), c.get("reason"))
            for c in current.get("conditions") or []
        ]
        if same_conditions and all(current.get(k, 0) == v for k, v in comparable.items()):
            return
        await self._patch_deployment_status(deployment, status)

    async def _patch_deployment_status(self, deployment: Obj, status: Obj) -> None:
        path = resource_path(
            "apps/v1",
            "deployments",
            deployment["metadata"].get("namespace"),
            deployment["metadata"]["name"],
        )
        try:
            await self.client.patch(path + "/status", {"status": status})
        except ApiError as err:
            if err.code != 404:
                raise
