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
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import platform
import shutil
import signal
import time
import uuid
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from . import nodes
from .imagemap import POD_IP_TOKEN, ImageMap, ImageRule, host_path, pull_error_message
from .kubeclient import ApiError, Informer, KubeClient, Obj, cancel_tasks, resource_path
from .podenv import (
    ConfigError,
    PodContext,
    VolumePlan,
    container_env,
    expand,
    plan_volume,
    referenced_objects,
    rewrite_path,
)
from .podips import PodIPAllocator
from .podman_runtime import RUNTIME_PODMAN, PodmanRuntime, choose_rule, container_name, podman_run
from .podtoken import MOUNT_PATH as TOKEN_MOUNT_PATH
from .podtoken import mount_service_account
from .processes import (
    CONTAINER_MARKER,
    POD_MARKER,
    HostProcess,
    exec_failure,
    kill_marked,
    spawn,
)
from .quantity import parse_quantity
from .runas import find_executable, grant_traverse

log = logging.getLogger(__name__)

GRACE_CAP_SECONDS = 3.0
KUBELET_VERSION = "v1.32.0-sandbox"


def now() -> str:
    """An RFC 3339 timestamp as the API uses (second precision, UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


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


# --- one pod ------------------------------------------------------------------------------------


class PodWorker:
    """Runs one pod (by uid) from start to deletion; owned by :class:`Kubelet`."""

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

    # -- lifecycle --

    def start(self) -> None:
        self._writer = asyncio.create_task(self._status_writer(), name=f"status {self.name}")
        self._main = asyncio.create_task(self._run(), name=f"pod {self.name}")
        deadline = (self.pod.get("spec") or {}).get("activeDeadlineSeconds")
        if deadline is not None:
            self._deadline = asyncio.create_task(self._enforce_deadline(float(deadline)))

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

    async def terminate(self) -> None:
        """Kill every process group of the pod (SIGTERM, grace, SIGKILL) and stop its tasks."""
        self.terminating = True
        grace_s = self._grace_seconds()
        if self._deadline is not None:
            self._deadline.cancel()
        if self._main is not None:
            self._main.cancel()
        await cancel_tasks(self._tasks)
        await self._kill_processes(grace_s)
        if self._main is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._main
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._writer

    async def _kill_processes(self, grace_s: float) -> None:
        """SIGTERM each container's group, SIGKILL what is left after the grace period."""
        procs = [
            c.process for c in self.all_containers if c.process and c.process.returncode is None
        ]
        for proc in procs:
            _kill_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for proc in procs:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(proc.wait(), max(0.0, deadline - time.monotonic()))
        for proc in procs:
            # Kill the group even when the leader has exited: its children may remain.
            _kill_group(proc.pid, signal.SIGKILL)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(proc.wait(), 2.0)
        await asyncio.to_thread(kill_marked, POD_MARKER, self.uid)
        if self.kubelet.config.podman is not None:
            await self.kubelet.config.podman.remove_pod(self.uid)

    async def _enforce_deadline(self, seconds: float) -> None:
        """``activeDeadlineSeconds``: stop the pod and fail it with ``DeadlineExceeded``."""
        await asyncio.sleep(seconds)
        self.deadline_exceeded = True
        self.terminating = True  # no restarts from here on
        await self.kubelet.event(
            self.pod,
            "Normal",
            "DeadlineExceeded",
            "Pod was active on the node longer than the specified deadline",
        )
        await self._kill_processes(self._grace_seconds())
        running = [t for t in self._tasks if not t.done()]
        if running:  # let the supervisors record how their containers ended
            await asyncio.wait(running, timeout=3.0)
        if self._main is not None and not self._main.done():
            self._main.cancel()  # containers still waiting never start
        self.mark_dirty()

    def _grace_seconds(self) -> float:
        grace = (self.pod.get("spec") or {}).get("terminationGracePeriodSeconds")
        return min(float(30 if grace is None else grace), self.kubelet.config.grace_cap)

    def cleanup_files(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- main flow --

    async def _run(self) -> None:
        self.start_time = now()
        # Directory creation is many small syscalls that are slow on a busy disk; in a thread
        # they overlap with the event loop serving every other pod instead of stalling it.
        await asyncio.to_thread(self._prepare_dirs)
        self.ip = self.kubelet.config.host if self.host_network else self.kubelet.ips.allocate()
        self.sandbox_ready = True
        self.mark_dirty()
        rules = await self._resolve_images()
        envs = await self._prepare_config()
        waiting = "PodInitializing" if self.init_containers else "ContainerCreating"
        for c in self.all_containers:
            c.state = {"waiting": {"reason": "ContainerCreating" if c.init else waiting}}
        for init in self.init_containers:
            init_task = asyncio.create_task(
                self._supervise(init, rules[init.name], envs[init.name])
            )
            self._tasks = [init_task]
            await init_task
            if init.state.get("terminated", {}).get("exitCode") != 0:
                self.init_failed = True  # restartPolicy Never: the pod has failed
                self.mark_dirty()
                return
        self._tasks = [
            asyncio.create_task(self._supervise(c, rules[c.name], envs[c.name]))
            for c in self.containers
        ]
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.mark_dirty()

    def _prepare_dirs(self) -> None:
        for sub in ("volumes", "root", "home", "tmp", "logs"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        for c in self.all_containers:
            c.log_dir.mkdir(parents=True, exist_ok=True)
        uid, gid, _ = self._security()
        for path in (self.dir, self.dir / "volumes", self.dir / "root"):
            path.chmod(0o755)
        if uid is not None:
            for sub in ("home", "tmp"):
                os.chown(self.dir / sub, uid, gid if gid is not None else 0)
                (self.dir / sub).chmod(0o700)

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

    async def _resolve_images(self) -> dict[str, ImageRule]:
        """Map each image to a local environment, or stay in ErrImagePull/ImagePullBackOff."""
        rules: dict[str, ImageRule] = {}
        for c in self.all_containers:
            image = str(c.spec.get("image") or "")
            rule = self.kubelet.config.image_map.resolve(image) if image else None
            rule = await choose_rule(self.kubelet.config.podman, image, rule)
            if rule is None and not image:
                rule = ImageRule("no-image", ())
            if rule is None:
                message = pull_error_message(image)
                c.state = {"waiting": {"reason": "ErrImagePull", "message": message}}
                self.mark_dirty()
                await self.kubelet.event(self.pod, "Warning", "Failed", message)
                await asyncio.sleep(1.0)
                c.state = {
                    "waiting": {
                        "reason": "ImagePullBackOff",
                        "message": f'Back-off pulling image "{image}"',
                    }
                }
                self.mark_dirty()
                await self.kubelet.event(
                    self.pod, "Normal", "BackOff", f'Back-off pulling image "{image}"'
                )
                # The map is fixed for the sandbox's life: the pull can never succeed.
                await asyncio.Event().wait()
            assert rule is not None
            rules[c.name] = rule
        return rules

    async def _prepare_config(self) -> dict[str, list[tuple[str, str]]]:
        """Resolve env and volumes, retrying while something referenced is missing."""
        delay = 0.5
        while True:
            try:
                ctx = await self._context()
                if not self.token_checked:
                    uid, gid, _ = self._security()
                    self.token_dir = await mount_service_account(
                        self.kubelet.client, self.pod, self.dir, (uid, gid), self.kubelet.config
                    )
                    self.token_checked = True
                envs = {c.name: container_env(ctx, c.spec) for c in self.all_containers}
                for c in self.all_containers:
                    self._check_non_root(c)
                self._materialize_volumes(ctx)
                return envs
            except ConfigError as err:
                for c in self.all_containers:
                    c.state = {"waiting": {"reason": err.reason, "message": err.message}}
                self.mark_dirty()
                # Retry with backoff, or at once when a ConfigMap/Secret shows up.
                self.config_changed.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.config_changed.wait(), delay)
                delay = min(delay * 2, 5.0)

    def _check_non_root(self, c: ContainerRun) -> None:
        pod_sc = (self.pod.get("spec") or {}).get("securityContext") or {}
        c_sc = c.spec.get("securityContext") or {}
        if not c_sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
            return
        uid = c_sc.get("runAsUser", pod_sc.get("runAsUser"))
        if uid is None or int(uid) == 0:
            raise ConfigError(
                "container has runAsNonRoot and image will run as root "
                f'(pod: "{self.name}_{self.namespace}({self.uid})", container: {c.name})'
            )

    async def _context(self) -> PodContext:
        cm_names, secret_names = referenced_objects(self.pod)
        configmaps: dict[str, Obj] = {}
        secrets: dict[str, Obj] = {}
        client = self.kubelet.client
        for name in cm_names:
            obj = await client.get_or_none(resource_path("v1", "configmaps", self.namespace, name))
            if obj is not None:
                configmaps[name] = obj
        for name in secret_names:
            obj = await client.get_or_none(resource_path("v1", "secrets", self.namespace, name))
            if obj is not None:
                secrets[name] = obj
        return PodContext(
            pod=self.pod,
            node_name=self.kubelet.config.node_name,
            host_ip=self.kubelet.config.host,
            pod_ip=self.ip,
            node_allocatable=self.kubelet.allocatable,
            configmaps=configmaps,
            secrets=secrets,
        )

    # -- volumes --

    def _materialize_volumes(self, ctx: PodContext) -> None:
        plans = {}
        for volume in (self.pod.get("spec") or {}).get("volumes") or []:
            plan = plan_volume(ctx, volume)
            plans[plan.name] = plan
        for plan in plans.values():
            self._write_volume(plan)
        self.volume_plans = plans
        root = self.dir / "root"
        for c in self.all_containers:
            mounts: dict[str, str] = {}
            for mount in c.spec.get("volumeMounts") or []:
                mounted = plans.get(str(mount.get("name")))
                if mounted is None:
                    raise ConfigError(
                        f'volume "{mount.get("name")}" not found in pod spec',
                        "CreateContainerError",
                    )
                local = self._volume_dir(mounted)
                if mount.get("subPath"):
                    local = local / str(mount["subPath"])
                    if not local.exists() and mounted.kind in ("emptyDir", "persistentVolumeClaim"):
                        local.mkdir(parents=True, exist_ok=True)
                mount_path = str(mount.get("mountPath") or "")
                mounts[mount_path] = str(local)
                link = root / mount_path.lstrip("/")
                link.parent.mkdir(parents=True, exist_ok=True)
                if not link.is_symlink() and not link.exists():
                    link.symlink_to(local)
            if self.token_dir is not None:
                mounts.setdefault(TOKEN_MOUNT_PATH, str(self.token_dir))
                link = root / TOKEN_MOUNT_PATH.lstrip("/")
                link.parent.mkdir(parents=True, exist_ok=True)
                if not link.is_symlink() and not link.exists():
                    link.symlink_to(self.token_dir)
            self.mounts[c.name] = mounts

    def _volume_dir(self, plan: VolumePlan) -> Path:
        if plan.kind == "hostPath" and plan.host_path:
            return Path(plan.host_path)
        if plan.kind == "persistentVolumeClaim" and plan.claim:
            return self.kubelet.config.state_dir / "volumes" / self.namespace / plan.claim
        return self.dir / "volumes" / plan.name

    def _write_volume(self, plan: VolumePlan) -> None:
        target = self._volume_dir(plan)
        if plan.kind == "hostPath":
            target.mkdir(parents=True, exist_ok=True)
            return
        target.mkdir(parents=True, exist_ok=True)
        if plan.kind in ("emptyDir", "persistentVolumeClaim"):
            target.chmod(0o777)  # as Kubernetes creates emptyDir: writable by any runAsUser
            return
        target.chmod(0o755)
        for rel, (content, mode) in plan.files.items():
            path = target / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_file() and path.read_bytes() == content:
                path.chmod(mode)
                continue
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_bytes(content)
            tmp.chmod(mode)
            tmp.replace(path)  # atomic, as the kubelet's symlink swap is for readers
        wanted = {str(target / rel) for rel in plan.files}
        for path in sorted(target.rglob("*"), reverse=True):
            if path.is_file() and str(path) not in wanted:
                path.unlink(missing_ok=True)
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()

    async def refresh_volumes(self, kind: str, name: str) -> None:
        """A ConfigMap or Secret changed: rewrite the volumes made from it."""
        if not any((kind, name) in p.sources for p in self.volume_plans.values()):
            return
        ctx = await self._context()
        for volume in (self.pod.get("spec") or {}).get("volumes") or []:
            old = self.volume_plans.get(str(volume.get("name")))
            if old is None or (kind, name) not in old.sources:
                continue
            try:
                plan = plan_volume(ctx, volume)
            except ConfigError as err:
                log.info("pod %s/%s: not refreshing volume: %s", self.namespace, self.name, err)
                continue
            self._write_volume(plan)
            self.volume_plans[plan.name] = plan

    # -- processes --

    def _process_env(
        self, c: ContainerRun, rule: ImageRule, declared: list[tuple[str, str]]
    ) -> tuple[list[str], dict[str, str], str]:
        mounts = self.mounts.get(c.name, {})
        env: dict[str, str] = {}
        for key in ("LANG", "LC_ALL", "TZ"):
            if key in os.environ:
                env[key] = os.environ[key]
        env["PATH"] = os.pathsep.join(list(rule.path) + list(host_path()))
        env["HOME"] = str(self.dir / "home")
        env["TMPDIR"] = str(self.dir / "tmp")
        spec = self.pod.get("spec") or {}
        env["HOSTNAME"] = str(spec.get("hostname") or self.name)
        if self.token_dir is not None:
            env["KUBECONFIG"] = str(self.token_dir / "kubeconfig")
        # An image rule may place the pod's own IP into its env (see imagemap.POD_IP_TOKEN).
        env.update({k: v.replace(POD_IP_TOKEN, self.ip) for k, v in rule.env.items()})
        env["SANDBOX_POD_DIR"] = str(self.dir)
        env["SANDBOX_POD_ROOT"] = str(self.dir / "root")
        env["SANDBOX_MOUNTS"] = json.dumps(mounts, sort_keys=True)
        env[POD_MARKER] = self.uid
        env[CONTAINER_MARKER] = f"{self.uid}/{c.name}/{c.restart_count}"
        declared_map = {k: rewrite_path(v, mounts) for k, v in declared}
        env.update(declared_map)

        command = c.spec.get("command")
        args = c.spec.get("args")
        argv_cmd = list(command) if command else list(rule.command or [])
        # Kubernetes: args replace the image's CMD; a command alone drops the CMD.
        argv_args: list[str] = []
        if args is not None:
            argv_args = list(args)
        elif not command:
            argv_args = list(rule.args or [])
        argv = [rewrite_path(expand(str(a), declared_map), mounts) for a in argv_cmd + argv_args]
        workdir = str(c.spec.get("workingDir") or "")
        if workdir:
            local = rewrite_path(workdir, mounts)
            if local == workdir and not Path(workdir).is_dir():
                local = str(self.dir / "root" / workdir.lstrip("/"))
            Path(local).mkdir(parents=True, exist_ok=True)
            workdir = local
        else:
            workdir = env["HOME"]
        return argv, env, workdir

    def _podman_launch(
        self, c: ContainerRun, rule: ImageRule, declared: list[tuple[str, str]]
    ) -> tuple[list[str], dict[str, str], str]:
        assert self.kubelet.config.podman is not None
        launch = podman_run(
            self.kubelet.config.podman,
            name=container_name(self.uid, c.name, c.restart_count),
            pod_uid=self.uid,
            pod_ip=self.ip,
            spec=c.spec,
            rule=rule,
            declared=declared,
            markers={
                POD_MARKER: self.uid,
                CONTAINER_MARKER: f"{self.uid}/{c.name}/{c.restart_count}",
            },
            mounts=self.mounts.get(c.name, {}),
            user=self._security(c.spec),
            # The pod's own ServiceAccount kubeconfig (none without token automount).
            kubeconfig=self.token_dir / "kubeconfig" if self.token_dir is not None else None,
        )
        return launch.argv, launch.env, str(self.dir)

    async def _supervise(
        self, c: ContainerRun, rule: ImageRule, declared: list[tuple[str, str]]
    ) -> None:
        """Run one container, restarting it per the pod's restart policy."""
        backoff_step = 0
        while True:
            started_at = now()
            began = time.monotonic()
            exit_code, reason, message = await self._run_once(c, rule, declared, started_at)
            if time.monotonic() - began > 600:
                backoff_step = 0  # as the kubelet does: a container that ran 10 min starts afresh
            finished = now()
            terminated: Obj = {
                "exitCode": exit_code,
                "reason": reason,
                "startedAt": started_at,
                "finishedAt": finished,
            }
            if not message and exit_code != 0:
                message = self._fallback_message(c)
            if message:
                terminated["message"] = message
            if c.container_id:
                terminated["containerID"] = c.container_id
            c.ready = False
            c.started = False
            c.running_event.clear()
            policy = self.restart_policy
            restart = policy == "Always" or (policy == "OnFailure" and exit_code != 0)
            if c.init:  # init containers are retried on failure unless the policy is Never
                restart = policy != "Never" and exit_code != 0
            if not restart or self.terminating:
                c.state = {"terminated": terminated}
                c.done = True
                self.mark_dirty()
                return
            c.last_state = {"terminated": terminated}
            delay = (
                0.0
                if backoff_step == 0
                else self.kubelet.config.crash_backoff_base * (2 ** (backoff_step - 1))
            )
            delay = min(delay, 300.0)
            backoff_step += 1
            if delay > 0:
                c.state = {
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": f"back-off {int(delay)}s restarting failed container="
                        f"{c.name} pod={self.name}_{self.namespace}({self.uid})",
                    }
                }
                self.mark_dirty()
                await self.kubelet.event(
                    self.pod, "Warning", "BackOff", "Back-off restarting failed container"
                )
                await asyncio.sleep(delay)
            c.restart_count += 1

    def _find_executable(
        self, exe: str, search_path: str, uid: int | None, gid: int | None, groups: list[int]
    ) -> tuple[str | None, bool]:
        """Resolve the container's executable as the user it will run as: (path, denied)."""
        if uid is None or uid == 0:
            found = shutil.which(exe, path=search_path) if "/" not in exe else exe
            if found is None or not os.access(found, os.X_OK) or os.path.isdir(found):
                return None, False
            return found, False
        gids = {gid or 0, *groups}
        for _ in range(16):
            path, blockers = find_executable(exe, search_path, uid, gids)
            if path is None:
                return None, False
            if not blockers:
                return str(path), False
            if not self.kubelet.config.grant_traverse:
                return None, True
            for blocker in blockers:
                grant_traverse(blocker)
        return None, True

    def _fallback_message(self, c: ContainerRun) -> str:
        """``terminationMessagePolicy: FallbackToLogsOnError``: the log's tail explains a failure.

        (A ``terminationMessagePath`` file is not read: host processes cannot be given a private
        ``/dev/termination-log``.)
        """
        if c.spec.get("terminationMessagePolicy") != "FallbackToLogsOnError":
            return ""
        try:
            data = c.log_path().read_bytes()
        except OSError:
            return ""
        tail = b"".join(data.splitlines(keepends=True)[-80:])[-2048:]
        return tail.decode(errors="replace")

    async def _run_once(
        self, c: ContainerRun, rule: ImageRule, declared: list[tuple[str, str]], started_at: str
    ) -> tuple[int, str, str]:
        """Start the container's process and wait for it: (exitCode, reason, message)."""
        if rule.runtime == RUNTIME_PODMAN:  # the podman client runs as this container's process
            argv, env, workdir = self._podman_launch(c, rule, declared)
            uid, gid, groups = None, None, list[int]()
        else:
            argv, env, workdir = self._process_env(c, rule, declared)
            uid, gid, groups = self._security(c.spec)
        if not argv:
            return 128, "StartError", "failed to create containerd task: no command specified"
        exe = argv[0]
        found, denied = self._find_executable(exe, env["PATH"], uid, gid, groups)
        if found is None:
            why = "permission denied" if denied else "executable file not found in $PATH"
            message = (
                "failed to create containerd task: failed to create shim task: OCI runtime "
                "create failed: runc create failed: unable to start container process: "
                f'exec: "{exe}": {why}: unknown'
            )
            await self.kubelet.event(self.pod, "Warning", "Failed", f"Error: {message}")
            return 128, "StartError", message
        log_file = open(c.log_path(), "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            proc = spawn(
                [found, *argv[1:]],
                stdout=log_file,
                cwd=workdir,
                env=env,
                uid=uid,
                gid=gid,
                groups=groups if uid is not None else (),
            )
        except OSError as err:
            message = (
                "failed to create containerd task: failed to create shim task: OCI runtime "
                "create failed: runc create failed: unable to start container process: "
                f'exec: "{exe}": {err.strerror or err}: unknown'
            )
            return 128, "StartError", message
        finally:
            log_file.close()
        c.process = proc
        c.container_id = f"sandbox://{proc.pid}"
        c.state = {"running": {"startedAt": started_at}}
        c.started = True
        c.running_event.set()
        probe = c.spec.get("readinessProbe")
        c.ready = probe is None
        self.mark_dirty()
        await self.kubelet.event(self.pod, "Normal", "Started", f"Started container {c.name}")
        probes = []
        if probe is not None:
            probes.append(asyncio.create_task(self._probe_loop(c, probe, env, "readiness")))
        if c.spec.get("livenessProbe") is not None:
            probes.append(
                asyncio.create_task(self._probe_loop(c, c.spec["livenessProbe"], env, "liveness"))
            )
        try:
            code = await proc.wait()
        finally:
            await cancel_tasks(probes)
        # The leader is gone; its children must not outlive the container, including those
        # that started sessions of their own (see .processes).
        _kill_group(proc.pid, signal.SIGKILL)
        await asyncio.to_thread(kill_marked, CONTAINER_MARKER, env[CONTAINER_MARKER])
        failed_exec = exec_failure(c.log_path(), code)
        if failed_exec is not None:  # the command could not be executed (see .processes)
            message = (
                "failed to create containerd task: failed to create shim task: OCI runtime "
                "create failed: runc create failed: unable to start container process: "
                f'exec: "{exe}": {failed_exec}: unknown'
            )
            return 128, "StartError", message
        if code < 0:
            return 128 - code, "Error", ""
        return code, "Completed" if code == 0 else "Error", ""

    # -- probes --

    async def _probe_loop(
        self, c: ContainerRun, probe: Obj, env: dict[str, str], kind: str
    ) -> None:
        await asyncio.sleep(float(probe.get("initialDelaySeconds") or 0))
        period = float(probe.get("periodSeconds") or 10)
        success_needed = int(probe.get("successThreshold") or 1)
        failure_limit = int(probe.get("failureThreshold") or 3)
        successes = failures = 0
        while True:
            ok = await self._probe_once(c, probe, env)
            if ok:
                successes, failures = successes + 1, 0
            else:
                successes, failures = 0, failures + 1
            if kind == "readiness":
                ready = c.ready
                if ok and successes >= success_needed:
                    ready = True
                elif not ok and failures >= failure_limit:
                    ready = False
                if ready != c.ready:
                    c.ready = ready
                    self.mark_dirty()
            elif not ok and failures >= failure_limit and c.process is not None:
                await self.kubelet.event(
                    self.pod,
                    "Normal",
                    "Killing",
                    f"Container {c.name} failed liveness probe, will be restarted",
                )
                _kill_group(c.process.pid, signal.SIGKILL)
                return
            await asyncio.sleep(period)

    def _named_port(self, c: ContainerRun, port: Any) -> int:
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        for p in c.spec.get("ports") or []:
            if p.get("name") == port:
                return int(p["containerPort"])
        raise ValueError(f"named port {port!r} not found")

    async def _probe_once(self, c: ContainerRun, probe: Obj, env: dict[str, str]) -> bool:
        timeout = float(probe.get("timeoutSeconds") or 1)
        try:
            if "httpGet" in probe:
                get = probe["httpGet"]
                scheme = str(get.get("scheme") or "HTTP").lower()
                host = str(get.get("host") or self.ip)
                port = self._named_port(c, get.get("port"))
                url = f"{scheme}://{host}:{port}{get.get('path') or '/'}"
                headers = {str(h["name"]): str(h["value"]) for h in get.get("httpHeaders") or []}
                async with self.kubelet.probe_session.get(
                    url, headers=headers, ssl=False, timeout=aiohttp.ClientTimeout(total=timeout)
                ) as resp:
                    return 200 <= resp.status < 400
            if "tcpSocket" in probe:
                sock = probe["tcpSocket"]
                host = str(sock.get("host") or self.ip)
                port = self._named_port(c, sock.get("port"))
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
                writer.close()
                return True
            if "exec" in probe:
                command = [str(a) for a in probe["exec"].get("command") or []]
                exe = shutil.which(command[0], path=env["PATH"]) if command else None
                if exe is None:
                    return False
                uid, gid, groups = self._security(c.spec)
                kwargs: dict[str, Any] = {}
                if uid is not None:
                    kwargs.update(user=uid, group=gid, extra_groups=groups)
                proc = await asyncio.create_subprocess_exec(
                    exe,
                    *command[1:],
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                    **kwargs,
                )
                try:
                    return await asyncio.wait_for(proc.wait(), timeout) == 0
                except asyncio.TimeoutError:
                    proc.kill()
                    await proc.wait()
                    return False
        except (OSError, asyncio.TimeoutError, aiohttp.ClientError, ValueError):
            return False
        return True  # grpc and unknown handlers: not emulated, treated as passing

    # -- status --

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
            "qosClass": _qos_class(self.pod),
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


