"""The state one operator run keeps in memory, shared by its handlers through kopf's ``memo``.

:mod:`lifecycle` creates a :class:`Runtime` in its startup handler and stores it in the memo;
kopf hands every handler a shallow copy of that memo, so all handlers see the same object, and
they reach it with :func:`from_memo`. Nothing here is global: two operators in one process
(tests) do not share state, and nothing else is kept in the memo.

What is kept, and why it is safe to lose (a restart rebuilds it from the API):

* per JupyterKernel, the status the operator last wrote or saw first (so that it can skip a
  PATCH when nothing changed without waiting for its own write to come back through the watch),
  the latest state of its pod, and a lock serialising status writes for that kernel;
* per object key, locks for the kernelspec reconciler;
* background tasks (delayed status checks) to cancel at cleanup;
* gateways with a status refresh scheduled, and the last state seen of each gateway that
  notebooks use (so that a gateway event reconciles its notebooks only when it matters);
* warm-pool kernels created or deleted but not yet seen in kopf's index, and the pools' tickers;
* the run's options (:class:`settings.RunOptions`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from elastic_jupyter import crds
from elastic_jupyter.operator import kube, metrics, settings

Key = tuple[str, str]  # (namespace, name)

#: Memo keys: the run's Runtime, and the options :mod:`main` hands to kopf.
RUNTIME_KEY = "runtime"
OPTIONS_KEY = "options"


@dataclass
class KernelRecord:
    """What the operator knows about one JupyterKernel (one incarnation: one uid)."""

    namespace: str
    name: str
    uid: str
    body: dict[str, Any]
    #: The status as last written by us, or as first seen on the object.
    status: dict[str, Any]
    #: ``metadata.creationTimestamp`` as epoch seconds (for the start latency histogram).
    created: float | None = None
    #: Latest pod body; ``None`` before the pod is seen and after it is deleted.
    pod: dict[str, Any] | None = None
    pod_seen_at: float | None = None
    pod_deleted: bool = False
    #: This run created (or found) the pod: never create it twice.
    pod_created: bool = False
    deleting: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    recheck: asyncio.Task[None] | None = None

    @property
    def ref(self) -> kopf.Body:
        """An object reference for ``kopf.event`` (involvedObject of the posted Events)."""
        return kopf.Body(
            {
                "apiVersion": crds.API_VERSION,
                "kind": crds.JUPYTER_KERNEL.kind,
                "metadata": {"name": self.name, "namespace": self.namespace, "uid": self.uid},
            }
        )

    def note_pod(self, pod: Mapping[str, Any] | None) -> None:
        """Remember the latest pod state (``None``: the pod was deleted)."""
        if pod is None:
            self.pod = None
            self.pod_deleted = True
            return
        if self.pod is None:
            self.pod_seen_at = time.monotonic()
        self.pod = dict(pod)
        self.pod_created = True


@dataclass
class PoolMemory:
    """Warm pools: kernels this run created or deleted that kopf's index may not show yet."""

    created: dict[Key, dict[str, float]] = field(default_factory=dict)
    deleted: set[tuple[str, str]] = field(default_factory=set)
    gpu_warned: set[Key] = field(default_factory=set)
    tickers: dict[Key, asyncio.Task[None]] = field(default_factory=dict)
    policies: set[tuple[str, str]] = field(default_factory=set)  # (namespace, kernelspec uid)


@dataclass
class Runtime:
    """Everything one operator run shares between handlers."""

    client: kube.KubeClient
    metrics: metrics.Metrics
    options: settings.RunOptions = field(default_factory=settings.RunOptions)
    kernels: dict[Key, KernelRecord] = field(default_factory=dict)
    locks: dict[tuple[str, str, str], asyncio.Lock] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    #: Kernelspec/template statuses last written or seen: (plural, ns, name) → (uid, status).
    statuses: dict[tuple[str, str, str], tuple[str, dict[str, Any]]] = field(default_factory=dict)
    #: ConfigMaps known to match their kernelspec: (namespace, name) → rendered data.
    configmaps: dict[Key, dict[str, Any]] = field(default_factory=dict)
    #: Gateways whose status refresh is scheduled (events meanwhile join it).
    pending_refresh: set[Key] = field(default_factory=set)
    #: Per gateway that notebooks use: a fingerprint of its last event.
    gateway_seen: dict[Key, tuple[Any, ...]] = field(default_factory=dict)
    #: Warm-pool bookkeeping (:mod:`warm_pools`).
    warm_pools: PoolMemory = field(default_factory=PoolMemory)

    def lock(self, plural: str, namespace: str, name: str) -> asyncio.Lock:
        """A lock for one object (created on first use)."""
        return self.locks.setdefault((plural, namespace, name), asyncio.Lock())

    def kernel_phases(self) -> dict[str, int]:
        """Count of known kernels by ``status.phase`` ("" when not written yet)."""
        counts: dict[str, int] = {}
        for record in list(self.kernels.values()):
            phase = str(record.status.get("phase") or "")
            counts[phase] = counts.get(phase, 0) + 1
        return counts

    def spawn(self, coro: Any) -> asyncio.Task[None]:
        """Run ``coro`` in the background, keeping a reference until it ends."""
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def close(self) -> None:
        """Cancel background tasks and close the API client (the cleanup handler calls it)."""
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            # Cancellation, or a task's own failure: already logged where it happened.
            with contextlib.suppress(BaseException):
                await task
        await self.client.close()
        self.metrics.stop()


def from_memo(memo: kopf.Memo) -> Runtime:
    """The run's shared state, as :func:`lifecycle.configure` stored it."""
    state = memo.get(RUNTIME_KEY)
    if not isinstance(state, Runtime):
        raise kopf.PermanentError("the operator's startup handler did not run")
    return state
