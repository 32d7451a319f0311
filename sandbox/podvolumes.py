"""A pod's configuration: env and volumes resolved from ConfigMaps, Secrets and its token.

A part of :class:`.podworker.PodWorker`: it waits (with backoff) for what the pod references,
writes each volume into the pod's directory, maps every ``mountPath`` to it (see
:func:`.podenv.rewrite_path`) and rewrites volumes when a ConfigMap or Secret changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from .kubeclient import Obj, resource_path
from .podenv import (
    ConfigError,
    PodContext,
    VolumePlan,
    container_env,
    plan_volume,
    referenced_objects,
)
from .podstate import ContainerRun, PodState
from .podtoken import MOUNT_PATH as TOKEN_MOUNT_PATH
from .podtoken import mount_service_account

log = logging.getLogger(__name__)


class PodVolumes(PodState):
    """Env and volumes of one pod's containers."""

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
