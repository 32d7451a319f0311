"""The kubelet's container runtime option: pods whose image is built locally run in it, in podman.

Process mode (the default, :mod:`.kubelet`) runs a container's command with a local environment
chosen by :mod:`.imagemap`; it is fast, but the image itself is never run. With
``elastic-jupyter-sandbox up --container-runtime podman`` a container runs in its real image
through ``podman run`` when

* its image is in podman's local store (``podman image exists``: built here, e.g. by
  ``make images``), or
* an image map entry says ``runtime: podman`` (optionally ``image:``, the local image to run
  instead of the pod's, e.g. ``ghcr.io/elastic-jupyter/kernel-py:0.1.0`` →
  ``elastic-jupyter/kernel-py:dev``).

Other images keep running in process mode. What a container sees, as in process mode:

* the pod's network: the host's (``--network host``), on which the pod's own 127.x address
  (:mod:`.podips`) is reachable; the env of the image map entry matching the image (e.g.
  ``KERNEL_BIND_IP=$(POD_IP)``) makes servers bind it, as in process mode;
* env from the pod spec (values reach podman through its environment, ``-e NAME``, so Secret
  values never appear on a command line), and the process markers of :mod:`.processes`, so the
  kubelet's kill of a pod's marked processes reaches the container's processes too;
* volumes (ConfigMap, Secret, emptyDir, hostPath, PVC directories the kubelet wrote) bind-mounted
  at their ``mountPath`` (``readOnly`` honoured), no path rewriting needed;
* ``runAsUser``/``runAsGroup``/``supplementalGroups``/``fsGroup`` as ``--user``/``--group-add``
  (the image's ``USER`` when the pod sets none);
* ``command`` replaces the image's ENTRYPOINT (and drops its CMD), ``args`` replace its CMD;
* the pod's ServiceAccount kubeconfig (when its token is mounted) read-only, with ``KUBECONFIG``
  pointing at it.

The ``podman run`` client runs in the foreground as the container's process (attached: the
container's output is the container log; SIGTERM is forwarded to the container). When a pod is
deleted the kubelet also removes every container labelled with the pod's uid. A sandbox killed
with SIGKILL cannot do that: its containers (kept running by podman's conmon) are removed by the
next sandbox that starts with the podman runtime (:meth:`PodmanRuntime.remove_orphans`).
Not emulated: exec probes run on the host, not in the container.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .imagemap import POD_IP_TOKEN, ImageRule, host_path, repo_root
from .podenv import expand

log = logging.getLogger(__name__)

RUNTIME_PODMAN = "podman"
#: Labels on every container the sandbox starts: the pod's uid, the sandbox's process id.
POD_UID_LABEL = "io.elastic-jupyter.sandbox.pod-uid"
SANDBOX_PID_LABEL = "io.elastic-jupyter.sandbox.pid"
#: Where a container finds its pod's ServiceAccount kubeconfig.
KUBECONFIG_MOUNT = "/var/run/elastic-jupyter-sandbox/kubeconfig"
#: Host-side settings that make no sense inside an image.
_HOST_ONLY_ENV = ("VIRTUAL_ENV", "PATH")


def default_containers_conf() -> Path | None:
    """``$CONTAINERS_CONF``, else the repository's ``images/podman/containers.conf``."""
    configured = os.environ.get("CONTAINERS_CONF")
    if configured:
        return Path(configured)
    path = repo_root() / "images" / "podman" / "containers.conf"
    return path if path.is_file() else None


@dataclass
class PodmanRuntime:
    """How the kubelet reaches podman, and which images its local store holds."""

    podman: str = "podman"
    containers_conf: Path | None = field(default_factory=default_containers_conf)
    _exists: dict[str, bool] = field(default_factory=dict)

    def available(self) -> bool:
        return shutil.which(self.podman) is not None

    def client_env(self) -> dict[str, str]:
        env = {"PATH": os.pathsep.join(host_path())}
        if self.containers_conf is not None:
            env["CONTAINERS_CONF"] = str(self.containers_conf)
        return env

    async def _podman(self, *args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            self.podman,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **self.client_env()},
        )
        out, err = await proc.communicate()
        if proc.returncode:
            return proc.returncode, err.decode(errors="replace")
        return 0, out.decode(errors="replace")

    async def image_exists(self, image: str) -> bool:
        """Whether podman's local store holds ``image`` (a yes is remembered; a no is asked
        again, since the image may be built while the sandbox runs)."""
        if not self._exists.get(image):
            code, _ = await self._podman("image", "exists", image)
            self._exists[image] = code == 0
        return self._exists[image]

    async def remove_orphans(self) -> list[str]:
        """Remove containers of sandboxes that are gone (killed before they could clean up)."""
        code, out = await self._podman(
            "ps", "--all", "--format", "json", "--filter", f"label={SANDBOX_PID_LABEL}"
        )
        orphans = []
        for container in json.loads(out or "[]") if code == 0 else []:
            pid = str((container.get("Labels") or {}).get(SANDBOX_PID_LABEL) or "")
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                orphans.append(str(container.get("Id")))
        if orphans:
            code, out = await self._podman("rm", "--force", "--time", "0", *orphans)
            log.warning("removed %d containers left by a sandbox that is gone", len(orphans))
        return orphans

    async def remove_pod(self, pod_uid: str) -> None:
        """Remove every container of a pod (at once: the kubelet's grace period is over)."""
        code, out = await self._podman(
            "ps", "--all", "--quiet", "--filter", f"label={POD_UID_LABEL}={pod_uid}"
        )
        ids = out.split() if code == 0 else []
        if ids:
            code, out = await self._podman("rm", "--force", "--time", "0", *ids)
            if code != 0:
                log.warning("podman rm of pod %s failed: %s", pod_uid, out.strip())


