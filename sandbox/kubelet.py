"""The sandbox's local kubelet: registers a Node and runs the pods bound to it as processes.

Started by :mod:`.cli` (``elastic-jupyter-sandbox up``) in the sandbox process; it is an API
client of the sandbox API server over HTTP like a real kubelet:

* registers its Node (capacity/allocatable, Ready condition, InternalIP, and the port of its own
  HTTP server in ``status.daemonEndpoints.kubeletEndpoint.Port``);
* watches pods with ``fieldSelector=spec.nodeName=<node>`` and runs every container of each as
  a local process in its own process group (``command``/``args`` with ``$(VAR)`` expansion,
  env from :mod:`.podenv`, the image's local environment from :mod:`.imagemap`);
* gives each pod its own loopback IP (:mod:`.podips`) and a per-pod directory
  ``<state>/pods/<ns>_<name>_<uid>/`` holding ``volumes/``, ``root/`` (mount paths as
  symlinks), ``home/``, ``tmp/`` and ``logs/``;
* writes pod status through ``pods/{name}/status``: phases, container states, restart counts,
  conditions and readiness (readiness/liveness probes: httpGet, tcpSocket, exec);
* serves ``GET /containerLogs/{ns}/{pod}/{container}?follow=&tailLines=&previous=``, which the
  API server proxies ``pods/log`` to;
* kills a pod's process groups when the pod is deleted (SIGTERM, then SIGKILL after the pod's
  ``terminationGracePeriodSeconds`` capped to a few seconds).

What a pod process sees (local processes cannot mount, so mounts are mapped, see
:func:`.podenv.rewrite_path`): ``command``/``args``/env values/``workingDir`` naming a path under
a ``mountPath`` are rewritten to the local volume directory, and these env vars are set:
``SANDBOX_MOUNTS`` (JSON ``{mountPath: local dir}``), ``SANDBOX_POD_ROOT`` (a directory in which
every ``mountPath`` exists as a symlink, so ``$SANDBOX_POD_ROOT/usr/local/share/jupyter/kernels/x``
is the mounted volume), ``SANDBOX_POD_DIR``, plus ``HOME`` and ``TMPDIR`` private to the pod,
``HOSTNAME``, ``KUBECONFIG`` (a kubeconfig holding the pod's own service account token, see
:mod:`.podtoken`; absent when the token is not automounted) and the markers of
:mod:`.processes`, by which every process of a container is found and killed.
When the kubelet runs as root, ``securityContext.runAsUser``/``runAsGroup`` are honoured: the
process runs with that uid/gid and owns its HOME and TMPDIR (``run_as_user=False`` disables it).

Init containers run one after the other to completion before the app containers start (retried
on failure unless ``restartPolicy: Never``, which fails the pod). Not emulated: startup probes,
image pulls, ephemeral containers.

Where each part lives: this module holds the node (:class:`Kubelet`: registration, the pod
watch, events) and :class:`KubeletConfig`; :mod:`.kubelet_server` its HTTP endpoints;
:mod:`.podworker` one pod's lifecycle and processes, with its parts :mod:`.podstate`,
:mod:`.podvolumes` (env, volumes), :mod:`.podprobes` and :mod:`.podstatus`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import platform
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from . import nodes
from .clock import now
from .imagemap import ImageMap
from .kubeclient import ApiError, Informer, KubeClient, Obj, cancel_tasks, resource_path
from .kubelet_server import KubeletServer
from .podips import PodIPAllocator
from .podman_runtime import PodmanRuntime
from .podworker import PodWorker
from .quantity import parse_quantity

log = logging.getLogger(__name__)

GRACE_CAP_SECONDS = 3.0
KUBELET_VERSION = "v1.32.0-sandbox"


@dataclass
class KubeletConfig:
    """Node shape and local behaviour; the CLI fills it from its flags."""

    state_dir: Path
    node_name: str = "sandbox-node"
    cpu: str = "8"
    memory: str = "32Gi"
    gpus: int = 2
    max_pods: int = 110
    extended_resources: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[Obj] = field(default_factory=list)
    image_map: ImageMap = field(default_factory=ImageMap.default)
    run_as_user: bool = True
    grant_traverse: bool = True  # see .runas: let non-root pods reach host interpreters
    token: str = ""  # the kubelet's own credentials
    pod_api_url: str = ""  # the API server as pods reach it (TLS; "": the kubelet's URL)
    pod_api_ca: bytes = b""
    grace_cap: float = GRACE_CAP_SECONDS
    crash_backoff_base: float = 10.0
    host: str = "127.0.0.1"
    podman: PodmanRuntime | None = None  # --container-runtime podman (see .podman_runtime)

    def capacity(self) -> dict[str, str]:
        cap = {
            "cpu": self.cpu,
            "memory": self.memory,
            "pods": str(self.max_pods),
            "ephemeral-storage": "100Gi",
            "nvidia.com/gpu": str(self.gpus),
        }
        cap.update(self.extended_resources)
        return cap


# --- the kubelet --------------------------------------------------------------------------------


class Kubelet(KubeletServer):
    """The node agent. ``await start()`` then ``await stop()``; see the module docstring."""

    def __init__(self, api_url: str, config: KubeletConfig) -> None:
        self.api_url = api_url
        self.config = config
        self.client = KubeClient(api_url, user_agent="sandbox-kubelet", token=config.token)
        self.ips = PodIPAllocator()
        self.workers: dict[str, PodWorker] = {}  # by pod uid
        self.allocatable: dict[str, Fraction] = {
            k: parse_quantity(v) for k, v in config.capacity().items()
        }
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._probe_session: aiohttp.ClientSession | None = None
        self._killing: set[asyncio.Task[None]] = set()
        self.pod_informer = Informer(
            self.client,
            resource_path("v1", "pods"),
            self._on_pod,
            params={"fieldSelector": f"spec.nodeName={config.node_name}"},
            name="kubelet pods",
        )
        self._config_informers = [
            Informer(
                self.client, resource_path("v1", plural), self._config_handler(kind), name=kind
            )
            for kind, plural in (("configmap", "configmaps"), ("secret", "secrets"))
        ]

    @property
    def probe_session(self) -> aiohttp.ClientSession:
        if self._probe_session is None or self._probe_session.closed:
            self._probe_session = aiohttp.ClientSession()
        return self._probe_session

    async def start(self) -> None:
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        self.config.state_dir.chmod(0o755)  # pods running as other users must traverse it
        (self.config.state_dir / "pods").mkdir(exist_ok=True)
        (self.config.state_dir / "pods").chmod(0o755)
        app = web.Application()
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._logs)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/pods", self._pods)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, 0)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1])
        await self.register_node()
        self._tasks = [asyncio.create_task(self.pod_informer.run(), name="kubelet pods")]
        self._tasks += [asyncio.create_task(i.run()) for i in self._config_informers]
        await asyncio.wait_for(self.pod_informer.synced.wait(), 30)

    async def stop(self) -> None:
        """Kill every pod process (the sandbox is going away) and close the HTTP server."""
        await cancel_tasks(self._tasks)
        await asyncio.gather(*self._killing, return_exceptions=True)
        workers = list(self.workers.values())
        self.workers.clear()
        await asyncio.gather(*(w.terminate() for w in workers), return_exceptions=True)
        for w in workers:
            w.cleanup_files()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._probe_session is not None:
            await self._probe_session.close()
        await self.client.close()

    def node_object(self) -> Obj:
        labels = {
            "kubernetes.io/hostname": self.config.node_name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": _arch(),
            "node-role.kubernetes.io/control-plane": "",
            "sandbox.elastic-jupyter.io/node": "true",
        }
        labels.update(self.config.labels)
        capacity = self.config.capacity()
        stamp = now()
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.config.node_name, "labels": labels},
            "spec": {"taints": self.config.taints} if self.config.taints else {},
            "status": {
                "capacity": capacity,
                "allocatable": dict(capacity),
                "conditions": [
                    _node_condition(
                        "MemoryPressure",
                        "False",
                        "KubeletHasSufficientMemory",
                        "kubelet has sufficient memory available",
                        stamp,
                    ),
                    _node_condition(
                        "DiskPressure",
                        "False",
                        "KubeletHasNoDiskPressure",
                        "kubelet has no disk pressure",
                        stamp,
                    ),
                    _node_condition(
                        "PIDPressure",
                        "False",
                        "KubeletHasSufficientPID",
                        "kubelet has sufficient PID available",
                        stamp,
                    ),
                    _node_condition(
                        "Ready", "True", "KubeletReady", "kubelet is posting ready status", stamp
                    ),
                ],
                "addresses": [
                    {"type": "InternalIP", "address": self.config.host},
                    {"type": "Hostname", "address": self.config.node_name},
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
                "nodeInfo": {
                    "kubeletVersion": KUBELET_VERSION,
                    "kubeProxyVersion": KUBELET_VERSION,
                    "containerRuntimeVersion": "sandbox://local-processes",
                    "operatingSystem": "linux",
                    "architecture": _arch(),
                    "osImage": platform.platform(),
                    "kernelVersion": platform.release(),
                    "machineID": "",
                    "systemUUID": "",
                    "bootID": "",
                },
            },
        }

    async def register_node(self) -> None:
        """Create (or take over) the Node and write its status."""
        node = self.node_object()
        path = resource_path("v1", "nodes", name=self.config.node_name)
        try:
            await self.client.create(resource_path("v1", "nodes"), node)
        except ApiError as err:
            if err.code != 409:
                raise
            await self.client.patch(path, {"metadata": node["metadata"], "spec": node["spec"]})
        try:
            await self.client.patch(path + "/status", {"status": node["status"]})
        except ApiError as err:
            if err.code not in (404, 405):
                raise
            await self.client.patch(path, {"status": node["status"]})

    async def event(self, pod: Obj, etype: str, reason: str, message: str) -> None:
        """Post a core/v1 Event about a pod, as ``kubectl describe pod`` shows them."""
        await self.client.post_pod_event(
            pod, etype, reason, message, "kubelet", self.config.node_name
        )

    # -- watch handlers --

    async def _on_pod(self, etype: str, pod: Obj, old: Obj | None) -> None:
        meta = pod.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        worker = self.workers.get(uid)
        if etype == "DELETED" or meta.get("deletionTimestamp"):
            if worker is not None and not worker.terminating:
                task = asyncio.create_task(self._kill(worker, graceful=etype != "DELETED"))
                self._killing.add(task)
                task.add_done_callback(self._killing.discard)
            elif worker is None and etype != "DELETED":
                # Terminating but never run here (e.g. after a sandbox restart): finish it.
                await self.client.delete(
                    resource_path("v1", "pods", meta.get("namespace"), meta.get("name")),
                    grace_period=0,
                )
            return
        if worker is not None:
            worker.update(pod)
            return
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            return  # finished before this kubelet started: nothing to run
        if await nodes.recover_lost_pod(self, pod):
            return  # its containers died with this node before a crash: see .nodes
        worker = PodWorker(self, pod)
        nodes.restore_restart_counts(worker, pod)
        self.workers[uid] = worker
        worker.start()

    async def _kill(self, worker: PodWorker, *, graceful: bool) -> None:
        await worker.terminate()
        self.workers.pop(worker.uid, None)
        if worker.ip and not worker.host_network:
            self.ips.release(worker.ip)
        worker.cleanup_files()
        if graceful:
            # The API server kept the object for us (graceful deletion): now it may go.
            with contextlib.suppress(ApiError, aiohttp.ClientError):
                await self.client.delete(
                    resource_path("v1", "pods", worker.namespace, worker.name), grace_period=0
                )

    def _config_handler(self, kind: str) -> Any:
        async def handler(etype: str, obj: Obj, old: Obj | None) -> None:
            if etype == "DELETED":
                return
            ns, name = (obj.get("metadata") or {}).get("namespace"), obj["metadata"]["name"]
            for worker in list(self.workers.values()):
                if worker.namespace == ns and not worker.terminating:
                    worker.config_changed.set()
                    await worker.refresh_volumes(kind, name)

        return handler


def _node_condition(ctype: str, status: str, reason: str, message: str, stamp: str) -> Obj:
    return {
        "type": ctype,
        "status": status,
        "reason": reason,
        "message": message,
        "lastHeartbeatTime": stamp,
        "lastTransitionTime": stamp,
    }


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
