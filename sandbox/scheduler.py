"""The sandbox scheduler: binds pending pods to a node whose free resources fit them.

Started by :mod:`.cli` beside the kubelet; an API client over HTTP like kube-scheduler. It
watches all pods and nodes; a pod with no ``spec.nodeName`` (and ``schedulerName`` unset or
``default-scheduler``) is bound with ``POST pods/{name}/binding`` to the first node that

* is Ready and not ``spec.unschedulable``,
* matches ``nodeSelector`` and required node affinity (In/NotIn/Exists/DoesNotExist/Gt/Lt),
* has no NoSchedule/NoExecute taint the pod does not tolerate,
* has allocatable cpu, memory, pods, ``nvidia.com/gpu`` and any extended resource left after
  the requests of the non-terminated pods already on it.

Otherwise the pod gets ``PodScheduled=False, reason=Unschedulable`` with kube-scheduler's
message (``0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: ...``) and a
``FailedScheduling`` event, and is retried whenever a pod terminates or is deleted or a node
changes, which is when capacity can free up.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from fractions import Fraction
from typing import Any

import aiohttp

from .clock import now
from .kubeclient import ApiError, Informer, KubeClient, Obj, WorkQueue, cancel_tasks, resource_path
from .quantity import parse_quantity, pod_requests

log = logging.getLogger(__name__)
SCHEDULER_NAME = "default-scheduler"
_TERMINAL = ("Succeeded", "Failed")


# --- pure fit checks ----------------------------------------------------------------------------


def _match_expression(labels: dict[str, str], expr: Obj) -> bool:
    key, op = str(expr.get("key")), str(expr.get("operator"))
    values = [str(v) for v in expr.get("values") or []]
    present = key in labels
    if op == "In":
        return present and labels[key] in values
    if op == "NotIn":
        return not present or labels[key] not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt") and present and values:
        try:
            left, right = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return left > right if op == "Gt" else left < right
    return False


def node_selector_matches(pod: Obj, node: Obj) -> bool:
    """``nodeSelector`` and ``requiredDuringSchedulingIgnoredDuringExecution`` node affinity."""
    spec = pod.get("spec") or {}
    labels = {str(k): str(v) for k, v in ((node.get("metadata") or {}).get("labels") or {}).items()}
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(str(key)) != str(value):
            return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms") or []
    if terms:
        return any(
            all(_match_expression(labels, e) for e in term.get("matchExpressions") or [])
            for term in terms
        )
    return True


def _tolerates(toleration: Obj, taint: Obj) -> bool:
    if toleration.get("effect") and toleration.get("effect") != taint.get("effect"):
        return False
    if toleration.get("operator") == "Exists":
        return not toleration.get("key") or toleration.get("key") == taint.get("key")
    return bool(
        toleration.get("key") == taint.get("key")
        and str(toleration.get("value") or "") == str(taint.get("value") or "")
    )


def untolerated_taint(pod: Obj, node: Obj) -> Obj | None:
    """The first NoSchedule/NoExecute taint of the node the pod does not tolerate."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(_tolerates(t, taint) for t in tolerations):
            return dict(taint)
    return None


def node_ready(node: Obj) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def fit_failures(pod: Obj, node: Obj, node_pods: list[Obj]) -> tuple[list[str], bool]:
    """Why the pod cannot go on this node (empty: it fits) and whether preemption could help.

    ``node_pods`` are the non-terminated pods already bound (or being bound) to the node.
    """
    used: dict[str, Fraction] = {}
    for other in node_pods:
        for name, amount in pod_requests(other).items():
            used[name] = used.get(name, Fraction(0)) + amount
    return fit_failures_used(pod, node, len(node_pods), used)


def fit_failures_used(
    pod: Obj,
    node: Obj,
    pod_count: int,
    used: dict[str, Fraction],
    requests: dict[str, Fraction] | None = None,
) -> tuple[list[str], bool]:
    """:func:`fit_failures` given the node's pod count and summed requests (kept by the caller).

    The scheduler keeps these sums up to date as pods come and go, so one attempt costs the
    same whether 10 or 1000 pods already run on the node.
    """
    if (node.get("spec") or {}).get("unschedulable"):
        return ["node(s) were unschedulable"], False
    if not node_ready(node):
        return ["node(s) had untolerated taint {node.kubernetes.io/not-ready: }"], False
    if not node_selector_matches(pod, node):
        return ["node(s) didn't match Pod's node affinity/selector"], False
    taint = untolerated_taint(pod, node)
    if taint is not None:
        return [
            f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}"
        ], (False)
    allocatable = {
        k: parse_quantity(v)
        for k, v in ((node.get("status") or {}).get("allocatable") or {}).items()
    }
    reasons = []
    if pod_count + 1 > allocatable.get("pods", Fraction(110)):
        reasons.append("Too many pods")
    wanted = pod_requests(pod) if requests is None else requests
    for name, amount in sorted(wanted.items()):
        if amount <= 0:
            continue
        free = allocatable.get(name, Fraction(0)) - used.get(name, Fraction(0))
        if amount > free:
            reasons.append(f"Insufficient {name}")
    return reasons, True


