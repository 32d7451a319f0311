"""What the kubelet keeps of one pod: its containers' runs and the state its parts share.

:class:`PodState` is the base of :class:`.podworker.PodWorker` and of its parts
(:mod:`.podvolumes`, :mod:`.podprobes`, :mod:`.podstatus`), which all read and write it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .kubeclient import Obj
from .podenv import VolumePlan
from .processes import HostProcess

if TYPE_CHECKING:
    from .kubelet import Kubelet


# --- containers ---------------------------------------------------------------------------------


@dataclass
class ContainerRun:
    """One container of a pod: its current process and the state reported for it."""

    spec: Obj
    log_dir: Path
    state: Obj = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: Obj = field(default_factory=dict)
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    container_id: str = ""
    process: HostProcess | None = None
    done: bool = False  # will not run again (terminal for its restart policy)
    init: bool = False  # an init container: runs to completion before the others start
    running_event: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def name(self) -> str:
        return str(self.spec.get("name") or "main")

    def log_path(self, restart: int | None = None) -> Path:
        return self.log_dir / f"{self.restart_count if restart is None else restart}.log"

    def status(self, image: str) -> Obj:
        result: Obj = {
            "name": self.name,
            "image": image,
            "imageID": f"sandbox-image://{image}",
            "state": self.state,
            "lastState": self.last_state,
            "ready": self.ready,
            "restartCount": self.restart_count,
            "started": self.started,
        }
        if self.container_id:
            result["containerID"] = self.container_id
        return result


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class PodState:
    """One pod (by uid) as its :class:`.podworker.PodWorker` runs it; owned by the kubelet."""

    def __init__(self, kubelet: Kubelet, pod: Obj) -> None:
        self.kubelet = kubelet
        self.pod = pod
        meta = pod["metadata"]
        self.namespace = str(meta.get("namespace") or "default")
        self.name = str(meta["name"])
        self.uid = str(meta.get("uid") or uuid.uuid4())
        self.dir = kubelet.config.state_dir / "pods" / f"{self.namespace}_{self.name}_{self.uid}"
        spec = pod.get("spec") or {}
        self.host_network = bool(spec.get("hostNetwork"))
        self.ip = ""
        self.start_time = ""
        self.containers = [
            ContainerRun(c, self.dir / "logs" / str(c.get("name") or "main"))
            for c in spec.get("containers") or []
        ]
        self.init_containers = [
            ContainerRun(c, self.dir / "logs" / str(c.get("name") or "init"), init=True)
            for c in spec.get("initContainers") or []
        ]
        self.init_failed = False
        self.config_changed = asyncio.Event()  # a ConfigMap/Secret of the namespace changed
        self.deadline_exceeded = False
        self._deadline: asyncio.Task[None] | None = None
        self.volume_plans: dict[str, VolumePlan] = {}
        self.mounts: dict[str, dict[str, str]] = {}  # container → {mountPath: local path}
        self.token_dir: Path | None = None
        self.token_checked = False
        self.sandbox_ready = False
        self.terminating = False
        self._dirty = asyncio.Event()
        self._last_status: Obj | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._writer: asyncio.Task[None] | None = None
        self._main: asyncio.Task[None] | None = None

    @property
    def all_containers(self) -> list[ContainerRun]:
        return self.init_containers + self.containers

    def update(self, pod: Obj) -> None:
        self.pod = pod

    def mark_dirty(self) -> None:
        self._dirty.set()

    @property
    def restart_policy(self) -> str:
        return str((self.pod.get("spec") or {}).get("restartPolicy") or "Always")

    def _security(self, container: Obj | None = None) -> tuple[int | None, int | None, list[int]]:
        """uid, gid and supplementary groups to run as (None: as the kubelet itself)."""
        if not self.kubelet.config.run_as_user or os.geteuid() != 0:
            return None, None, []
        pod_sc = (self.pod.get("spec") or {}).get("securityContext") or {}
        ctr = container or (self.containers[0].spec if self.containers else {})
        c_sc = ctr.get("securityContext") or {}
        uid = c_sc.get("runAsUser", pod_sc.get("runAsUser"))
        gid = c_sc.get("runAsGroup", pod_sc.get("runAsGroup"))
        groups = [int(g) for g in pod_sc.get("supplementalGroups") or []]
        if pod_sc.get("fsGroup") is not None:
            groups.append(int(pod_sc["fsGroup"]))
        if uid is None:
            return None, None if gid is None else int(gid), groups
        return int(uid), int(gid) if gid is not None else 0, groups
