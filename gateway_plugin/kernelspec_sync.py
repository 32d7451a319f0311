"""Kernelspec hot reload: serve the namespace's kernelspec ConfigMaps from the running gateway.

The operator renders every JupyterKernelSpec into a ConfigMap (label
``kubeflow.tkestack.io/kernelspec=<name>``, key ``kernel.json``) and keeps it current. Inside
the gateway pod, :class:`SyncedKernelSpecManager` (Enterprise Gateway's
``kernel_spec_manager_class``, set by the gateway Deployment's args) starts one
:class:`KernelSpecSync` for its application (held by the application's runtime,
:mod:`.gateway_runtime`). It watches

* the kernelspec ConfigMaps of ``EG_NAMESPACE``, and
* its own JupyterGateway ``EG_NAMESPACE/EG_NAME``, for ``spec.kernels`` (the names to serve;
  empty or unset means every kernelspec in the namespace, or the built-in Python kernelspec
  ``python_kubernetes`` when the namespace has none),

and mirrors the selection into ``<dir>/kernels/<name>/kernel.json`` (atomic renames; removed
names are deleted). The manager reads only that directory, and Enterprise Gateway's
KernelSpecCache is off (``EG_KERNELSPEC_CACHE_ENABLED=false``), so jupyter_client lists the
directory on every ``/api/kernelspecs`` request: an add, edit or delete is visible as soon as a
watch event arrives, without restarting the pod.

Both managers here (:class:`KubeflowKernelSpecManager` for kernelspecs on disk, and
:class:`SyncedKernelSpecManager`) are also the plugin's boot hook: Enterprise Gateway constructs
its kernelspec manager first, and their constructor starts the JupyterKernel watch and the
orphan sweep (see :mod:`.gateway_boot`).

Run standalone (debugging, or as a sidecar writing into a shared volume)::

    python -m elastic_jupyter.gateway_plugin.kernelspec_sync --dir /tmp/ks --namespace default \
        --gateway my-gateway
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager
from traitlets import default

from elastic_jupyter import crds

from . import kernelspec_mirror
from .gateway_boot import is_gateway_app
from .gateway_runtime import GatewayRuntime

log = logging.getLogger(__name__)

# The EG-independent mirror, shared with the direct-mode notebook server; its names stay
# importable from here (the gateway's tests and tools use them).
ALLOWED_PROXIES_ENV = kernelspec_mirror.ALLOWED_PROXIES_ENV
KERNEL_JSON = kernelspec_mirror.KERNEL_JSON
LEGACY_DEFAULT_KERNEL = kernelspec_mirror.LEGACY_DEFAULT_KERNEL
KernelSpecSync = kernelspec_mirror.KernelSpecSync
allowed_process_proxies = kernelspec_mirror.allowed_process_proxies
apply_files = kernelspec_mirror.apply_files
builtin_kernel_json = kernelspec_mirror.builtin_kernel_json
default_kernel_name = kernelspec_mirror.default_kernel_name
desired_files = kernelspec_mirror.desired_files
kernel_name = kernelspec_mirror.kernel_name
load_api_client = kernelspec_mirror.load_api_client
owned_by_kernelspec = kernelspec_mirror.owned_by_kernelspec
wanted_kernels = kernelspec_mirror.wanted_kernels

DIR_ENV = crds.ENV_KERNELSPEC_DIR
KERNELS_ENV = "ELASTIC_JUPYTER_KERNELSPECS"  # only when there is no gateway to read
INITIAL_SYNC_TIMEOUT = 10.0
DEFAULT_KERNEL_ENV = "EG_DEFAULT_KERNEL_NAME"

# --- Enterprise Gateway side -----------------------------------------------------------------


def start_kernelspec_sync(env: Mapping[str, str]) -> KernelSpecSync:
    """Start a gateway's kernelspec sync from its environment; wait for the first listing.

    Called once per gateway application, by its runtime
    (:meth:`.gateway_runtime.GatewayRuntime.kernelspec_sync`).
    """
    root = Path(env.get(DIR_ENV) or tempfile.gettempdir())
    root.mkdir(parents=True, exist_ok=True)
    # A private directory per sync: two gateways sharing a filesystem never mix.
    directory = Path(tempfile.mkdtemp(prefix="kernelspecs-", dir=root))
    fixed = [k for k in env.get(KERNELS_ENV, "").split(",") if k]
    sync = KernelSpecSync(
        directory,
        namespace=env.get("EG_NAMESPACE", "default"),
        gateway_name=env.get("EG_NAME") or None,
        api_client=load_api_client(env),
        fixed_kernels=fixed,
        allowed_proxies=allowed_process_proxies(env),
    )
    sync.start()
    if not sync.synced.wait(INITIAL_SYNC_TIMEOUT):
        log.warning("kernelspec sync: no initial listing after %.0f s", INITIAL_SYNC_TIMEOUT)
    return sync


class KubeflowKernelSpecManager(KernelSpecManager):  # type: ignore[misc]
    """jupyter_client's KernelSpecManager that also starts the plugin's gateway services.

    For gateways serving kernelspecs from files (``--EnterpriseGatewayApp.
    kernel_spec_manager_class=elastic_jupyter.gateway_plugin.kernelspec_sync.
    KubeflowKernelSpecManager``). ``EnterpriseGatewayApp.init_configurables`` constructs it
    before anything else, so its constructor is the plugin's boot hook: it starts the
    JupyterKernel watch and the orphan sweep of its application's runtime
    (:meth:`.gateway_runtime.GatewayRuntime.start_services`),
    which then clean up orphans even if no kernel is ever started.
    """

    def __init__(self, **kwargs: Any) -> None:
        """Built by ``EnterpriseGatewayApp.init_configurables`` (``parent`` = the app) before
        any other object of EG's."""
        super().__init__(**kwargs)
        boot_gateway_services(self.parent)