def unschedulable_message(failures: list[tuple[list[str], bool]]) -> str:
    """kube-scheduler's FitError message for the per-node failures of one attempt."""
    total = len(failures)
    if total == 0:
        return "no nodes available to schedule pods"
    counts: Counter[str] = Counter()
    preemption: Counter[str] = Counter()
    for reasons, helpful in failures:
        counts.update(reasons)
        if helpful:
            preemption["No preemption victims found for incoming pod"] += 1
        else:
            preemption["Preemption is not helpful for scheduling"] += 1
    head = ", ".join(f"{n} {r}" for r, n in sorted(counts.items()))
    tail = ", ".join(f"{n} {r}" for r, n in sorted(preemption.items()))
    return (
        f"0/{total} nodes are available: {head}. preemption: 0/{total} nodes are available: {tail}."
    )


# --- the controller -----------------------------------------------------------------------------


class Scheduler:
    """``await start()`` then ``await stop()``; see the module docstring."""

    # Bindings in flight at once: like kube-scheduler's asynchronous binding cycle, the next
    # pod is scheduled (against the assumed placement) while earlier bindings are being written.
    MAX_BINDING = 16

    def __init__(self, api_url: str, *, name: str = SCHEDULER_NAME, token: str = "") -> None:
        self.name = name
        self.client = KubeClient(api_url, user_agent="sandbox-scheduler", token=token)
        self.queue: WorkQueue[tuple[str, str]] = WorkQueue()
        self.pods = Informer(self.client, resource_path("v1", "pods"), self._on_pod, name="pods")
        self.nodes = Informer(
            self.client, resource_path("v1", "nodes"), self._on_node, name="nodes"
        )
        # Pods bound by us whose binding the watch has not shown yet: uid → (node, pod).
        self.assumed: dict[str, tuple[str, Obj]] = {}
        # What each node holds, kept up to date on every pod event instead of summing all pods
        # per attempt: uid → (node, requests) of every non-terminated bound or assumed pod, and
        # per node the pod count and summed requests.
        self._placed: dict[str, tuple[str, dict[str, Fraction]]] = {}
        self._node_pods: Counter[str] = Counter()
        self._node_used: dict[str, dict[str, Fraction]] = {}
        self._binding: set[asyncio.Task[None]] = set()
        self._bind_slots = asyncio.Semaphore(self.MAX_BINDING)
        self._tasks: list[asyncio.Task[Any]] = []

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self.nodes.run(), name="scheduler nodes"),
            asyncio.create_task(self.pods.run(), name="scheduler pods"),
        ]
        await asyncio.wait_for(self.nodes.synced.wait(), 30)
        await asyncio.wait_for(self.pods.synced.wait(), 30)
        self._tasks.append(
            asyncio.create_task(self.queue.run(self.schedule, "scheduler"), name="scheduler")
        )

    async def stop(self) -> None:
        await cancel_tasks(self._tasks + list(self._binding))
        await self.client.close()

    def _wants(self, pod: Obj) -> bool:
        spec = pod.get("spec") or {}
        meta = pod.get("metadata") or {}
        return (
            not spec.get("nodeName")
            and not meta.get("deletionTimestamp")
            and (spec.get("schedulerName") or SCHEDULER_NAME) == self.name
            and (pod.get("status") or {}).get("phase") not in _TERMINAL
        )

    def _requeue_pending(self) -> None:
        pending = [p for p in self.pods.items() if self._wants(p)]
        pending.sort(key=lambda p: str(p["metadata"].get("creationTimestamp") or ""))
        for pod in pending:
            self.queue.add((pod["metadata"].get("namespace") or "", pod["metadata"]["name"]))

    # -- per-node accounting --

    def _unplace(self, uid: str) -> None:
        placed = self._placed.pop(uid, None)
        if placed is None:
            return
        node, requests = placed
        self._node_pods[node] -= 1
        if self._node_pods[node] <= 0:
            del self._node_pods[node]
        used = self._node_used.setdefault(node, {})
        for name, amount in requests.items():
            used[name] = used.get(name, Fraction(0)) - amount

    def _place(self, uid: str, node: str, pod: Obj) -> None:
        current = self._placed.get(uid)
        if current is not None and current[0] == node:
            return  # a pod's requests never change once it is bound
        self._unplace(uid)
        requests = pod_requests(pod)
        self._placed[uid] = (node, requests)
        self._node_pods[node] += 1
        used = self._node_used.setdefault(node, {})
        for name, amount in requests.items():
            used[name] = used.get(name, Fraction(0)) + amount

    def _account(self, uid: str, pod: Obj | None) -> None:
        """Count the pod on its node while it is assumed, or bound and not terminated."""
        assumed = self.assumed.get(uid)
        node = str(((pod or {}).get("spec") or {}).get("nodeName") or "")
        if assumed is not None:
            self._place(uid, assumed[0], assumed[1])
        elif pod is not None and node and (pod.get("status") or {}).get("phase") not in _TERMINAL:
            self._place(uid, node, pod)
        else:
            self._unplace(uid)

    # -- watch handlers --

    async def _on_pod(self, etype: str, pod: Obj, old: Obj | None) -> None:
        uid = str(pod["metadata"].get("uid"))
        if etype == "DELETED" or (pod.get("spec") or {}).get("nodeName"):
            self.assumed.pop(uid, None)
        old_uid = str(((old or {}).get("metadata") or {}).get("uid"))
        if old is not None and old_uid != uid:
            self._account(old_uid, None)  # replaced under the same name while we relisted
        self._account(uid, None if etype == "DELETED" else pod)
        if etype == "DELETED":
            if (pod.get("spec") or {}).get("nodeName"):
                self._requeue_pending()
            return
        if self._wants(pod):
            self.queue.add((pod["metadata"].get("namespace") or "", pod["metadata"]["name"]))
            return
        phase = (pod.get("status") or {}).get("phase")
        old_phase = ((old or {}).get("status") or {}).get("phase")
        if phase in _TERMINAL and old_phase not in _TERMINAL:
            self._requeue_pending()

    async def _on_node(self, etype: str, node: Obj, old: Obj | None) -> None:
        self._requeue_pending()

    # -- scheduling --

    async def schedule(self, key: tuple[str, str]) -> None:
        """Assume one pod onto a node and bind it in the background, or record why it cannot
        be bound (called by the work queue).
        """
        pod = self.pods.get(*key)
        if pod is None or not self._wants(pod) or str(pod["metadata"].get("uid")) in self.assumed:
            return
        requests = pod_requests(pod)
        failures: list[tuple[list[str], bool]] = []
        for node in sorted(self.nodes.items(), key=lambda n: str(n["metadata"]["name"])):
            node_name = str(node["metadata"]["name"])
            reasons, helpful = fit_failures_used(
                pod,
                node,
                self._node_pods.get(node_name, 0),
                self._node_used.get(node_name, {}),
                requests,
            )
            if not reasons:
                await self._assume(pod, node_name, key)
                return
            failures.append((reasons, helpful))
        await self._mark_unschedulable(pod, unschedulable_message(failures))

    async def _assume(self, pod: Obj, node_name: str, key: tuple[str, str]) -> None:
        uid = str(pod["metadata"].get("uid"))
        self.assumed[uid] = (node_name, pod)
        self._account(uid, pod)
        await self._bind_slots.acquire()  # back-pressure: at most MAX_BINDING in flight
        task = asyncio.create_task(self._bind(pod, node_name, key), name=f"bind {key[1]}")
        self._binding.add(task)
        task.add_done_callback(self._binding.discard)

    async def _bind(self, pod: Obj, node_name: str, key: tuple[str, str]) -> None:
        ns, name = pod["metadata"].get("namespace") or "default", pod["metadata"]["name"]
        uid = str(pod["metadata"].get("uid"))
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": ns, "uid": uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node_name},
        }
        try:
            try:
                await self.client.create(resource_path("v1", "pods", ns, name, "binding"), body)
            except (ApiError, aiohttp.ClientError, asyncio.TimeoutError) as err:
                # Forget the assumption; unless the pod is gone or bound elsewhere, retry it.
                self.assumed.pop(uid, None)
                current = self.pods.get(*key)
                if current is not None and str(current["metadata"].get("uid")) != uid:
                    current = None  # the name now belongs to a newer pod
                self._account(uid, current)
                if isinstance(err, ApiError) and err.code in (404, 409):
                    return
                log.warning("scheduler: binding %s/%s failed: %s", ns, name, err)
                self.queue.add_after(key, 0.5)
                return
        finally:
            self._bind_slots.release()
        await self._event(
            pod, "Normal", "Scheduled", f"Successfully assigned {ns}/{name} to {node_name}"
        )

    async def _mark_unschedulable(self, pod: Obj, message: str) -> None:
        ns, name = pod["metadata"].get("namespace") or "default", pod["metadata"]["name"]
        conditions = (pod.get("status") or {}).get("conditions") or []
        current = next((c for c in conditions if c.get("type") == "PodScheduled"), None)
        if (
            current is not None
            and current.get("status") == "False"
            and current.get("message") == message
        ):
            return
        others = [c for c in conditions if c.get("type") != "PodScheduled"]
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastProbeTime": None,
            "lastTransitionTime": now(),
        }
        patch = {"status": {"phase": "Pending", "conditions": [*others, condition]}}
        try:
            await self.client.patch(resource_path("v1", "pods", ns, name, "status"), patch)
        except ApiError as err:
            if err.code != 404:
                raise
            return
        await self._event(pod, "Warning", "FailedScheduling", message)

    async def _event(self, pod: Obj, etype: str, reason: str, message: str) -> None:
        await self.client.post_pod_event(pod, etype, reason, message, self.name)
