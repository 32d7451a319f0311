"""``KubeflowProcessProxy``: Enterprise Gateway 3.3 runs each kernel as a JupyterKernel.

Kernelspecs select it with::

    "metadata": {"process_proxy": {
        "class_name": "elastic_jupyter.gateway_plugin.KubeflowProcessProxy",
        "config": {"image_name": "elastic-jupyter/kernel-py:dev"}}}

and an argv starting with ``kubeflow-launcher`` (see :mod:`.launcher_cli`; EG's own
``launch_kubernetes.py`` argv is read the same way). Any other argv is taken as the kernel's own
command: it runs inside the pod, handed to the in-pod launcher as ``KERNEL_ARGV``.

``process_proxy.config`` keys: ``image_name`` (kernel image), ``kernel_template_name`` and
``kernel_template_namespace`` (or ``kernel_template: "[namespace/]name"``; the argv's
``--kernel-template-name`` wins), ``resources`` (container requests/limits that the client's
``KERNEL_CPUS``/``KERNEL_MEMORY``/``KERNEL_GPUS`` override) and EG's own ``port_range``,
``authorized_users``, ``unauthorized_users``. Gateway-wide settings: :mod:`.settings`.

The class derives from EG's ``ContainerProcessProxy`` (not ``KubernetesProcessProxy``, whose
module loads in-cluster credentials at import time) and overrides a small surface. Each method
says which Enterprise Gateway / jupyter_client code calls it and when:

* :meth:`launch_process` - ``RemoteKernelManager._launch_kernel`` on every start and restart;
* :meth:`confirm_remote_startup` - our :meth:`launch_process`, until connection info arrives;
* :meth:`poll` - jupyter_client's restarter (every ~3 s), shutdown waits (every 0.1 s), EG's
  culler and status handlers, ``start_kernel_from_session`` after a gateway restart;
* :meth:`kill`, :meth:`terminate`, :meth:`terminate_container_resources` - shutdown, restart,
  launch failure and ``shutdown_listener``;
* :meth:`get_process_info` / :meth:`load_process_info` - kernel session persistence.

EG instantiates the proxy itself (the class named in kernel.json) with the kernel's
``RemoteKernelManager``, whose traitlets parents are EG's kernel manager and application; the
proxy finds its application's :class:`~.gateway_runtime.GatewayRuntime` through them and takes
its settings, API client, JupyterKernel watch, client owners and background tasks from there.
The kernelspec managers of :mod:`.kernelspec_sync` start the watch and the orphan sweep at
gateway boot; the proxy starts them itself otherwise.

Interrupts go through EG's ``RemoteProcessProxy.send_signal`` once the launcher reports its comm
port; :meth:`_send_listener_request` signs every comm-port request with the kernel's connection
key (``kernel_launcher/comm_auth.py``), which the launcher requires, and sends it with
:func:`.comm_port.send`, the kernel provisioner's sender too.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from typing import Any

from enterprise_gateway.services.processproxies import container as eg_container
from enterprise_gateway.services.processproxies import processproxy as eg_processproxy
from enterprise_gateway.services.processproxies.container import ContainerProcessProxy
from enterprise_gateway.services.processproxies.processproxy import RemoteProcessProxy
from tornado import web

from elastic_jupyter import crds

from . import client_auth, comm_port, kernel_secret, launcher_cli, session_record, warm_pool
from .adoption import responsible
from .gateway_runtime import GatewayRuntime
from .kernel_resource import KernelRequestError, LaunchInput
from .kernel_watch import KernelStatus, KernelWatch, StartJudge, describe_failure
from .kube import ApiError, KubeApi
from .launcher import create_kernel, delete_kernel
from .settings import SettingsError

__all__ = ["KubeflowProcessProxy", "raise_http"]

#: Longest wait between two attempts to delete a JupyterKernel (the API server is failing).
DELETE_RETRY_MAX_SECONDS = 10.0


def _http_reason(text: str) -> str:
    """Make ``text`` a valid HTTP reason phrase (tornado drops invalid ones as 'Unknown')."""
    line = re.sub(r"[\x00-\x1f\x7f]+", " ", text).replace("<", "(").replace(">", ")")
    return line.encode("latin-1", "replace").decode("latin-1")[:1000]


class KubeflowProcessProxy(ContainerProcessProxy):  # type: ignore[misc]
    """Runs an Enterprise Gateway kernel as a JupyterKernel custom resource."""

    # Set by EG's base classes; declared for the type checker.
    assigned_host: str
    assigned_ip: str | None
    assigned_node_ip: str | None
    container_name: str | None

    def __init__(self, kernel_manager: Any, proxy_config: dict[str, Any]) -> None:
        """Called by ``RemoteKernelManager._get_process_proxy`` (and session revival) with
        the kernel's ``RemoteKernelManager``."""
        #: The plugin's state of the application this kernel belongs to.
        self.runtime = GatewayRuntime.of(kernel_manager)
        super().__init__(kernel_manager, proxy_config)
        self.kernel_resource_name: str | None = None
        self.kernel_namespace: str | None = None
        self.kernel_resource_uid = ""
        self.kernel_image: str | None = None
        self._delete_requested = False
        self._launch_started = 0.0
        try:
            self.settings = self.runtime.settings
        except SettingsError as err:
            self.log_and_raise(http_status_code=500, reason=_http_reason(str(err)))
        self.runtime.live.add(self)

    # --- plumbing -------------------------------------------------------------------------

    @property
    def api(self) -> KubeApi:
        """The application's Kubernetes client (its runtime's)."""
        return self.runtime.api

    @property
    def watch(self) -> KernelWatch:
        """The application's kernel watch; starts it and the orphan sweep if the boot hook
        (:mod:`.gateway_boot`) has not (blocking only the first time)."""
        return self.runtime.start_services()

    def _fail(self, status: int, message: str) -> None:
        raise_http(self.log, status, message)

    # --- launch ---------------------------------------------------------------------------

    def _client_env(self) -> dict[str, str]:
        """The env the client sent with its start request (what the policy judges)."""
        km = self.kernel_manager
        overrides = dict(getattr(km, "user_overrides", None) or {})
        inherited = set(getattr(km, "inherited_envs", None) or ())
        return {
            k: v for k, v in overrides.items() if not (k in inherited and os.environ.get(k) == v)
        }

    def _launch_input(self, kernel_cmd: list[str], env: dict[str, str]) -> LaunchInput:
        km = self.kernel_manager
        image_name = self.proxy_config.get("image_name") or eg_container.default_kernel_image
        namespace = self.settings.gateway_namespace
        defaults = launcher_cli.ArgvLaunch(
            response_address=self.response_manager.response_address,
            public_key=self.response_manager.public_key,
            port_range=str(km.port_range),
            template=launcher_cli.config_template(self.proxy_config, namespace),
        )
        launch = launcher_cli.read_kernelspec_argv(
            [str(a) for a in kernel_cmd],
            self.kernel_id,
            defaults,
            namespace,
            connection_file=str(getattr(km, "connection_file", "") or ""),
        )
        kernelspec = km.kernel_spec
        resources = self.proxy_config.get("resources")
        return LaunchInput(
            kernel_id=self.kernel_id,
            kernelspec_name=str(km.kernel_name),
            response_address=launch.response_address,
            public_key=launch.public_key,
            port_range=launch.port_range,
            env=env,
            client_env=self._client_env(),
            kernelspec_env_names=tuple((kernelspec.env or {}).keys()),
            kernelspec_language=str(kernelspec.language or ""),
            image_name=str(image_name) if image_name else None,
            template=launch.template,
            kernel_argv=launch.kernel_argv,
            spark_context_init_mode=launch.spark_context_init_mode,
            resources=resources if isinstance(resources, dict) else None,
            owner=self.runtime.clients.record_owner(
                self.kernel_id, client_auth.CURRENT_CLIENT.get()
            ),
        )

    async def launch_process(self, kernel_cmd: list[str], **kwargs: Any) -> KubeflowProcessProxy:
        """Create the kernel's JupyterKernel and wait until the kernel reports back.

        Called by ``RemoteKernelManager._launch_kernel`` for every start and restart, with the
        argv EG formatted from the kernelspec and ``env`` it prepared. Runs EG's common launch
        steps (user authorization, ``KERNEL_UID``/``GID`` checks, ``KERNEL_ID`` and
        ``KERNEL_LANGUAGE``), then the launcher in-process: no subprocess, and the API calls
        run on a thread pool so the gateway's loop stays free.
        """
        self._launch_started = time.perf_counter()
        env = kwargs.get("env")
        if env is None:
            env = dict(os.environ)
            kwargs["env"] = env
        image_name = self.proxy_config.get("image_name") or eg_container.default_kernel_image
        self.kernel_image = env.get("KERNEL_IMAGE") or image_name
        if self.kernel_image:
            env["KERNEL_IMAGE"] = self.kernel_image
        if not eg_container.mirror_working_dirs:
            env.pop("KERNEL_WORKING_DIR", None)
        self._enforce_prohibited_ids(**kwargs)
        # Only this kernel's pod gets the token (its Secret); its answer must carry it. Expected
        # before EG registers the kernel id, so no forged answer can slip in between.
        kernel_secret.install()
        token = kernel_secret.new_launch_token()
        kernel_secret.expect(self.kernel_id, token, self.response_manager)
        await RemoteProcessProxy.launch_process(self, kernel_cmd, **kwargs)

        runtime = self.runtime
        if not runtime.api_loaded:  # the first launch loads credentials off the loop
            await asyncio.get_running_loop().run_in_executor(None, lambda: runtime.api)
        try:
            inp = self._launch_input(list(kernel_cmd), env)
            watch = self.watch
            if await warm_pool.start_warm(self, inp, token):  # a kernelspec with a warm pool
                return self
            created = await self.api.run(
                create_kernel, self.api, self.settings, inp, token, runtime.gateway_ref
            )
        except KernelRequestError as err:
            self._fail(err.status, err.message)
            raise  # unreachable: _fail raises
        except ApiError as err:
            self._fail(503, f"Kernel {self.kernel_id} could not start: Kubernetes API: {err}")
            raise
        plan = created.plan
        watch.ensure_namespace(plan.namespace)
        self.kernel_resource_name = plan.name
        self.kernel_namespace = plan.namespace
        self.kernel_resource_uid = created.uid
        self.container_name = plan.name
        total_ms = (time.perf_counter() - self._launch_started) * 1000
        self.log.info(
            "KubeflowProcessProxy: created JupyterKernel %s/%s for kernel %s in %.1f ms "
            "(template+gateway %.1f ms, build %.1f ms, create %.1f ms)",
            plan.namespace,
            plan.name,
            self.kernel_id,
            total_ms,
            created.template_ms,
            created.build_ms,
            created.create_ms,
        )
        await self.confirm_remote_startup(watch)
        return self

    def _response_event(self) -> asyncio.Event | None:
        """The ResponseManager's event for this kernel (EG 3.x keeps one per registered id)."""
        registry = getattr(self.response_manager, "_response_registry", None)
        event = registry.get(self.kernel_id) if isinstance(registry, dict) else None
        return event if isinstance(event, asyncio.Event) else None

    async def confirm_remote_startup(self, watch: KernelWatch | None = None) -> None:
        """Wait for the kernel to run and send its connection info; fail fast on a dead end.

        Called by :meth:`launch_process`. Instead of EG's 0.5 s poll loop it sleeps until the
        JupyterKernel watch reports a change or the ResponseManager receives the connection
        info, then uses EG's own ``receive_connection_info``. Fails (and deletes the
        JupyterKernel) on a failure reason, on Unschedulable beyond the grace period, and on
        EG's launch timeout.
        """
        watch = watch or self.watch
        namespace, name = self.kernel_namespace or "", self.kernel_resource_name or ""
        self.start_time = RemoteProcessProxy.get_current_time()
        started = time.monotonic()
        deadline = started + float(self.kernel_launch_timeout)
        wake = asyncio.Event()
        watch.subscribe(namespace, name, wake)
        response = self._response_event()
        response_wait = asyncio.ensure_future(response.wait()) if response else None
        judge = StartJudge(self.settings.unschedulable_grace)
        try:
            while True:
                wake.clear()
                now = time.monotonic()
                status = watch.get(namespace, name)
                failure = judge.judge(status, watch.was_deleted(namespace, name), now)
                if failure is not None:
                    await self._fail_launch(*failure)
                if status is not None and status.running and not self.assigned_host:
                    self.log.debug(
                        "Kernel %s: JupyterKernel Running at %s, %.1f ms after launch "
                        "(connection info %s)",
                        self.kernel_id,
                        status.pod_ip,
                        (time.perf_counter() - self._launch_started) * 1000,
                        "received" if response and response.is_set() else "not yet here",
                    )
                    self.assigned_ip = status.pod_ip
                    self.assigned_host = status.pod_name or name
                    self.assigned_node_ip = status.host_ip or None
                ready = self.assigned_host and (response is None or response.is_set())
                if ready and await self.receive_connection_info():
                    self.pid = 0  # signals go through the comm port, never to a local pid
                    self.pgid = 0
                    self.log.info(
                        "KubeflowProcessProxy: kernel %s is running in %s/%s at %s "
                        "(%.2f s after launch)",
                        self.kernel_id,
                        namespace,
                        name,
                        self.assigned_ip,
                        time.perf_counter() - self._launch_started,
                    )
                    return
                remaining = deadline - now
                if remaining <= 0:
                    await self._fail_launch(
                        *judge.timed_out(self.kernel_launch_timeout, namespace, name)
                    )
                timeout = remaining
                if judge.unschedulable_since is not None:
                    timeout = min(timeout, 0.5)
                if response is None and self.assigned_host:
                    timeout = min(timeout, 0.05)
                waits: set[asyncio.Future[Any]] = {asyncio.ensure_future(wake.wait())}
                if response_wait is not None and not response_wait.done():
                    waits.add(response_wait)
                _, pending = await asyncio.wait(
                    waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                for task in pending:
                    if task is not response_wait:
                        task.cancel()
        finally:
            watch.unsubscribe(namespace, name, wake)
            if response_wait is not None and not response_wait.done():
                response_wait.cancel()

    async def _fail_launch(self, status: int, reason: str, message: str) -> None:
        """Delete the JupyterKernel and fail the start request with the reason."""
        text = describe_failure(self.kernel_id, reason, message)
        namespace, name = self.kernel_namespace, self.kernel_resource_name
        if namespace and name and not self._delete_requested:
            self._delete_requested = True
            try:
                await self.api.run(delete_kernel, self.api, namespace, name)
            except ApiError as err:
                self.log.warning("Could not delete JupyterKernel %s/%s: %s", namespace, name, err)
        self._fail(status, text)

    # --- comm port ------------------------------------------------------------------------

    def _send_listener_request(
        self, request: dict[str, Any], shutdown_socket: bool = False
    ) -> None:
        """Send ``request`` to the launcher's comm port, signed with the connection key.

        Called by EG's ``send_signal`` (interrupts) and ``shutdown_listener``. The key came
        with the RSA-encrypted connection info; only this gateway and the kernel's launcher
        know it, so nobody else can signal or stop the kernel.
        """
        key = getattr(getattr(self.kernel_manager, "session", None), "key", b"") or b""
        if not self.comm_port or self.comm_port <= 0:
            self.log.debug("Kernel %s: no comm port, %s not sent", self.kernel_id, request)
            return
        # The same sender as the kernel provisioner's (direct mode), with EG's connect timeout;
        # every request ends with EOF (EG half-closes only shutdowns: the listener reads to EOF
        # either way).
        comm_port.send(
            self.comm_ip, int(self.comm_port), request, key, timeout=eg_processproxy.socket_timeout
        )

    # --- state ----------------------------------------------------------------------------

    def get_initial_states(self) -> set[str]:
        """Lower-case JupyterKernel phases of a starting or live kernel (EG's contract)."""
        return {"", "pending", "pooled", "running"}

    def get_error_states(self) -> set[str]:
        """Lower-case JupyterKernel phases that end a kernel (EG's contract)."""
        return {"failed", "succeeded"}

    def _status(self) -> KernelStatus | None:
        """The JupyterKernel's status from the watch cache; never an API call (poll() runs on
        EG's loop). Until its namespace is listed the kernel counts as alive (phase unknown):
        nothing is restarted or deleted on a guess."""
        namespace, name = self.kernel_namespace, self.kernel_resource_name
        if not namespace or not name:
            return None
        watch = self.watch
        watch.ensure_namespace(namespace)
        if not watch.is_synced(namespace):
            return KernelStatus(name=name, namespace=namespace, kernel_id=self.kernel_id)
        return watch.get(namespace, name)

    def _ended_elsewhere(self) -> bool:
        """Whether another replica (or the operator) deleted this kernel's JupyterKernel while
        a kernel sync (:mod:`.adoption`) runs here to forget it - not a death to restart."""
        if not self.kernel_resource_name or self._delete_requested:
            return False
        sessions = getattr(self.runtime.app, "kernel_session_manager", None)
        if getattr(sessions, "sync", None) is None:
            return False
        return self.watch.was_deleted(self.kernel_namespace or "", self.kernel_resource_name)

    def get_container_status(self, iteration: int | None) -> str:
        """The JupyterKernel's phase in lower case ('' when unknown), from the watch cache."""
        status = self._status()
        return status.phase.lower() if status else ""

    def poll(self) -> bool | None:
        """``None`` while the kernel's JupyterKernel is Pending/Running, else ``False``.

        Called by jupyter_client's restarter about every 3 s, by shutdown waits every 0.1 s,
        by EG's culler and ``start_kernel_from_session``. Reads the watch cache: no API request
        (one GET only if the watch has not loaded a few seconds after a gateway start). A
        JupyterKernel being deleted counts as alive until it is gone, so shutdown waits
        confirm that it went away.
        """
        status = self._status()
        if status is None:
            if self._ended_elsewhere():
                return None  # ended through another replica: the kernel sync forgets it here
            return False
        if status.phase in ("", crds.PHASE_PENDING, crds.PHASE_POOLED, crds.PHASE_RUNNING):
            return None  # Pooled: a claimed pool kernel until the operator says Running
        if not responsible(status.owner, self.runtime.replica):
            return None  # its owner replica restarts it (once); this one re-adopts the new pod
        return False

    # --- termination ----------------------------------------------------------------------

    def _request_delete(self, grace_seconds: int | None) -> None:
        """Delete the JupyterKernel on the API thread pool; 404 counts as success."""
        namespace, name = self.kernel_namespace, self.kernel_resource_name
        if not namespace or not name or self._delete_requested:
            return
        self._delete_requested = True
        log = self.log
        kernel_id = self.kernel_id

        def run() -> None:
            # Retried until it succeeds (404 included): a kernel left behind keeps its pod and
            # maybe a GPU. Never raises (EG #1136).
            delay = 0.5
            while True:
                try:
                    found = delete_kernel(self.api, namespace, name, grace_seconds)
                    log.info(
                        "KubeflowProcessProxy: %s JupyterKernel %s/%s of kernel %s",
                        "deleted" if found else "already gone:",
                        namespace,
                        name,
                        kernel_id,
                    )
                    return
                except Exception as err:
                    log.warning(
                        "Could not delete JupyterKernel %s/%s: %s; retrying in %.1fs",
                        namespace,
                        name,
                        err,
                        delay,
                    )
                time.sleep(delay)
                delay = min(delay * 2, DELETE_RETRY_MAX_SECONDS)

        self.runtime.background(run)

    def kill(self) -> None:
        """Delete the JupyterKernel now (grace 0).

        Called through ``send_signal(SIGKILL)`` by jupyter_client's ``_kill_kernel`` (shutdown
        with ``now``, restart, a shutdown that took too long) and by EG on launch timeouts.
        jupyter_client then waits on :meth:`poll` until the object is gone.
        """
        self._request_delete(0)

    def terminate(self) -> None:
        """Delete the JupyterKernel with the pod's own grace period.

        Called by jupyter_client's ``finish_shutdown`` when the kernel did not exit after its
        shutdown request.
        """
        self._request_delete(None)

    def terminate_container_resources(self) -> None:
        """Delete the JupyterKernel; called by ``shutdown_listener`` right after the kernel's
        shutdown request, so the pod goes away as soon as the kernel does."""
        self._request_delete(0)

    def cleanup(self) -> None:
        """Called by ``RemoteKernelManager.cleanup_resources`` after shutdown or before restart."""
        self._request_delete(0)
        self.runtime.live.discard(self)
        kernel_secret.forget(self.kernel_id, getattr(self, "response_manager", None))
        super().cleanup()

    # --- persistence ----------------------------------------------------------------------

    def get_process_info(self) -> dict[str, Any]:
        """Called by EG's kernel session manager after start and restart: what to persist."""
        info: dict[str, Any] = super().get_process_info()
        info.update(
            {
                "kernel_ns": self.kernel_namespace,
                "delete_ns": False,
                "owner": self.runtime.clients.owners.get(self.kernel_id),
                session_record.KERNEL_RESOURCE_KEY: session_record.kernel_resource_record(
                    self.kernel_namespace, self.kernel_resource_name, self.kernel_resource_uid
                ),
            }
        )
        return info

    def load_process_info(self, process_info: dict[str, Any]) -> None:
        """Called by ``start_kernel_from_session`` when a restarted gateway revives a kernel."""
        super().load_process_info(process_info)
        self.runtime.clients.record_owner(self.kernel_id, process_info.get("owner"))
        resource = process_info.get(session_record.KERNEL_RESOURCE_KEY) or {}
        if (resource.get("group"), resource.get("plural")) != (
            crds.GROUP,
            crds.JUPYTER_KERNEL.plural,
        ):
            self.log.warning("Kernel %s: session holds no JupyterKernel identity", self.kernel_id)
            return
        namespace, self.kernel_resource_name, self.kernel_resource_uid = (
            session_record.kernel_resource_of(process_info)
        )
        self.kernel_namespace = namespace or process_info.get("kernel_ns")
        self.container_name = self.kernel_resource_name or ""
        if self.kernel_namespace:  # a kernel in a namespace this process never launched in
            self.watch.ensure_namespace(self.kernel_namespace)


def raise_http(log: Any, status: int, message: str) -> None:
    """Log ``message`` and raise it as the HTTP error the notebook user sees."""
    log.error(message)
    reason = _http_reason(message)
    raise web.HTTPError(status, reason if "%" not in reason else None, reason=reason)
