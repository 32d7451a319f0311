"""One watch on the JupyterKernels of this gateway, shared by every kernel it runs.

Enterprise Gateway's stock Kubernetes proxies ask the API server about each kernel every few
seconds (``poll()`` from jupyter_client's restarter, one list per kernel every 3 s). Here a
single background thread lists the gateway's JupyterKernels once (label selector
``kubeflow.tkestack.io/gateway=<EG_NAME>``), then watches them from that ``resourceVersion``,
resuming after each stream end and re-listing after ``410 Gone``. Every launch, ``poll()``
and kill reads this cache: an idle kernel costs no API request at all.

The gateway reads JupyterKernel *status* only (``phase``, ``podIP``, ``reason``, ...); how a
pod's state becomes that status is the operator's job (see docs/architecture.md).

Waiters (a launching kernel's ``confirm_remote_startup``) register an :class:`asyncio.Event`
for one JupyterKernel; the watch thread sets it through the waiter's loop on every change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from elastic_jupyter import crds

from .kube import ApiError, KubeApi, kernels_path
from .settings import GatewaySettings

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)

WATCH_TIMEOUT_SECONDS = 300
_GONE_MEMORY = 4096

# Reasons (from status.reason or a condition) that end a launch at once.
FAIL_FAST_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
        "PodCreateFailed",
    }
)
UNSCHEDULABLE = "Unschedulable"

_HINTS = {
    "ErrImagePull": "check the kernel image name and that the cluster can pull it",
    "ImagePullBackOff": "check the kernel image name and that the cluster can pull it",
    "InvalidImageName": "fix the kernel image name (JupyterKernelSpec spec.image)",
    "ErrImageNeverPull": "the image is not on the node and imagePullPolicy is Never",
    "CreateContainerConfigError": "a Secret or ConfigMap the kernel template uses is missing",
    UNSCHEDULABLE: "no node has room for the kernel's resources (KERNEL_CPUS/MEMORY/GPUS)",
}


@dataclass(frozen=True)
class KernelStatus:
    """What the gateway knows about one JupyterKernel, from its metadata and status."""

    name: str
    namespace: str
    kernel_id: str
    uid: str = ""
    phase: str = ""
    reason: str = ""
    message: str = ""
    pod_ip: str = ""
    host_ip: str = ""
    node_name: str = ""
    pod_name: str = ""
    exit_code: int | None = None
    deleting: bool = False
    conditions: tuple[tuple[str, str, str, str], ...] = ()  # (type, status, reason, message)

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    @classmethod
    def from_object(cls, obj: Obj) -> KernelStatus:
        """Read a JupyterKernel object (as listed or watched)."""
        meta = obj.get("metadata") or {}
        status = obj.get("status") or {}
        spec = obj.get("spec") or {}
        labels = meta.get("labels") or {}
        conditions = tuple(
            (
                str(c.get("type", "")),
                str(c.get("status", "")),
                str(c.get("reason") or ""),
                str(c.get("message") or ""),
            )
            for c in status.get("conditions") or ()
            if isinstance(c, dict)
        )
        exit_code = status.get("exitCode")
        return cls(
            name=str(meta.get("name", "")),
            namespace=str(meta.get("namespace", "")),
            kernel_id=str(spec.get("kernelId") or labels.get(crds.LABEL_KERNEL_ID, "")),
            uid=str(meta.get("uid", "")),
            phase=str(status.get("phase") or ""),
            reason=str(status.get("reason") or ""),
            message=str(status.get("message") or ""),
            pod_ip=str(status.get("podIP") or ""),
            host_ip=str(status.get("hostIP") or ""),
            node_name=str(status.get("nodeName") or ""),
            pod_name=str(status.get("podName") or ""),
            exit_code=exit_code if isinstance(exit_code, int) else None,
            deleting=bool(meta.get("deletionTimestamp")),
            conditions=conditions,
        )

    @property
    def alive(self) -> bool:
        """Pending or Running and not being deleted: what ``poll()`` reports as alive."""
        return not self.deleting and self.phase in ("", crds.PHASE_PENDING, crds.PHASE_RUNNING)

    @property
    def running(self) -> bool:
        """Running with a pod IP: the gateway can connect to the kernel."""
        return not self.deleting and self.phase == crds.PHASE_RUNNING and bool(self.pod_ip)

    def waiting_reason(self) -> tuple[str, str]:
        """Return ``(reason, message)`` of a Pending kernel that is stuck, else ``("", "")``."""
        if self.reason in FAIL_FAST_REASONS or self.reason == UNSCHEDULABLE:
            return self.reason, self.message
        for ctype, cstatus, reason, message in self.conditions:
            if reason in FAIL_FAST_REASONS:
                return reason, message
            if ctype == crds.CONDITION_SCHEDULED and cstatus == "False" and reason:
                return reason, message
        return "", ""

    def failure(self) -> tuple[str, str] | None:
        """Return ``(reason, message)`` when a *starting* kernel can no longer come up."""
        if self.deleting:
            return "Deleted", "its JupyterKernel was deleted while the kernel was starting"
        if self.phase == crds.PHASE_FAILED:
            reason = self.reason or "Failed"
            message = self.message or (
                f"the kernel exited with code {self.exit_code}"
                if self.exit_code is not None
                else "the kernel's pod failed"
            )
            return reason, message
        if self.phase == crds.PHASE_SUCCEEDED:
            return self.reason or "Completed", self.message or "the kernel exited during start"
        for ctype, cstatus, reason, message in self.conditions:
            if ctype == crds.CONDITION_FAILED and cstatus == "True":
                return reason or "Failed", message
        reason, message = self.waiting_reason()
        if reason in FAIL_FAST_REASONS:
            return reason, message
        return None


def describe_failure(kernel_id: str, reason: str, message: str) -> str:
    """The one-line text a notebook user sees when a kernel cannot start."""
    hint = _HINTS.get(reason)
    text = f"Kernel {kernel_id} could not start: {reason}"
    if message:
        text += f" ({message.strip()})"
    if hint:
        text += f"; {hint}"
    return text


@dataclass
class _Waiters:
    events: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(default_factory=list)


class KernelWatch:
    """The process-wide cache of this gateway's JupyterKernels, fed by one list+watch."""

    _instance: ClassVar[KernelWatch | None] = None
    _instance_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        api: KubeApi,
        namespace: str | None,
        label_selector: str,
        log: logging.Logger | None = None,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.label_selector = label_selector
        self.log = log or logging.getLogger(__name__)
        self.resource_version = ""
        self.lists = 0
        self.watches = 0
        self.events = 0
        self._lock = threading.Lock()
        self._objects: dict[Key, KernelStatus] = {}
        self._gone: OrderedDict[Key, float] = OrderedDict()
        self._waiters: dict[Key, _Waiters] = {}
        self._synced = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._unknown_since: dict[Key, float] = {}

    # --- lifecycle ------------------------------------------------------------------------

    @classmethod
    def instance(cls, settings: GatewaySettings, api: KubeApi) -> KernelWatch:
        """Return the gateway's watch, starting it on first use."""
        with cls._instance_lock:
            if cls._instance is None:
                selector = (
                    f"{crds.LABEL_GATEWAY}={settings.gateway_name},"
                    f"{crds.LABEL_MANAGED_BY}={crds.MANAGED_BY}"
                )
                watch = cls(api, settings.watch_namespace, selector)
                watch.start()
                cls._instance = watch
            return cls._instance

    def start(self) -> None:
        """Start the watch thread (a daemon: it never keeps the gateway alive)."""
        self._thread = threading.Thread(target=self._run, name="ej-kernel-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to stop; it ends at the next event or stream timeout."""
        self._stopped.set()

    def wait_synced(self, timeout: float) -> bool:
        """Block until the first list has been loaded; return whether it has."""
        return self._synced.wait(timeout)

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    # --- reading --------------------------------------------------------------------------

    def get(self, namespace: str, name: str) -> KernelStatus | None:
        """The cached status of one JupyterKernel, ``None`` if the watch has not seen it."""
        return self._objects.get((namespace, name))

    def was_deleted(self, namespace: str, name: str) -> bool:
        """Whether the watch saw this JupyterKernel disappear."""
        return (namespace, name) in self._gone

    def all(self) -> list[KernelStatus]:
        """A snapshot of every cached JupyterKernel."""
        with self._lock:
            return list(self._objects.values())

    # --- waiting --------------------------------------------------------------------------

    def subscribe(self, namespace: str, name: str, event: asyncio.Event) -> None:
        """Set ``event`` (on the running loop) whenever this JupyterKernel changes."""
        loop = asyncio.get_running_loop()
        with self._lock:
            self._waiters.setdefault((namespace, name), _Waiters()).events.append((loop, event))

    def unsubscribe(self, namespace: str, name: str, event: asyncio.Event) -> None:
        """Stop notifying ``event``."""
        with self._lock:
            waiters = self._waiters.get((namespace, name))
            if waiters is None:
                return
            waiters.events = [(lp, ev) for lp, ev in waiters.events if ev is not event]
            if not waiters.events:
                del self._waiters[(namespace, name)]

    def _notify(self, keys: Iterable[Key]) -> None:
        with self._lock:
            targets = [w for k in keys if (waiters := self._waiters.get(k)) for w in waiters.events]
        for loop, event in targets:
            with contextlib.suppress(RuntimeError):  # that loop is closed
                loop.call_soon_threadsafe(event.set)

    # --- orphans --------------------------------------------------------------------------

    def orphans(self, is_known: Callable[[str], bool], grace: float) -> list[KernelStatus]:
        """JupyterKernels whose kernel id ``is_known`` has denied for at least ``grace`` seconds.

        Called periodically on the gateway's loop; ``is_known`` asks the gateway's kernel and
        session managers. A kernel id seen again as known starts over.
        """
        if not self.synced:
            return []
        now = time.monotonic()
        result = []
        current = self.all()
        keys = {s.key for s in current}
        for key in list(self._unknown_since):
            if key not in keys:
                del self._unknown_since[key]
        for status in current:
            if status.deleting or is_known(status.kernel_id):
                self._unknown_since.pop(status.key, None)
                continue
            since = self._unknown_since.setdefault(status.key, now)
            if now - since >= grace:
                result.append(status)
        return result

    # --- the watch thread -----------------------------------------------------------------

    def _apply(self, kind: str, obj: Obj) -> None:
        status = KernelStatus.from_object(obj)
        key = status.key
        with self._lock:
            if kind == "DELETED":
                self._objects.pop(key, None)
                self._gone[key] = time.monotonic()
                while len(self._gone) > _GONE_MEMORY:
                    self._gone.popitem(last=False)
            else:
                self._objects[key] = status
                self._gone.pop(key, None)
        self._notify([key])

    def _replace_all(self, items: list[Obj]) -> None:
        fresh = {s.key: s for s in (KernelStatus.from_object(o) for o in items)}
        with self._lock:
            removed = [k for k in self._objects if k not in fresh]
            changed = [k for k, s in fresh.items() if self._objects.get(k) != s]
            self._objects = fresh
            now = time.monotonic()
            for key in removed:
                self._gone[key] = now
        self._notify(removed + changed)

    def _list(self) -> str:
        answer = self.api.request(
            "GET", kernels_path(self.namespace), query={"labelSelector": self.label_selector}
        )
        self.lists += 1
        items = answer.get("items") or []
        self._replace_all([i for i in items if isinstance(i, dict)])
        return str((answer.get("metadata") or {}).get("resourceVersion") or "")

    def _watch(self) -> None:
        """One watch stream from ``self.resource_version``, which it advances event by event."""
        query = {
            "watch": "true",
            "labelSelector": self.label_selector,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_TIMEOUT_SECONDS),
            "resourceVersion": self.resource_version,
        }
        self.watches += 1
        stream = self.api.stream(
            kernels_path(self.namespace), query, read_timeout=WATCH_TIMEOUT_SECONDS + 30
        )
        for event in stream:
            if self._stopped.is_set():
                break
            kind = str(event.get("type", ""))
            obj = event.get("object") or {}
            if kind == "ERROR":
                code = int(obj.get("code") or 0)
                raise ApiError(code, str(obj.get("reason") or "Error"), str(obj.get("message")))
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                self.events += 1
                self._apply(kind, obj)
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if rv:
                self.resource_version = str(rv)

    def _run(self) -> None:
        """List once, then watch from the last resourceVersion seen - after a stream ends, and
        after a broken connection too; list again only on 410 Gone (history too short)."""
        backoff = 0.5
        while not self._stopped.is_set():
            try:
                if not self.resource_version:
                    self.resource_version = self._list() or "0"
                    self._synced.set()
                self._watch()
                backoff = 0.5
                continue
            except ApiError as err:
                if err.status == 410:
                    self.log.info("JupyterKernel watch expired (410 Gone): listing again")
                    self.resource_version = ""
                    continue
                self.log.warning("JupyterKernel watch failed: %s; retrying in %.1fs", err, backoff)
            except Exception as err:  # the watch must survive anything the network throws
                self.log.warning("JupyterKernel watch failed: %r; retrying in %.1fs", err, backoff)
            self._stopped.wait(backoff)
            backoff = min(backoff * 2, 10.0)
