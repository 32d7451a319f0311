"""``KubeflowProvisioner``: a jupyter_client kernel provisioner running each kernel as a
JupyterKernel, over the gateway plugin's core (no Enterprise Gateway).

Selected by a kernelspec's ``metadata.kernel_provisioner`` (entry point
``kubeflow-provisioner``); ``config`` takes the keys of ``metadata.process_proxy.config``
(``image_name``, ``kernel_template_name``/``kernel_template_namespace`` or
``kernel_template: "[namespace/]name"``, ``resources``, ``port_range``). The argv is the seed's
``kubeflow-launcher --RemoteProcessProxy.kernel-id {kernel_id} ...`` (or ``python -m
elastic_jupyter.gateway_plugin.launcher_cli ...``), parsed by the gateway's parser; any other
argv is the kernel's own command, run in the pod (``KERNEL_ARGV``).

jupyter_client calls, per kernel (``KernelManager``):

* :meth:`pre_launch` (start and restart): fills ``{kernel_id}``, ``{response_address}``,
  ``{public_key}``, ``{port_range}`` in the argv; starts the response address on first use;
* :meth:`launch_kernel`: plans (the gateway's tenant rules), creates the JupyterKernel and its
  Secret (launch token), waits on the watch and the response address; a failure reason ends
  the start at once with a readable message (``POST /api/sessions`` returns it);
* :meth:`poll` (restarter every ~3 s, culler, shutdown waits): the watch cache, no API call;
* :meth:`send_signal` (interrupts): a signed request to the launcher's comm port;
* :meth:`shutdown_requested`, :meth:`kill`, :meth:`terminate`, :meth:`cleanup`: delete the
  JupyterKernel (its pod and Secret go with it, owner references); a restart is ``cleanup``
  then a new launch (a new JupyterKernel name);
* :meth:`get_provisioner_info`/:meth:`load_provisioner_info`: the JupyterKernel's identity, so
  :mod:`.server` rebuilds a kernel manager after a notebook-server restart.
"""

from __future__ import annotations

import asyncio
import getpass
import signal
import time
from typing import Any

from jupyter_client.provisioning.provisioner_base import KernelProvisionerBase
from tornado import web

from elastic_jupyter.gateway_plugin import comm_port, kernel_secret, launcher_cli, session_record
from elastic_jupyter.gateway_plugin.kernel_resource import KernelRequestError, LaunchInput
from elastic_jupyter.gateway_plugin.kernel_watch import KernelStatus, StartJudge, describe_failure
from elastic_jupyter.gateway_plugin.kube import ApiError
from elastic_jupyter.gateway_plugin.launcher import create_kernel, delete_kernel
from elastic_jupyter.gateway_plugin.response_listener import ResponseListener
from elastic_jupyter.gateway_plugin.settings import SettingsError

from . import sessions
from .launch_args import client_env, format_argv
from .runtime import DirectRuntime

__all__ = ["KubeflowProvisioner", "client_env", "format_argv", "launch_error"]

#: Keys jupyter_client's factory passes that are not the kernelspec's ``config``.
_OWN_KWARGS = frozenset({"kernel_id", "kernel_spec", "parent", "config", "log", "connection_info"})
#: jupyter_client's exit code when a kernel's JupyterKernel is gone or ended.
ENDED = 1


def launch_error(status: int, message: str) -> web.HTTPError:
    """The error jupyter_server returns: ``POST /api/kernels`` answers ``status`` with
    ``message``; ``POST /api/sessions`` wraps it as ``HTTP <status>: <phrase> (<message>)``
    (so no custom reason phrase: it would be shown twice)."""
    return web.HTTPError(status, message.replace("%", "%%"))


