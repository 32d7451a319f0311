"""One watch on the JupyterKernels of this gateway, shared by every kernel it runs.

Enterprise Gateway's stock Kubernetes proxies ask the API server about each kernel every few
seconds (``poll()`` from jupyter_client's restarter, one list per kernel every 3 s). Here one
background thread per watched namespace lists the gateway's JupyterKernels once (label selector
``kubeflow.tkestack.io/gateway=<EG_NAME>``), then watches them from that ``resourceVersion``,
resuming after each stream end and re-listing after ``410 Gone``. All namespaces feed one
cache and one set of waiters. Every launch, ``poll()`` and kill reads this cache: an idle
kernel costs no API request at all.

The gateway reads JupyterKernel *status* only (``phase``, ``podIP``, ``reason``, ...); how a
pod's state becomes that status is the operator's job (see docs/architecture.md).

Waiters (a launching kernel's ``confirm_remote_startup``) register an :class:`asyncio.Event`
for one JupyterKernel; the watch thread sets it through the waiter's loop on every change.

Namespaces and RBAC
-------------------
The watch is never cluster-wide. It starts with
:attr:`~.settings.GatewaySettings.boot_watch_namespaces` (the default kernel namespace; with
``EJ_ALLOW_KERNEL_NAMESPACE=true`` also the gateway's namespace and ``EJ_KERNEL_NAMESPACES``)
and :meth:`KernelWatch.ensure_namespace` adds a namespace the first time a kernel is launched
in it or a persisted session names it. So the gateway's service account needs, **in each
namespace its kernels may run in** - the gateway's own included when clients may pick - a
namespaced Role + RoleBinding (or a RoleBinding to a shared ClusterRole; never a
ClusterRoleBinding):

* ``kubeflow.tkestack.io`` ``jupyterkernels``: get, list, watch, create, patch (the session
  annotation, :mod:`.session_store`), delete (in the gateway's own namespace the operator's
  Role also grants update);
* ``secrets``: create, get, patch - the per-kernel session Secret (:mod:`.kernel_secret`);
* ``kubeflow.tkestack.io`` ``jupyterkerneltemplates``: get, where templates live.

Besides, in its own namespace only: ``jupytergateways`` get (its own object, for owner
references; list/watch with a name field selector for the kernelspec sync) and ``configmaps``
list/watch (kernelspec sync). The plugin reads no pods, no Secrets and writes no events.

A namespace the gateway may not list/watch is retried with back-off and logged; a launch there
fails at create time with a 403 that names the namespace. With ``EJ_KERNEL_NAMESPACES`` empty,
a restarted gateway without session persistence only learns a namespace again when a kernel is
launched there: list the namespaces so that orphans in them are cleaned up at boot.
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
from typing import Any

from elastic_jupyter import crds

from .kube import ApiError, KubeApi, kernels_path
from .settings import GatewaySettings

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)

WATCH_TIMEOUT_SECONDS = 300
#: A watch stream silent for this long is taken as stalled (a dead connection, a hung proxy)
#: and resumed from its resourceVersion: the API server sends bookmarks or ends the stream
#: well before (the sandbox bookmarks every 5 s; a real API server about every minute, so
#: an idle namespace costs one cheap watch request per this many seconds, never a re-list).
WATCH_STALL_SECONDS = 15.0
_GONE_MEMORY = 4096

_PULL_HINT = "check the kernel image name and that the cluster can pull it"
_HINTS = {
    crds.REASON_ERR_IMAGE_PULL: _PULL_HINT,
    crds.REASON_IMAGE_PULL_BACK_OFF: _PULL_HINT,
    crds.REASON_INVALID_IMAGE_NAME: "fix the kernel image name (JupyterKernelSpec spec.image)",
    crds.REASON_ERR_IMAGE_NEVER_PULL: "the image is not on the node and imagePullPolicy is Never",
    crds.REASON_CREATE_CONTAINER_CONFIG_ERROR: (
        "a Secret or ConfigMap the kernel template uses is missing"
    ),
    crds.REASON_UNSCHEDULABLE: (
        "no node has room for the kernel's resources (KERNEL_CPUS/MEMORY/GPUS)"
    ),
    crds.REASON_POLICY_VIOLATION: "the kernel template asks for more than kernel pods may have: "
    "fix the JupyterKernelTemplate (see kubectl describe jkt)",
    crds.REASON_INVALID_SPEC: "fix the field named in the JupyterKernelTemplate",
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
    created: float | None = None  # metadata.creationTimestamp, seconds since the epoch
    conditions: tuple[tuple[str, str, str, str], ...] = ()  # (type, status, reason, message)
    client: str = ""  # annotation: the gateway client that started it (see client_auth.py)
    gateway_uid: str = ""  # label: uid of the JupyterGateway that launched it ("" = older)
    session: str = ""  # annotation: the gateway's kernel session (JSON), see session_store
    owner: str = ""  # annotation: the gateway replica that culls and restarts it (adoption)

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
            created=crds.epoch_seconds(meta.get("creationTimestamp")),
            conditions=conditions,
            client=str((meta.get("annotations") or {}).get(crds.ANNOTATION_CLIENT) or ""),
            gateway_uid=str(labels.get(crds.LABEL_GATEWAY_UID) or ""),
            session=str((meta.get("annotations") or {}).get(crds.ANNOTATION_KERNEL_SESSION) or ""),
            owner=str((meta.get("annotations") or {}).get(crds.ANNOTATION_GATEWAY_OWNER) or ""),
        )

    @property
    def alive(self) -> bool:
        """Pending or Running and not being deleted: what ``poll()`` reports as alive."""
        return not self.deleting and self.phase in (
            "",
            crds.PHASE_PENDING,
            crds.PHASE_POOLED,  # a claimed pool kernel, until the operator writes Running
            crds.PHASE_RUNNING,
        )

    @property
    def running(self) -> bool:
        """Running with a pod IP: the gateway can connect to the kernel."""
        return not self.deleting and self.phase == crds.PHASE_RUNNING and bool(self.pod_ip)

    def waiting_reason(self) -> tuple[str, str]:
        """Return ``(reason, message)`` of a Pending kernel that is stuck, else ``("", "")``."""
        if self.reason in crds.LAUNCH_FAIL_FAST_REASONS or self.reason == crds.REASON_UNSCHEDULABLE:
            return self.reason, self.message
        for ctype, cstatus, reason, message in self.conditions:
            if reason in crds.LAUNCH_FAIL_FAST_REASONS:
                return reason, message
            if ctype == crds.CONDITION_SCHEDULED and cstatus == "False" and reason:
                return reason, message
        return "", ""

    def failure(self) -> tuple[str, str] | None:
        """Return ``(reason, message)`` when a *starting* kernel can no longer come up."""
        if self.deleting:
            return (
                crds.REASON_DELETED,
                "its JupyterKernel was deleted while the kernel was starting",
            )
        if self.phase == crds.PHASE_FAILED:
            reason = self.reason or crds.REASON_FAILED
            message = self.message or (
                f"the kernel exited with code {self.exit_code}"
                if self.exit_code is not None
                else "the kernel's pod failed"
            )
            return reason, message
        if self.phase == crds.PHASE_SUCCEEDED:
            return (
                self.reason or crds.REASON_COMPLETED,
                self.message or "the kernel exited during start",
            )
        for ctype, cstatus, reason, message in self.conditions:
            if ctype == crds.CONDITION_FAILED and cstatus == "True":
                return reason or crds.REASON_FAILED, message
        reason, message = self.waiting_reason()
        if reason in crds.LAUNCH_FAIL_FAST_REASONS:
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


#: (HTTP status, reason, message) that ends a kernel start.
StartFailure = tuple[int, str, str]


@dataclass
class StartJudge:
    """The dead ends of one kernel start, judged from its JupyterKernel's status over time.

    Both front ends wait for a start the same way (the process proxy's
    ``confirm_remote_startup``, the provisioner's ``_confirm_startup``): on each wake-up they
    hand :meth:`judge` what the watch holds and fail the start with what it returns - the
    JupyterKernel deleted during the start (500), a failure reason (500), Unschedulable beyond
    ``unschedulable_grace`` (503) - and with :meth:`timed_out` at the launch deadline.
    """

    unschedulable_grace: float
    seen: bool = False
    last: KernelStatus | None = None
    unschedulable_since: float | None = None

    def judge(self, status: KernelStatus | None, deleted: bool, now: float) -> StartFailure | None:
        """``None`` while the start may go on; ``deleted``: the watch saw the object go."""
        if status is None:
            if self.seen or deleted:
                return (500, crds.REASON_DELETED, "its JupyterKernel was deleted during start")
            return None
        self.seen, self.last = True, status
        failure = status.failure()
        if failure is not None:
            return (500, *failure)
        reason, message = status.waiting_reason()
        if reason != crds.REASON_UNSCHEDULABLE:
            self.unschedulable_since = None
            return None
        self.unschedulable_since = self.unschedulable_since or now
        if now - self.unschedulable_since >= self.unschedulable_grace:
            return (503, reason, message)
        return None

    def timed_out(self, timeout_s: float, namespace: str, name: str) -> StartFailure:
        """The failure at the launch deadline, saying how far the kernel got."""
        last = self.last
        if last is None or not last.phase:
            state = "no status yet (is elastic-jupyter-operator running?)"
        else:
            state = f"phase {last.phase}"
            if last.waiting_reason()[0]:
                state += f", {last.waiting_reason()[0]}"
        return (
            500,
            "Timeout",
            f"waited too long ({timeout_s}s) to get connection info; "
            f"JupyterKernel {namespace}/{name}: {state}",
        )


@dataclass
class _Waiters:
    events: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(default_factory=list)


class _NamespaceStream:
    """The list+watch of one namespace: a daemon thread feeding :class:`KernelWatch`'s cache."""

    def __init__(self, owner: KernelWatch, namespace: str) -> None:
        self.owner = owner
        self.namespace = namespace
        self.resource_version = ""
        self.synced = threading.Event()
        self.thread = threading.Thread(
            target=self._run, name=f"ej-kernel-watch-{namespace}", daemon=True
        )

    def _list(self) -> str:
        owner = self.owner
        answer = owner.api.request(
            "GET", kernels_path(self.namespace), query={"labelSelector": owner.label_selector}
        )
        owner.lists += 1
        items = answer.get("items") or []
        owner._replace_namespace(self.namespace, [i for i in items if isinstance(i, dict)])
        return str((answer.get("metadata") or {}).get("resourceVersion") or "")

    def _watch(self) -> None:
        """One watch stream from ``self.resource_version``, which it advances event by event."""
        owner = self.owner
        query = {
            "watch": "true",
            "labelSelector": owner.label_selector,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_TIMEOUT_SECONDS),
            "resourceVersion": self.resource_version,
        }
        owner.watches += 1
        stream = owner.api.stream(
            kernels_path(self.namespace), query, read_timeout=owner.stall_seconds
        )
        for event in stream:
            if owner._stopped.is_set():
                break
            kind = str(event.get("type", ""))
            obj = event.get("object") or {}
            if kind == "ERROR":
                code = int(obj.get("code") or 0)
                raise ApiError(code, str(obj.get("reason") or "Error"), str(obj.get("message")))
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                owner.events += 1
                owner._apply(kind, obj)
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if rv:
                self.resource_version = str(rv)

    def _run(self) -> None:
        """List once, then watch from the last resourceVersion seen - after a stream ends, and
        after a broken connection too; list again only on 410 Gone (history too short)."""
        log = self.owner.log
        stopped = self.owner._stopped
        backoff = 0.5
        while not stopped.is_set():
            try:
                if not self.resource_version:
                    self.resource_version = self._list() or "0"
                    self.synced.set()
                self._watch()
                backoff = 0.5
                continue
            except ApiError as err:
                if err.gone:
                    log.info(
                        "JupyterKernel watch in %s expired (410 Gone): listing again",
                        self.namespace,
                    )
                    self.resource_version = ""
                    continue
                if err.denied:
                    backoff = max(backoff, 5.0)
                    log.warning(
                        "JupyterKernel watch in namespace %s is not allowed (%s): the gateway's "
                        "service account needs a Role there with get/list/watch on "
                        "jupyterkernels; retrying in %.1fs",
                        self.namespace,
                        err,
                        backoff,
                    )
                else:
                    log.warning(
                        "JupyterKernel watch in %s failed: %s; retrying in %.1fs",
                        self.namespace,
                        err,
                        backoff,
                    )
            except Exception as err:  # the watch must survive anything the network throws
                log.warning(
                    "JupyterKernel watch in %s failed: %r; retrying in %.1fs",
                    self.namespace,
                    err,
                    backoff,
                )
            stopped.wait(backoff)
            backoff = min(backoff * 2, 30.0)


