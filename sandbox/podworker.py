"""One pod from start to deletion: directories, images, init and app containers as processes.

:class:`PodWorker` is what the kubelet (:mod:`.kubelet`) creates for each pod bound to its node;
its parts live beside it: the pod's state (:mod:`.podstate`), env and volumes
(:mod:`.podvolumes`), probes (:mod:`.podprobes`) and its status (:mod:`.podstatus`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import time
from pathlib import Path

from .clock import now
from .imagemap import POD_IP_TOKEN, ImageRule, host_path, pull_error_message
from .kubeclient import Obj, cancel_tasks
from .podenv import expand, rewrite_path
from .podman_runtime import RUNTIME_PODMAN, choose_rule, container_name, podman_run
from .podprobes import PodProbes
from .podstate import ContainerRun, _kill_group
from .podstatus import PodStatus
from .podvolumes import PodVolumes
from .processes import (
    CONTAINER_MARKER,
    POD_MARKER,
    exec_failure,
    kill_marked,
    spawn,
)
from .runas import find_executable, grant_traverse


class PodWorker(PodStatus, PodProbes, PodVolumes):
    """Runs one pod (by uid) from start to deletion; owned by :class:`Kubelet`."""

    # -- lifecycle --

    def start(self) -> None:
        self._writer = asyncio.create_task(self._status_writer(), name=f"status {self.name}")
        self._main = asyncio.create_task(self._run(), name=f"pod {self.name}")
        deadline = (self.pod.get("spec") or {}).get("activeDeadlineSeconds")
        if deadline is not None:
            self._deadline = asyncio.create_task(self._enforce_deadline(float(deadline)))

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