class KubeflowProvisioner(KernelProvisionerBase):  # type: ignore[misc]
    """Runs a jupyter_client kernel as a JupyterKernel (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        #: ``metadata.kernel_provisioner.config`` of the kernelspec (the process proxy's keys).
        self.provisioner_config: dict[str, Any] = {
            k: kwargs.pop(k) for k in list(kwargs) if k not in _OWN_KWARGS
        }
        super().__init__(**kwargs)
        self.kernel_namespace = ""
        self.kernel_resource_name = ""
        self.kernel_resource_uid = ""
        self.comm_ip = ""
        self.comm_port = 0
        self._delete_requested = False
        #: jupyter_server's session of this kernel (set by the server's kernel manager),
        #: written onto each new JupyterKernel of a restart too.
        self.notebook_session: dict[str, Any] | None = None

    @property
    def runtime(self) -> DirectRuntime:
        """The notebook server's runtime (settings read on first use: see :meth:`pre_launch`)."""
        return DirectRuntime.current()

    # --- state ----------------------------------------------------------------------------

    @property
    def has_process(self) -> bool:
        return bool(self.kernel_resource_name)

    def _status(self) -> KernelStatus | None:
        """The JupyterKernel's status from the watch cache (no API call). Until its namespace
        is listed the kernel counts as alive: nothing is restarted on a guess."""
        if not self.kernel_resource_name:
            return None
        watch = self.runtime.watch
        watch.ensure_namespace(self.kernel_namespace)
        if not watch.is_synced(self.kernel_namespace):
            return KernelStatus(
                name=self.kernel_resource_name,
                namespace=self.kernel_namespace,
                kernel_id=str(self.kernel_id),
            )
        return watch.get(self.kernel_namespace, self.kernel_resource_name)

    async def poll(self) -> int | None:
        """``None`` while the JupyterKernel is Pending/Running, else an exit code."""
        status = self._status()
        if status is None or not status.alive:
            if status is not None and status.exit_code is not None:
                return status.exit_code
            return ENDED
        return None

    async def wait(self) -> int | None:
        """Wait until the kernel ended (its JupyterKernel gone or ended)."""
        while True:
            code = await self.poll()
            if code is not None:
                return code
            await asyncio.sleep(0.1)

    # --- launch ---------------------------------------------------------------------------

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        """Start the response address (first launch) and fill the argv's placeholders."""
        try:
            listener = await self.runtime.listener()
        except SettingsError as err:  # a bad EJ_*/EG_* value: the message names it
            raise launch_error(500, f"Kernel {self.kernel_id} could not start: {err}") from None
        except ApiError as err:
            raise launch_error(503, f"Kernel {self.kernel_id} could not start: {err}") from None
        except OSError as err:  # e.g. another server holds the port on this host
            port = self.runtime.settings.response_port
            raise launch_error(
                503,
                f"Kernel {self.kernel_id} could not start: cannot listen on the response "
                f"address port {port} ({err}): set EJ_RESPONSE_PORT to a free port (0: any)",
            ) from None
        kwargs.pop("extra_arguments", None)
        port_range = str(self.provisioner_config.get("port_range") or "0..0")
        values = {
            "kernel_id": str(self.kernel_id),
            "response_address": listener.response_address,
            "public_key": listener.public_key,
            "port_range": port_range,
        }
        cmd = format_argv(list(self.kernel_spec.argv), values)
        return dict(await super().pre_launch(cmd=cmd, **kwargs))

    def _launch_input(
        self, cmd: list[str], env: dict[str, str], listener: ResponseListener
    ) -> LaunchInput:
        namespace = self.runtime.settings.policy.gateway_namespace
        defaults = launcher_cli.ArgvLaunch(
            response_address=listener.response_address,
            public_key=listener.public_key,
            port_range=str(self.provisioner_config.get("port_range") or "0..0"),
            template=launcher_cli.config_template(self.provisioner_config, namespace),
        )
        launch = launcher_cli.read_kernelspec_argv(
            cmd,
            str(self.kernel_id),
            defaults,
            namespace,
            connection_file=str(getattr(self.parent, "connection_file", "") or ""),
        )
        spec = self.kernel_spec
        spec_env = dict(spec.env or {})
        image = self.provisioner_config.get("image_name")
        resources = self.provisioner_config.get("resources")
        return LaunchInput(
            kernel_id=str(self.kernel_id),
            kernelspec_name=str(getattr(self.parent, "kernel_name", "") or ""),
            response_address=launch.response_address,
            public_key=launch.public_key,
            port_range=launch.port_range,
            env=env,
            client_env=client_env(env, spec_env),
            kernelspec_env_names=tuple(spec_env),
            kernelspec_language=str(spec.language or ""),
            image_name=str(image) if image else None,
            template=launch.template,
            kernel_argv=launch.kernel_argv,
            resources=resources if isinstance(resources, dict) else None,
        )

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> dict[str, Any]:
        """Create the JupyterKernel and return the connection info the kernel reported."""
        env = {str(k): str(v) for k, v in (kwargs.get("env") or {}).items()}
        if not env.get("KERNEL_USERNAME"):
            env["KERNEL_USERNAME"] = getpass.getuser()
        runtime = self.runtime
        listener = await runtime.listener()
        self._delete_requested = False
        self.kernel_resource_name = ""
        token = kernel_secret.new_launch_token()
        answer = listener.expect(str(self.kernel_id), token)
        started = time.perf_counter()
        try:
            inp = self._launch_input(list(cmd), env, listener)
            notebook = runtime.settings.notebook
            created = await runtime.api.run(
                create_kernel, runtime.api, runtime.settings.policy, inp, token, lambda: notebook
            )
        except KernelRequestError as err:
            listener.forget(str(self.kernel_id))
            self.log.error("Kernel %s could not start: %s", self.kernel_id, err.message)
            raise launch_error(err.status, err.message) from None
        except ApiError as err:
            listener.forget(str(self.kernel_id))
            message = f"Kernel {self.kernel_id} could not start: Kubernetes API: {err}"
            raise launch_error(503, message) from None
        plan = created.plan
        self.kernel_namespace, self.kernel_resource_name = plan.namespace, plan.name
        self.kernel_resource_uid = created.uid
        runtime.watch.ensure_namespace(plan.namespace)
        self.log.info(
            "KubeflowProvisioner: created JupyterKernel %s/%s for kernel %s in %.1f ms",
            plan.namespace,
            plan.name,
            self.kernel_id,
            (time.perf_counter() - started) * 1000,
        )
        try:
            info, status = await self._confirm_startup(answer)
        finally:
            listener.forget(str(self.kernel_id))
        self.connection_info = self._connection_info(info, status)
        await self._save_session()
        self.log.info(
            "KubeflowProvisioner: kernel %s runs in %s/%s at %s (%.2f s)",
            self.kernel_id,
            plan.namespace,
            plan.name,
            status.pod_ip,
            time.perf_counter() - started,
        )
        return dict(self.connection_info)

    async def _confirm_startup(
        self, answer: asyncio.Future[dict[str, Any]]
    ) -> tuple[dict[str, Any], KernelStatus]:
        """Wait for the kernel's answer and a Running status; fail fast on a failure reason."""
        watch = self.runtime.watch
        settings = self.runtime.settings.policy
        namespace, name = self.kernel_namespace, self.kernel_resource_name
        deadline = time.monotonic() + settings.kernel_launch_timeout
        wake = asyncio.Event()
        watch.subscribe(namespace, name, wake)
        judge = StartJudge(settings.unschedulable_grace)
        try:
            while True:
                wake.clear()
                now = time.monotonic()
                status = watch.get(namespace, name) if watch.is_synced(namespace) else None
                failure = judge.judge(status, watch.was_deleted(namespace, name), now)
                if failure is not None:
                    await self._fail(*failure)
                if (
                    status is not None
                    and status.running
                    and answer.done()
                    and not answer.cancelled()
                ):
                    return answer.result(), status
                if now >= deadline:
                    await self._fail(
                        *judge.timed_out(settings.kernel_launch_timeout, namespace, name)
                    )
                timeout = deadline - now
                if judge.unschedulable_since is not None or not watch.is_synced(namespace):
                    timeout = min(timeout, 0.5)
                waits: set[asyncio.Future[Any]] = {asyncio.ensure_future(wake.wait())}
                if not answer.done():
                    waits.add(asyncio.ensure_future(asyncio.shield(answer)))
                _, pending = await asyncio.wait(
                    waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                for task in pending:
                    task.cancel()
        finally:
            watch.unsubscribe(namespace, name, wake)

    async def _fail(self, status: int, reason: str, message: str) -> None:
        """Delete the JupyterKernel and end the start with the reason."""
        text = describe_failure(str(self.kernel_id), reason, message)
        self.log.error("%s", text)
        await self._delete(0)
        self.kernel_resource_name = ""
        raise launch_error(status, text)

    def _connection_info(self, info: dict[str, Any], status: KernelStatus) -> dict[str, Any]:
        """What jupyter_client loads: the kernel's ports at its pod IP, the key as bytes."""
        comm = info.get("comm_port")
        self.comm_ip = status.pod_ip
        self.comm_port = int(str(comm)) if str(comm).isdigit() else 0
        key = info.get("key") or ""
        return {
            "shell_port": int(info["shell_port"]),
            "iopub_port": int(info["iopub_port"]),
            "stdin_port": int(info["stdin_port"]),
            "control_port": int(info["control_port"]),
            "hb_port": int(info["hb_port"]),
            "ip": status.pod_ip,
            "key": key.encode("utf-8") if isinstance(key, str) else key,
            "transport": str(info.get("transport") or "tcp"),
            "signature_scheme": str(info.get("signature_scheme") or "hmac-sha256"),
            "kernel_name": str(info.get("kernel_name") or ""),
        }

    async def _save_session(self) -> None:
        """The connection key into the kernel's Secret, then the session annotation (what a
        restarted notebook server adopts the kernel from)."""
        try:
            await self.runtime.api.run(
                sessions.save_kernel_session,
                self.runtime.api,
                self.kernel_namespace,
                self.kernel_resource_name,
                self.kernel_resource_uid,
                sessions.kernel_session(
                    str(self.kernel_id),
                    str(getattr(self.parent, "kernel_name", "") or ""),
                    self.connection_info,
                    self.identity(),
                ),
                self.notebook_session,
            )
        except ApiError as err:  # the kernel works; only adoption after a restart is lost
            self.log.warning(
                "Kernel %s: could not store its session on %s/%s: %s",
                self.kernel_id,
                self.kernel_namespace,
                self.kernel_resource_name,
                err,
            )

    def identity(self) -> dict[str, Any]:
        """The JupyterKernel's identity and the comm port (persisted with the session)."""
        return {
            session_record.KERNEL_RESOURCE_KEY: session_record.kernel_resource_record(
                self.kernel_namespace, self.kernel_resource_name, self.kernel_resource_uid
            ),
            "comm_ip": self.comm_ip,
            "comm_port": self.comm_port,
        }

    # --- signals and termination ----------------------------------------------------------

    async def send_signal(self, signum: int) -> None:
        """Interrupts (and other signals) go to the launcher's comm port, signed with the
        connection key; SIGKILL deletes the JupyterKernel."""
        if signum == signal.SIGKILL:
            await self.kill()
            return
        if signum == 0 or not self.comm_port or not self.comm_ip:
            return
        key = getattr(getattr(self.parent, "session", None), "key", b"") or b""
        ip, port = self.comm_ip, self.comm_port
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, comm_port.send, ip, port, {"signum": signum}, key)
        except OSError as err:
            self.log.warning("Kernel %s: signal %d not delivered: %s", self.kernel_id, signum, err)

    async def _delete(self, grace_seconds: int | None) -> None:
        namespace, name = self.kernel_namespace, self.kernel_resource_name
        if not namespace or not name or self._delete_requested:
            return
        self._delete_requested = True
        api = self.runtime.api
        delay = 0.5
        for _ in range(8):  # a kernel left behind keeps its pod (and maybe a GPU)
            try:
                await api.run(delete_kernel, api, namespace, name, grace_seconds)
                return
            except ApiError as err:
                self.log.warning("Could not delete JupyterKernel %s/%s: %s", namespace, name, err)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def shutdown_requested(self, restart: bool = False) -> None:
        """After the kernel's shutdown request: delete the JupyterKernel with the pod's grace."""
        await self._delete(None)

    async def kill(self, restart: bool = False) -> None:
        await self._delete(0)

    async def terminate(self, restart: bool = False) -> None:
        await self._delete(None)

    async def cleanup(self, restart: bool = False) -> None:
        """After shutdown or before the restart's new launch: the JupyterKernel goes."""
        await self._delete(0)
        self.kernel_resource_name = ""
        self.comm_port = 0

    # --- persistence ----------------------------------------------------------------------

    async def get_provisioner_info(self) -> dict[str, Any]:
        info: dict[str, Any] = await super().get_provisioner_info()
        info.update(self.identity())
        info["provisioner_config"] = dict(self.provisioner_config)
        return info

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        await super().load_provisioner_info(provisioner_info)
        self.kernel_namespace, self.kernel_resource_name, self.kernel_resource_uid = (
            session_record.kernel_resource_of(provisioner_info)
        )
        self.comm_ip = str(provisioner_info.get("comm_ip") or "")
        self.comm_port = int(str(provisioner_info.get("comm_port") or 0))
        self._delete_requested = False
        if self.kernel_namespace and self.runtime.api_loaded:
            self.runtime.watch.ensure_namespace(self.kernel_namespace)

    def get_shutdown_wait_time(self, recommended: float = 5.0) -> float:
        return recommended

    def get_stable_start_time(self, recommended: float = 10.0) -> float:
        return max(recommended, self.runtime.settings.policy.kernel_launch_timeout)
