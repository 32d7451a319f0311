"""A pod's status as the kubelet reports it: phase, conditions, container states.

A part of :class:`.podworker.PodWorker`: changes are coalesced into PATCHes of
``pods/{name}/status``.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from .clock import now
from .kinds import qos_class
from .kubeclient import ApiError, Obj, resource_path
from .podstate import PodState

log = logging.getLogger(__name__)


class PodStatus(PodState):
    """Building and writing one pod's status."""

    def phase(self) -> str:
        if self.init_failed or self.deadline_exceeded:
            return "Failed"
        if not self.containers or not all(c.done for c in self.init_containers):
            return "Pending"
        if all(c.done for c in self.containers):
            codes = [int(c.state["terminated"]["exitCode"]) for c in self.containers]
            return "Succeeded" if all(code == 0 for code in codes) else "Failed"
        ever_ran = any(c.started or c.last_state or c.done for c in self.containers)
        return "Running" if ever_ran else "Pending"

    def status(self) -> Obj:
        phase = self.phase()
        existing = (self.pod.get("status") or {}).get("conditions") or []
        mine = {"PodScheduled", "PodReadyToStartContainers", "Initialized", "ContainersReady"}
        mine.add("Ready")
        # Conditions others own (readiness gates, DisruptionTarget...) are kept as they are;
        # PodScheduled is True once the pod is bound here, whatever a failed attempt said.
        conditions = [c for c in existing if c.get("type") not in mine]
        conditions.append(self._condition("PodScheduled", True))
        conditions.append(self._condition("PodReadyToStartContainers", self.sandbox_ready))
        incomplete = [c.name for c in self.init_containers if not c.done]
        if incomplete or self.init_failed:
            names = " ".join(incomplete or [c.name for c in self.init_containers])
            conditions.append(
                self._condition(
                    "Initialized",
                    False,
                    "ContainersNotInitialized",
                    f"containers with incomplete status: [{names}]",
                )
            )
        else:
            conditions.append(self._condition("Initialized", True))
        unready = [c.name for c in self.containers if not c.ready]
        if phase in ("Succeeded", "Failed"):
            ready, reason, message = False, "PodCompleted", ""
        elif unready:
            ready, reason = False, "ContainersNotReady"
            message = f"containers with unready status: [{' '.join(unready)}]"
        else:
            ready, reason, message = True, "", ""
        conditions.append(self._condition("ContainersReady", ready, reason, message))
        conditions.append(self._condition("Ready", ready, reason, message))
        status: Obj = {
            "phase": phase,
            "conditions": conditions,
            "hostIP": self.kubelet.config.host,
            "hostIPs": [{"ip": self.kubelet.config.host}],
            "startTime": self.start_time or now(),
            "containerStatuses": [
                c.status(str(c.spec.get("image") or "")) for c in self.containers
            ],
            "qosClass": qos_class(self.pod.get("spec") or {}),
        }
        if self.init_containers:
            status["initContainerStatuses"] = [
                c.status(str(c.spec.get("image") or "")) for c in self.init_containers
            ]
        if self.deadline_exceeded:
            status["reason"] = "DeadlineExceeded"
            status["message"] = "Pod was active on the node longer than the specified deadline"
        if self.ip:
            status["podIP"] = self.ip
            status["podIPs"] = [{"ip": self.ip}]
        return status

    def _condition(self, ctype: str, ok: bool, reason: str = "", message: str = "") -> Obj:
        previous = {
            c.get("type"): c for c in (self.pod.get("status") or {}).get("conditions") or []
        }.get(ctype)
        value = "True" if ok else "False"
        cond: Obj = {"type": ctype, "status": value, "lastProbeTime": None}
        if previous is not None and previous.get("status") == value:
            cond["lastTransitionTime"] = previous.get("lastTransitionTime") or now()
        else:
            cond["lastTransitionTime"] = now()
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        return cond

    async def _status_writer(self) -> None:
        """Coalesce status changes into PATCHes of ``pods/{name}/status``."""
        path = resource_path("v1", "pods", self.namespace, self.name, "status")
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            status = self.status()
            comparable = _without_times(status)
            if comparable == self._last_status:
                continue
            try:
                updated = await self.kubelet.client.patch(path, {"status": status})
                if (updated.get("metadata") or {}).get("uid") == self.uid:
                    self.pod = updated
                self._last_status = comparable
            except ApiError as err:
                if err.code == 404:
                    return
                log.warning("pod %s/%s: status write failed: %s", self.namespace, self.name, err)
                await asyncio.sleep(0.5)
                self._dirty.set()
            except aiohttp.ClientError as err:
                log.debug("pod %s/%s: status write failed: %s", self.namespace, self.name, err)
                await asyncio.sleep(0.5)
                self._dirty.set()


def _without_times(status: Obj) -> Obj:
    # Only the conditions are changed, so only they are copied (the rest is compared as is;
    # a status is built afresh on every call and never mutated afterwards).
    copy = dict(status)
    copy["conditions"] = [
        {k: v for k, v in cond.items() if k != "lastTransitionTime"}
        for cond in status.get("conditions") or []
    ]
    return copy
