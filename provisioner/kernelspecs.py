"""Live kernelspecs for a direct-mode notebook server (jupyter_server 2).

:class:`DirectKernelSpecManager` (``ServerApp.kernel_spec_manager_class``, set by the operator
for a JupyterNotebook with ``spec.kernels``) serves the kernelspecs the operator renders from
the JupyterKernelSpecs of the notebook's namespace, as a gateway does, but for jupyter_client's
kernel provisioners: each kernel.json's ``metadata.process_proxy {class_name, config}`` becomes
``metadata.kernel_provisioner {provisioner_name: kubeflow-provisioner, config}`` (the same
``config`` keys), argv and everything else unchanged. The mirror itself is the gateway's
(:class:`elastic_jupyter.gateway_plugin.kernelspec_mirror.KernelSpecSync`: list + watch of the
kernelspec ConfigMaps, one file per kernel written atomically); jupyter_client lists that
directory on every request, so a JupyterKernelSpec added, edited or deleted shows in
``/api/kernelspecs`` within a watch event, without restarting the server.

Environment (the operator sets it; by hand every variable has a default):

======================================  =====================================================
``ELASTIC_JUPYTER_KERNELSPEC_NAMESPACE``  namespace whose kernelspecs are served; default
                                          ``EJ_NOTEBOOK_NAMESPACE``, else ``EJ_KERNEL_NAMESPACE``,
                                          else the pod's namespace, else ``default``
``ELASTIC_JUPYTER_KERNELSPECS``           comma-separated JupyterKernelSpec names; empty: all
                                          of the namespace (the built-in Python kernelspec
                                          when it has none)
``ELASTIC_JUPYTER_KERNELSPEC_DIR``        where the private mirror directory is made (default
                                          the temporary directory)
``KUBECONFIG``                            credentials; unset inside a pod: its ServiceAccount
======================================  =====================================================

Only kernel.json files naming our process proxy (or the original's name for it) are served: a
kernelspec for another process proxy has no meaning here. The notebook's ServiceAccount needs
``list`` and ``watch`` on ConfigMaps in that namespace (nothing else of this module calls the
API).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager
from traitlets import default

from elastic_jupyter import crds
from elastic_jupyter.gateway_plugin import kernelspec_mirror

log = logging.getLogger(__name__)

PROVISIONER_NAME = "kubeflow-provisioner"
NAMESPACE_ENV = "ELASTIC_JUPYTER_KERNELSPEC_NAMESPACE"
KERNELS_ENV = "ELASTIC_JUPYTER_KERNELSPECS"
DIR_ENV = crds.ENV_KERNELSPEC_DIR
INITIAL_SYNC_TIMEOUT = 10.0
POD_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
#: Process proxies whose config the provisioner takes: ours and the original's name for it.
DIRECT_PROXIES = frozenset({crds.DEFAULT_PROCESS_PROXY_CLASS}) | crds.LEGACY_PROCESS_PROXY_CLASSES


def to_provisioner(name: str, text: str) -> str | None:
    """A gateway kernel.json → the same kernelspec for the kernel provisioner (None: skip)."""
    try:
        document = json.loads(text)
    except ValueError:
        log.warning("kernelspec %s: kernel.json is not JSON; not served", name)
        return None
    if not isinstance(document, dict):
        return None
    metadata = dict(document.get("metadata") or {})
    proxy = metadata.pop("process_proxy", None) or {}
    config = proxy.get("config") if isinstance(proxy, Mapping) else None
    metadata["kernel_provisioner"] = {
        "provisioner_name": PROVISIONER_NAME,
        "config": dict(config or {}),
    }
    document["metadata"] = metadata
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def served_namespace(env: Mapping[str, str]) -> str:
    """The namespace whose kernelspecs are served (see the module's table)."""
    for key in (NAMESPACE_ENV, "EJ_NOTEBOOK_NAMESPACE", crds.ENV_KERNEL_NAMESPACE):
        if env.get(key):
            return env[key]
    try:
        return POD_NAMESPACE_FILE.read_text(encoding="utf-8").strip() or "default"
    except OSError:
        return "default"


def start_mirror(
    env: Mapping[str, str], api_client: Any = None
) -> kernelspec_mirror.KernelSpecSync:
    """Start the kernelspec mirror from ``env`` in a private directory; wait for the first
    listing (a server that answers before it would offer no kernel)."""
    root = Path(env.get(DIR_ENV) or tempfile.gettempdir())
    root.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="kernelspecs-", dir=root))
    sync = kernelspec_mirror.KernelSpecSync(
        directory,
        namespace=served_namespace(env),
        gateway_name=None,
        api_client=api_client if api_client is not None else kernelspec_mirror.load_api_client(env),
        fixed_kernels=[k.strip() for k in env.get(KERNELS_ENV, "").split(",") if k.strip()],
        allowed_proxies=DIRECT_PROXIES,
        transform=to_provisioner,
    )
    sync.start()
    if not sync.synced.wait(INITIAL_SYNC_TIMEOUT):
        log.warning("kernelspec mirror: no initial listing after %.0f s", INITIAL_SYNC_TIMEOUT)
    return sync


class DirectKernelSpecManager(KernelSpecManager):  # type: ignore[misc]
    """jupyter_client's KernelSpecManager over the live mirror of the namespace's kernelspecs.

    One mirror per manager (no process-wide state); it stops with :meth:`stop_mirror`.
    """

    @default("kernel_dirs")
    def _kernel_dirs_default(self) -> list[str]:
        return [str(self.mirror.kernels_dir)]

    @default("ensure_native_kernel")
    def _ensure_native_kernel_default(self) -> bool:
        return False  # exactly the namespace's kernelspecs: never a python3 inside the server

    def __init__(self, **kwargs: Any) -> None:
        self.mirror = start_mirror(os.environ)
        super().__init__(**kwargs)
        kernelspec_mirror.follow_default_soon(self.find_kernel_specs)

    def stop_mirror(self) -> None:
        self.mirror.stop()

    def find_kernel_specs(self) -> dict[str, str]:
        """The mirrored kernelspecs; the server's default kernel follows them."""
        specs: dict[str, str] = super().find_kernel_specs()
        manager = getattr(self.parent, "kernel_manager", None)
        name = kernelspec_mirror.default_kernel_name(sorted(specs))
        if manager is not None and name and manager.default_kernel_name not in specs:
            manager.default_kernel_name = name
        return specs
