"""Node loss in the sandbox: a kubelet crashes with its pods, a node joins or comes back.

``POST /sandbox/nodes/{name}/crash`` is a machine losing power: the kubelet of that node stops
at once (no status write, no Event, the Node object is left as it was) and every process of its
pods gets SIGKILL. The pods stay in the API as they were last reported (Running), as on a real
cluster until the node controller notices, which it does after ``node-monitor-grace-period``
(40 s) and evicts after 5 min: neither is emulated, so keep an outage shorter than that.

``POST /sandbox/nodes/{name}/start`` starts a kubelet for that node: the lost one coming back
(same node name, same state directory), or a new worker node with the first node's shape. A
kubelet that comes back finds its pods in the API with no container running, and does what a
real kubelet does after a reboot (:func:`recover_lost_pod`): a pod with ``restartPolicy:
Never`` whose container had started is not run again, it fails with the container
``ContainerStatusUnknown`` (exit code 137); other pods run their containers afresh, with the
restart count carried on.

Wired by :mod:`.cli` (``install``) behind the API server's ``/sandbox/nodes`` route, which
(like every ``/sandbox/`` URL) only the admin may call.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .kubeclient import ApiError, Obj, cancel_tasks, resource_path
from .processes import POD_MARKER, kill_marked

if TYPE_CHECKING:
    from .kubelet import Kubelet, KubeletConfig
    from .podworker import PodWorker

log = logging.getLogger(__name__)

#: What a real kubelet (``kubelet_pods.go``) reports for a container it can no longer find.
LOST_REASON = "ContainerStatusUnknown"
LOST_MESSAGE = (
    "The container could not be located when the pod was deleted.  The container used to be Running"
)
LOST_EXIT_CODE = 137

NodeHandler = Callable[[str, str], Awaitable[dict[str, Any]]]


def _started(status: Obj) -> bool:
    """Whether a container status says the container ran (now or before)."""
    state = status.get("state") or {}
    return bool(
        "running" in state
        or "terminated" in state
        or (status.get("lastState") or {}).get("terminated")
    )


def lost_pod_status(pod: Obj) -> Obj | None:
    """The status a kubelet back from a crash writes for ``pod``, or None to run it again.

    Only a ``restartPolicy: Never`` pod whose containers had started and not all finished is
    failed: its containers are gone and may not be restarted.
    """
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    if (spec.get("restartPolicy") or "Always") != "Never":
        return None
    if status.get("phase") not in ("Running", "Pending"):
        return None
    previous = status.get("containerStatuses") or []
    if not any(_started(c) for c in previous):
        return None  # never ran here: a fresh start is what a real kubelet does too
    statuses = []
    for c in previous:
        terminated = (c.get("state") or {}).get("terminated")
        if not terminated:
            running = (c.get("state") or {}).get("running") or {}
            terminated = {
                "exitCode": LOST_EXIT_CODE,
                "reason": LOST_REASON,
                "message": LOST_MESSAGE,
                "startedAt": running.get("startedAt"),
                "finishedAt": None,
            }
        statuses.append(
            {**c, "ready": False, "started": False, "state": {"terminated": terminated}}
        )
    conditions = [
        {**cond, "status": "False", "reason": "PodFailed"}
        if cond.get("type") in ("Ready", "ContainersReady")
        else cond
        for cond in status.get("conditions") or []
    ]
    return {**status, "phase": "Failed", "containerStatuses": statuses, "conditions": conditions}


def carried_restart_counts(pod: Obj) -> dict[str, int]:
    """Container name -> the restart count a rerun after a crash continues from."""
    out: dict[str, int] = {}
    for c in (pod.get("status") or {}).get("containerStatuses") or []:
        if _started(c):
            out[str(c.get("name"))] = int(c.get("restartCount") or 0) + 1
    return out


async def recover_lost_pod(kubelet: Kubelet, pod: Obj) -> bool:
    """Called by the kubelet for a pod it has no worker for; True when the pod is done with.

    A fresh sandbox never meets such a pod; a kubelet started again after a crash does.
    """
    status = lost_pod_status(pod)
    if status is None:
        return False
    meta = pod.get("metadata") or {}
    path = resource_path("v1", "pods", meta.get("namespace"), meta.get("name"), "status")
    with contextlib.suppress(ApiError):
        await kubelet.client.patch(path, {"status": status})
    return True


def restore_restart_counts(worker: PodWorker, pod: Obj) -> None:
    """A rerun pod's containers continue their restart counts (``kubectl get pods`` RESTARTS)."""
    counts = carried_restart_counts(pod)
    for c in worker.containers:
        c.restart_count = counts.get(c.name, c.restart_count)


