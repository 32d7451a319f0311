"""elastic-jupyter's Enterprise Gateway plugin: every kernel a JupyterKernel custom resource.

Kernelspecs name the process proxy as ``elastic_jupyter.gateway_plugin.KubeflowProcessProxy``.
It is resolved lazily (module ``__getattr__``): importing this package - as the
``kubeflow-launcher`` CLI and the tests do - does not import Enterprise Gateway.

Modules: :mod:`.kernel_resource` (the pure JupyterKernel builder), :mod:`.launcher_cli` (the
``kubeflow-launcher`` argv and CLI), :mod:`.launcher` (create/delete, shared by proxy and CLI),
:mod:`.kernel_watch` (one watch per gateway), :mod:`.kube` (a small REST client),
:mod:`.settings` (``EG_*``/``EJ_*`` environment), :mod:`.process_proxy` (the proxy itself),
:mod:`.gateway_boot` (the orphan sweep, started at gateway start), :mod:`.kernelspec_sync`
(kernelspec hot reload and the kernelspec managers that boot the plugin),
:mod:`.gateway_runtime` (the plugin's state of one gateway application: settings, API client,
watch, sweep, kernelspec sync, live proxies, tasks, client owners - one per application, no
process-wide state), :mod:`.session_store` and :mod:`.adoption` (kernels outlive the gateway).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .process_proxy import KubeflowProcessProxy

__all__ = ["KubeflowProcessProxy"]


def __getattr__(name: str) -> Any:
    if name == "KubeflowProcessProxy":
        from .process_proxy import KubeflowProcessProxy

        return KubeflowProcessProxy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