async def choose_rule(
    runtime: PodmanRuntime | None, image: str, rule: ImageRule | None
) -> ImageRule | None:
    """The rule a container runs by: a podman rule when its image is local (see the docstring).

    ``rule`` is what the image map chose (None: nothing matched). Without a podman runtime the
    map's choice stands; a map entry asking for podman then fails as an unpullable image would.
    """
    if rule is not None and rule.runtime == RUNTIME_PODMAN:
        return rule if runtime is not None else None
    if runtime is None or not image or not await runtime.image_exists(image):
        return rule
    base = rule or ImageRule(f"podman:{image}", ())
    env = {k: v for k, v in base.env.items() if k not in _HOST_ONLY_ENV}
    return replace(base, runtime=RUNTIME_PODMAN, image=image, path=(), env=env)


@dataclass(frozen=True)
class Launch:
    """A ``podman run`` command line for one container run and the environment it needs."""

    argv: list[str]
    env: dict[str, str]


def podman_run(
    runtime: PodmanRuntime,
    *,
    name: str,
    pod_uid: str,
    pod_ip: str,
    spec: Mapping[str, Any],
    rule: ImageRule,
    declared: list[tuple[str, str]],
    markers: Mapping[str, str],
    mounts: Mapping[str, str],
    user: tuple[int | None, int | None, list[int]],
    kubeconfig: Path | None,
) -> Launch:
    """Build the ``podman run`` for a container ``spec`` (see the module docstring).

    ``mounts`` maps each ``mountPath`` to its local directory, ``user`` is (uid, gid, groups)
    from the pod's security context, ``markers`` the :mod:`.processes` marker variables.
    """
    image = rule.image or str(spec.get("image") or "")
    env: dict[str, str] = {}
    env.update(
        {
            k: v.replace(POD_IP_TOKEN, pod_ip)
            for k, v in rule.env.items()
            if k not in _HOST_ONLY_ENV  # e.g. the kernel rule's VIRTUAL_ENV, a host path
        }
    )
    env.update(markers)
    if kubeconfig is not None:
        env["KUBECONFIG"] = KUBECONFIG_MOUNT
    declared_map = dict(declared)
    env.update(declared_map)
    argv = [
        runtime.podman,
        "run",
        "--rm",
        "--name",
        name,
        "--pull=never",
        "--network=host",
        f"--label={POD_UID_LABEL}={pod_uid}",
        f"--label={SANDBOX_PID_LABEL}={os.getpid()}",
    ]
    uid, gid, groups = user
    if uid is not None:
        argv.append(f"--user={uid}:{gid if gid is not None else 0}")
    elif gid is not None:
        argv.append(f"--group-add={gid}")
    argv += [f"--group-add={g}" for g in groups]
    read_only = {
        str(m.get("mountPath") or ""): bool(m.get("readOnly"))
        for m in spec.get("volumeMounts") or []
    }
    for mount_path, local in sorted(mounts.items()):
        suffix = ":ro" if read_only.get(mount_path) else ""
        argv.append(f"--volume={local}:{mount_path}{suffix}")
    if kubeconfig is not None:
        argv.append(f"--volume={kubeconfig}:{KUBECONFIG_MOUNT}:ro")
    if spec.get("workingDir"):
        argv.append(f"--workdir={spec['workingDir']}")
    # Values travel in podman's own environment: `-e NAME` copies them from there.
    argv += [f"--env={key}" for key in env]
    command = spec.get("command")
    args = spec.get("args")
    if command:
        words = [expand(str(w), declared_map) for w in command]
        argv.append(f"--entrypoint={json.dumps(words)}")
    argv.append(image)
    if args is not None:
        argv += [expand(str(w), declared_map) for w in args]
    return Launch(argv=argv, env={**runtime.client_env(), **env})


def container_name(pod_uid: str, container: str, restart: int) -> str:
    """A podman container name unique to one run of one container of one pod."""
    return f"sandbox-{pod_uid[:13]}-{container}-{restart}"


__all__ = [
    "RUNTIME_PODMAN",
    "Launch",
    "PodmanRuntime",
    "choose_rule",
    "container_name",
    "podman_run",
]