async def crash(kubelet: Kubelet) -> int:
    """Stop ``kubelet`` as a power loss would; return how many pods were killed."""
    await cancel_tasks(list(kubelet._tasks))
    workers = list(kubelet.workers.values())
    kubelet.workers.clear()
    for worker in workers:
        worker.terminating = True  # nothing restarts, nothing reports
        tasks = [t for t in (worker._writer, worker._deadline, worker._main) if t is not None]
        await cancel_tasks([*tasks, *worker._tasks])
        for c in worker.all_containers:
            if c.process is not None and c.process.returncode is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(c.process.pid, signal.SIGKILL)
        await asyncio.to_thread(kill_marked, POD_MARKER, worker.uid)
        if kubelet.config.podman is not None:
            await kubelet.config.podman.remove_pod(worker.uid)
    if kubelet._runner is not None:
        await kubelet._runner.cleanup()
    if kubelet._probe_session is not None:
        await kubelet._probe_session.close()
    await kubelet.client.close()
    return len(workers)


class NodeControl:
    """The kubelets of the sandbox by node name; crashes and starts them on request."""

    def __init__(
        self, api_url: str, first: KubeletConfig, make: Callable[[str, KubeletConfig], Kubelet]
    ) -> None:
        self.api_url = api_url
        self.first = first
        self.make = make
        self.kubelets: dict[str, Kubelet] = {}
        self.configs: dict[str, KubeletConfig] = {first.node_name: first}
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Start the first node's kubelet (a sandbox component, like the scheduler)."""
        await self.act(self.first.node_name, "start")

    async def act(self, name: str, action: str) -> dict[str, Any]:
        async with self._lock:
            if action == "crash":
                kubelet = self.kubelets.pop(name, None)
                if kubelet is None:
                    raise web.HTTPNotFound(text=f"node {name!r} has no running kubelet")
                killed = await crash(kubelet)
                log.warning("node %s crashed: %d pods killed", name, killed)
                return {"node": name, "action": action, "podsKilled": killed}
            if action == "start":
                if name in self.kubelets:
                    return {"node": name, "action": action, "alreadyRunning": True}
                config = self.configs.get(name) or dataclasses.replace(
                    self.first, node_name=name, labels=dict(self.first.labels), taints=[]
                )
                self.configs[name] = config
                kubelet = self.make(self.api_url, config)
                await kubelet.start()
                self.kubelets[name] = kubelet
                log.warning("node %s: kubelet started", name)
                return {"node": name, "action": action}
            raise web.HTTPBadRequest(text=f"unknown node action {action!r}: crash or start")

    async def stop(self) -> None:
        for kubelet in list(self.kubelets.values()):
            with contextlib.suppress(Exception):
                await kubelet.stop()
        self.kubelets.clear()


async def handle(control: NodeControl | None, request: web.Request) -> web.Response:
    """``POST /sandbox/nodes/{name}/{action}``."""
    if control is None:
        raise web.HTTPNotImplemented(text="this sandbox runs no kubelet")
    result = await control.act(request.match_info["name"], request.match_info["action"])
    return web.json_response(result)
