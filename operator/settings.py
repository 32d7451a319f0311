"""kopf startup configuration, login, and the shared :class:`~runtime.Runtime`.

kopf calls these handlers, in this order, when an operator starts (``elastic-jupyter-operator``,
``kopf run -m elastic_jupyter.operator.handlers`` or ``KopfRunner`` in tests):

1. :func:`login` — credentials from ``$KUBECONFIG`` or the in-cluster service account
   (:mod:`kube`); never at import time.
2. :func:`configure` — kopf settings (below), the API client, the metrics endpoint; stores the
   runtime as ``memo.runtime`` for every handler.
3. At shutdown :func:`cleanup` closes them.

kopf settings, and why:

* progress and "last handled" state in annotations (``kopf.kubeflow.tkestack.io/…``), never in
  ``status``: our status schemas are closed and written only by our handlers. The JupyterKernel
  and kernelspec/template handlers are level-based ``on.event`` handlers and need no kopf state
  at all (no finalizer, no annotation patch: fewer writes per kernel start); these settings are
  for the ``on.create``/``on.update`` handlers of other resource kinds.
* Events: only those our handlers post explicitly (``kopf.event``); log lines are not posted.
* Watches are long (10 min server timeout) to avoid needless re-lists on big clusters.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import kopf

from elastic_jupyter import crds
from elastic_jupyter.operator import kube, metrics, runtime

#: Prefix of kopf's own annotations on objects handled by ``on.create``/``on.update`` handlers.
KOPF_ANNOTATION_PREFIX = f"kopf.{crds.GROUP}"
#: Environment variable the CLI sets for the metrics port (0 or unset: no endpoint).
METRICS_PORT_ENV = "ELASTIC_JUPYTER_OPERATOR_METRICS_PORT"
#: Image of kernels whose kernelspec and template name none (``--default-kernel-image``).
DEFAULT_KERNEL_IMAGE = "ghcr.io/elastic-jupyter/kernel-py:0.1.0"
DEFAULT_KERNEL_IMAGE_ENV = "ELASTIC_JUPYTER_DEFAULT_KERNEL_IMAGE"


@dataclass
class RunOptions:
    """Options :mod:`main` passes to the handlers of this process (defaults suit tests)."""

    metrics_port: int = 0
    default_kernel_image: str = ""
    #: GPUs waiting warm-pool kernels may hold cluster-wide (``--max-pooled-gpus``); ``None``:
    #: ``$ELASTIC_JUPYTER_MAX_POOLED_GPUS``, else 0 (GPU kernelspecs get no pool).
    max_pooled_gpus: int | None = None


OPTIONS = RunOptions()


def default_kernel_image() -> str:
    """The image of kernels whose kernelspec and template set none: ``--default-kernel-image``,
    else ``$ELASTIC_JUPYTER_DEFAULT_KERNEL_IMAGE``, else :data:`DEFAULT_KERNEL_IMAGE`."""
    return (
        OPTIONS.default_kernel_image.strip()
        or os.environ.get(DEFAULT_KERNEL_IMAGE_ENV, "").strip()
        or DEFAULT_KERNEL_IMAGE
    )


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    """Credentials for kopf's own API calls (the same ones :class:`kube.KubeClient` uses)."""
    return kube.connection_info(kube.load_configuration())


@kopf.on.startup()
async def configure(
    settings: kopf.OperatorSettings, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """Apply kopf settings and create the run's shared state (``memo.runtime``)."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=KOPF_ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=KOPF_ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{KOPF_ANNOTATION_PREFIX}/finalizer"
    settings.posting.enabled = True
    settings.posting.loggers = False
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 600
    settings.watching.client_timeout = 660

    port = OPTIONS.metrics_port or int(os.environ.get(METRICS_PORT_ENV) or 0)
    state: runtime.Runtime | None = None
    # The phase gauge reads the runtime created just below (a closure, as it exists only now).
    the_metrics = metrics.Metrics(lambda: state.kernel_phases() if state else {})
    state = runtime.Runtime(client=kube.KubeClient(kube.load_configuration()), metrics=the_metrics)
    try:
        the_metrics.serve(port)
    except OSError as error:
        # A taken port will not free itself: stop the operator with a clear message.
        raise kopf.PermanentError(f"cannot serve metrics on port {port}: {error}") from error
    if port:
        logger.info("Prometheus metrics on port %d", port)
    memo.runtime = state


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    """Close the API client and the metrics endpoint."""
    state = memo.get("runtime")
    if isinstance(state, runtime.Runtime):
        await state.close()


def runtime_of(memo: kopf.Memo) -> runtime.Runtime:
    """The run's shared state, as :func:`configure` stored it."""
    state = memo.get("runtime")
    if not isinstance(state, runtime.Runtime):
        raise kopf.PermanentError("the operator's startup handler did not run")
    return state