class KernelWatch:
    """The cache of one gateway's JupyterKernels, fed by one list+watch per namespace (see the
    module docstring for which namespaces and the RBAC they need). Each gateway application
    has one (:attr:`.gateway_runtime.GatewayRuntime.watch`)."""

    def __init__(
        self,
        api: KubeApi,
        namespaces: str | Iterable[str],
        label_selector: str,
        log: logging.Logger | None = None,
    ) -> None:
        self.api = api
        self.label_selector = label_selector
        self.stall_seconds = WATCH_STALL_SECONDS
        self.log = log or logging.getLogger(__name__)
        self.lists = 0
        self.watches = 0
        self.events = 0
        self._lock = threading.Lock()
        self._objects: dict[Key, KernelStatus] = {}
        self._gone: OrderedDict[Key, float] = OrderedDict()
        self._waiters: dict[Key, _Waiters] = {}
        self._stopped = threading.Event()
        self._started = False
        self._streams: dict[str, _NamespaceStream] = {}
        self._unknown_since: dict[Key, float] = {}
        names = [namespaces] if isinstance(namespaces, str) else list(namespaces)
        for namespace in names:
            self._streams.setdefault(namespace, _NamespaceStream(self, namespace))

    # --- lifecycle ------------------------------------------------------------------------

    @classmethod
    def for_gateway(cls, settings: GatewaySettings, api: KubeApi) -> KernelWatch:
        """The (not yet started) watch of the gateway ``settings`` describe: its JupyterKernels
        in its boot namespaces. Called by the gateway's runtime on first use of its watch."""
        selector = (
            f"{crds.LABEL_GATEWAY}={settings.gateway_name},"
            f"{crds.LABEL_MANAGED_BY}={crds.MANAGED_BY}"
        )
        return cls(api, settings.boot_watch_namespaces, selector)

    def start(self) -> None:
        """Start the threads of the namespaces known so far (daemons: they never keep the
        gateway alive); later namespaces start in :meth:`ensure_namespace`."""
        with self._lock:
            self._started = True
            streams = list(self._streams.values())
        for stream in streams:
            if not stream.thread.is_alive() and stream.thread.ident is None:
                stream.thread.start()

    def stop(self) -> None:
        """Ask the threads to stop; each ends at its next event or stream timeout."""
        self._stopped.set()

    def ensure_namespace(self, namespace: str) -> bool:
        """Watch ``namespace`` too (lazily, sharing this cache); return whether it is new.

        Called by the process proxy after it created a JupyterKernel there and when a
        persisted session naming it is revived.
        """
        with self._lock:
            if namespace in self._streams:
                return False
            stream = _NamespaceStream(self, namespace)
            self._streams[namespace] = stream
            started = self._started
        self.log.info("JupyterKernel watch: now also watching namespace %s", namespace)
        if started:
            stream.thread.start()
        return True

    @property
    def namespaces(self) -> list[str]:
        """The namespaces watched (or to be watched once started)."""
        with self._lock:
            return list(self._streams)

    def is_synced(self, namespace: str) -> bool:
        """Whether ``namespace`` has been listed at least once."""
        stream = self._streams.get(namespace)
        return stream is not None and stream.synced.is_set()

    def wait_synced(self, timeout: float, namespace: str | None = None) -> bool:
        """Block until ``namespace`` (default: every namespace so far) has been listed."""
        deadline = time.monotonic() + timeout
        with self._lock:
            if namespace is None:
                streams = list(self._streams.values())
            else:
                stream = self._streams.get(namespace)
                streams = [stream] if stream is not None else []
        if not streams:
            return False
        return all(s.synced.wait(max(0.0, deadline - time.monotonic())) for s in streams)

    @property
    def synced(self) -> bool:
        """Whether every watched namespace has been listed at least once."""
        with self._lock:
            streams = list(self._streams.values())
        return bool(streams) and all(s.synced.is_set() for s in streams)

    # --- reading --------------------------------------------------------------------------

    def get(self, namespace: str, name: str) -> KernelStatus | None:
        """The cached status of one JupyterKernel, ``None`` if the watch has not seen it."""
        return self._objects.get((namespace, name))

    def was_deleted(self, namespace: str, name: str) -> bool:
        """Whether the watch saw this JupyterKernel disappear."""
        return (namespace, name) in self._gone

    def by_kernel_id(self, kernel_id: str) -> list[KernelStatus]:
        """Every cached JupyterKernel of one kernel id (a restart briefly leaves two)."""
        with self._lock:
            return [s for s in self._objects.values() if s.kernel_id == kernel_id]

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

        Called periodically by the orphan sweep (:mod:`.gateway_boot`); ``is_known`` asks the
        gateway's kernel and session managers. A kernel id seen again as known starts over.
        Only namespaces listed at least once are judged.
        """
        now = time.monotonic()
        result = []
        current = [s for s in self.all() if self.is_synced(s.namespace)]
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

    def _replace_namespace(self, namespace: str, items: list[Obj]) -> None:
        """A fresh list of one namespace replaces what the cache holds for it."""
        fresh = {s.key: s for s in (KernelStatus.from_object(o) for o in items)}
        with self._lock:
            removed = [k for k in self._objects if k[0] == namespace and k not in fresh]
            changed = [k for k, s in fresh.items() if self._objects.get(k) != s]
            for key in removed:
                del self._objects[key]
            self._objects.update(fresh)
            now = time.monotonic()
            for key in removed:
                self._gone[key] = now
            for key in fresh:
                self._gone.pop(key, None)
        self._notify(removed + changed)