def _qos_class(pod: Obj) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        requests, limits = res.get("requests") or {}, res.get("limits") or {}
        if requests or limits:
            any_set = True
        for name in ("cpu", "memory"):
            limit = limits.get(name)
            if limit is None or requests.get(name, limit) != limit:
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


# --- the kubelet --------------------------------------------------------------------------------


class Kubelet:
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
        meta = pod.get("metadata") or {}
        ns = str(meta.get("namespace") or "default")
        stamp = now()
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta.get('name')}.", "namespace": ns},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta.get("name"),
                "namespace": ns,
                "uid": meta.get("uid"),
            },
            "reason": reason,
            "message": message,
            "type": etype,
            "source": {"component": "kubelet", "host": self.config.node_name},
            "reportingComponent": "kubelet",
            "reportingInstance": self.config.node_name,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        with contextlib.suppress(ApiError, aiohttp.ClientError, asyncio.TimeoutError):
            await self.client.create(resource_path("v1", "events", ns), body)

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

    # -- HTTP --

    def _find(self, namespace: str, pod: str) -> PodWorker | None:
        for worker in self.workers.values():
            if worker.namespace == namespace and worker.name == pod:
                return worker
        return None

    async def _healthz(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok")

    async def _pods(self, request: web.Request) -> web.StreamResponse:
        items = [w.pod for w in self.workers.values()]
        return web.json_response({"kind": "PodList", "apiVersion": "v1", "items": items})

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        ns = request.match_info["namespace"]
        worker = self._find(ns, request.match_info["pod"])
        name = request.match_info["container"]
        if worker is None:
            raise web.HTTPNotFound(text=f'pod "{request.match_info["pod"]}" not found on node')
        run = next((c for c in worker.all_containers if c.name == name), None)
        if run is None:
            raise web.HTTPNotFound(
                text=f'container "{name}" in pod "{worker.name}" is not valid for pod'
            )
        query = request.query
        follow = query.get("follow", "false").lower() in ("true", "1")
        previous = query.get("previous", "false").lower() in ("true", "1")
        tail = int(query["tailLines"]) if query.get("tailLines", "").lstrip("-").isdigit() else -1
        if not previous and not run.started and run.restart_count == 0 and not run.done:
            reason = str((run.state.get("waiting") or {}).get("reason") or "ContainerCreating")
            raise web.HTTPBadRequest(
                text=f'container "{name}" in pod "{worker.name}" is waiting to start: {reason}'
            )
        if previous:
            if run.restart_count == 0:
                raise web.HTTPBadRequest(
                    text=f'previous terminated container "{name}" in pod "{worker.name}" not found'
                )
            path = run.log_path(run.restart_count - 1)
            follow = False
        else:
            path = run.log_path()
        response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        await response.prepare(request)
        data = path.read_bytes() if path.exists() else b""
        if tail >= 0:
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-tail:]) if tail else b""
        await response.write(data)
        offset = path.stat().st_size if path.exists() else 0
        restart = run.restart_count
        while follow:
            running = run.process is not None and run.process.returncode is None
            if path.exists() and path.stat().st_size > offset:
                with path.open("rb") as handle:
                    handle.seek(offset)
                    chunk = handle.read()
                offset += len(chunk)
                await response.write(chunk)
                continue
            if worker.terminating or run.restart_count != restart or (run.started and not running):
                break
            if not run.started and run.done:
                break
            await asyncio.sleep(0.1)
        await response.write_eof()
        return response


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