def boot_gateway_services(app: Any) -> bool:
    """Start the watch and orphan sweep of EG's ``app`` (its runtime's); never fail the
    gateway's start.

    Does nothing when ``app`` is not Enterprise Gateway (e.g. ``jupyter kernelspec list``).
    Returns whether the services run; on a failure (bad ``EJ_*`` setting, no credentials) the
    first kernel launch reports the reason to its client instead.
    """
    if not is_gateway_app(app):
        return False
    app_log = getattr(app, "log", None) or log  # EG's own logger is set up this early
    try:
        watch = GatewayRuntime.of(app).start_services()
    except Exception as error:
        app_log.error("elastic-jupyter: gateway services not started at boot: %s", error)
        return False
    app_log.info(
        "elastic-jupyter: JupyterKernel watch (namespaces %s) and orphan sweep started",
        ", ".join(watch.namespaces),
    )
    return True


class SyncedKernelSpecManager(KubeflowKernelSpecManager):
    """A KernelSpecManager reading only the directory kept current by its application's
    :class:`KernelSpecSync` (:meth:`.gateway_runtime.GatewayRuntime.kernelspec_sync`).

    The operator's gateway Deployment selects it; like its base class it also starts the
    plugin's gateway services at boot.
    """

    @default("kernel_dirs")
    def _kernel_dirs_default(self) -> list[str]:
        """Read by traitlets on first use of ``kernel_dirs`` (jupyter_client's listing)."""
        return [str(GatewayRuntime.of(self).kernelspec_sync().kernels_dir)]

    @default("ensure_native_kernel")
    def _ensure_native_kernel_default(self) -> bool:
        return False  # serve exactly the synchronised kernelspecs, never a local python3

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        kernelspec_mirror.follow_default_soon(self.find_kernel_specs)

    def find_kernel_specs(self) -> dict[str, str]:
        """The synchronised kernelspecs; also keeps EG's default kernel name current."""
        specs: dict[str, str] = super().find_kernel_specs()
        self._update_default(sorted(specs))
        return specs

    def _kernel_manager(self) -> Any:
        """EG's kernel manager (``None`` until EG has created it)."""
        return getattr(self.parent, "kernel_manager", None)

    def _update_default(self, served: list[str]) -> None:
        """Without ``spec.defaultKernel`` (``EG_DEFAULT_KERNEL_NAME``), follow the served set."""
        if GatewayRuntime.of(self).env.get(DEFAULT_KERNEL_ENV):
            return
        manager = self._kernel_manager()
        name = default_kernel_name(served)
        if manager is not None and name and manager.default_kernel_name != name:
            manager.default_kernel_name = name


# --- Standalone ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True, help="writes <dir>/kernels/<name>/")
    parser.add_argument("--namespace", default=os.environ.get("EG_NAMESPACE", "default"))
    parser.add_argument("--gateway", default=os.environ.get("EG_NAME"), help="JupyterGateway")
    parser.add_argument("--kernels", default="", help="comma-separated names without --gateway")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    sync = KernelSpecSync(
        args.dir,
        namespace=args.namespace,
        gateway_name=args.gateway,
        api_client=load_api_client(),
        fixed_kernels=[k for k in args.kernels.split(",") if k],
    )
    sync.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sync.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
