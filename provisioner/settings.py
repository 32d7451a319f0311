"""The settings of a direct-mode notebook server, read from its environment (pure functions).

The tenant rules are the gateway's (:class:`~elastic_jupyter.gateway_plugin.settings.
GatewaySettings`, same variables, same meaning); only the owner differs: the JupyterNotebook
whose server runs the provisioner.

=============================  ==========================  ======================================
variable                       default                     meaning
=============================  ==========================  ======================================
``EJ_NOTEBOOK_NAME``           ``jupyter-<os user>``       the owner's name: label
                                                           ``kubeflow.tkestack.io/notebook`` on
                                                           every kernel; adoption at start-up
                                                           takes the kernels carrying it
``EJ_NOTEBOOK_NAMESPACE``      the kubeconfig context's    the owner's namespace (annotation
                               namespace, else ``default``  ``…/notebook-namespace``)
``EJ_NOTEBOOK_UID``            (empty)                     the JupyterNotebook's uid (annotation
                                                           ``…/notebook-uid``, owner reference);
                                                           empty by hand
``EJ_KERNEL_NAMESPACE``        the notebook's namespace    where kernels run
``EJ_RESPONSE_PORT``           ``8877``                    the response address's port (0: any)
``EJ_RESPONSE_IP``             ``POD_IP``, else the local  the address kernels report to
                               address towards the API
                               server
``EJ_RESPONSE_BIND_IP``        ``0.0.0.0`` in a pod        where the listener binds
                               (``POD_IP`` set), else the
                               response IP
``EJ_ALLOWED_KERNEL_*``, ``EJ_KERNEL_UID_RANGE``, ``EJ_KERNEL_GID_RANGE``,
``EJ_DEFAULT_KERNEL_TEMPLATE``, ``EG_PROHIBITED_UIDS``/``GIDS``, ``EG_KERNEL_LAUNCH_TIMEOUT``,
``EJ_UNSCHEDULABLE_GRACE_SECONDS``, ``EJ_ALLOW_KERNEL_NAMESPACE``, ``EJ_KERNEL_NAMESPACES``:
as for the gateway (``gateway_plugin/settings.py``).
=============================  ==========================  ======================================
"""

from __future__ import annotations

import getpass
import re
from collections.abc import Mapping
from dataclasses import dataclass

from elastic_jupyter import crds
from elastic_jupyter.gateway_plugin.kernel_resource import GatewayRef
from elastic_jupyter.gateway_plugin.settings import GatewaySettings, SettingsError

DEFAULT_RESPONSE_PORT = 8877
ENV_RESPONSE_IP = "EJ_RESPONSE_IP"
ENV_RESPONSE_BIND_IP = "EJ_RESPONSE_BIND_IP"


def default_notebook_name(user: str | None = None) -> str:
    """The by-hand owner name: ``jupyter-<os user>`` made a DNS-1123 label (stable across
    restarts of the server, so a restarted server adopts its kernels)."""
    try:
        who = user if user is not None else getpass.getuser()
    except (KeyError, OSError):
        who = "user"
    part = re.sub(r"[^a-z0-9]+", "-", who.lower()).strip("-")[:50].strip("-") or "user"
    return f"jupyter-{part}"


@dataclass(frozen=True)
class DirectSettings:
    """What the provisioner needs: the gateway's policy settings plus the owner and the
    response address."""

    policy: GatewaySettings
    notebook: GatewayRef
    response_port: int = DEFAULT_RESPONSE_PORT
    response_ip: str = ""  # empty: found at start (the address towards the API server)
    bind_ip: str = ""  # empty: the response IP

    @classmethod
    def from_env(cls, env: Mapping[str, str], context_namespace: str = "") -> DirectSettings:
        """Read the settings (``context_namespace``: the kubeconfig's, by hand); raise
        :class:`SettingsError` naming the variable."""
        name = env.get(crds.ENV_NOTEBOOK_NAME, "").strip() or default_notebook_name()
        namespace = (
            env.get(crds.ENV_NOTEBOOK_NAMESPACE, "").strip() or context_namespace or "default"
        )
        # The policy is the gateway's, read by the gateway's code: the notebook stands where the
        # gateway stood (its name labels nothing here, see build_kernel_manifest).
        policy = GatewaySettings.from_env({**env, "EG_NAME": name, "EG_NAMESPACE": namespace})
        raw_port = env.get(crds.ENV_RESPONSE_PORT, "").strip()
        try:
            port = int(raw_port) if raw_port else DEFAULT_RESPONSE_PORT
        except ValueError:
            port = -1
        if not 0 <= port <= 65535:
            raise SettingsError(
                f"{crds.ENV_RESPONSE_PORT}={raw_port!r} is not a port: use 0..65535 (0: any)"
            )
        pod_ip = env.get("POD_IP", "").strip()
        response_ip = env.get(ENV_RESPONSE_IP, "").strip() or pod_ip
        bind_ip = env.get(ENV_RESPONSE_BIND_IP, "").strip() or ("0.0.0.0" if pod_ip else "")
        uid = env.get(crds.ENV_NOTEBOOK_UID, "").strip() or None
        notebook = GatewayRef(name, namespace, uid, kind=crds.JUPYTER_NOTEBOOK.kind)
        return cls(policy, notebook, port, response_ip, bind_ip)

    @property
    def kernel_selector(self) -> str:
        """The label selector of this server's kernels (its watch, adoption)."""
        return (
            f"{crds.LABEL_NOTEBOOK}={self.notebook.name},{crds.LABEL_MANAGED_BY}={crds.MANAGED_BY}"
        )

    def owns(self, annotations: Mapping[str, str]) -> bool:
        """Whether a JupyterKernel carrying the notebook label also names this owner (same
        namespace, and same uid when both know one): two notebooks of one name in two
        namespaces never adopt each other's kernels."""
        if annotations.get(crds.ANNOTATION_NOTEBOOK_NAMESPACE) != self.notebook.namespace:
            return False
        theirs = annotations.get(crds.ANNOTATION_NOTEBOOK_UID) or ""
        return not (self.notebook.uid and theirs and theirs != self.notebook.uid)
