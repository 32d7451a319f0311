"""kopf's lifecycle handlers: login, start-up (kopf settings and the run's shared state), cleanup.

kopf calls these, in this order, when an operator starts (``elastic-jupyter-operator``,
``kopf run -m elastic_jupyter.operator.handlers`` or ``KopfRunner`` in tests):

1. :func:`login` — credentials from ``$KUBECONFIG`` or the in-cluster service account
   (:mod:`kube`); never at import time.
2. :func:`configure` — kopf settings (below), the API client, the metrics endpoint; stores the
   run's :class:`~runtime.Runtime` in the memo (read back with :func:`runtime.from_memo`).
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
from typing import Any

import kopf

from elastic_jupyter.operator import kube, metrics, runtime

# kopf passes its own `settings` keyword to configure(), hence the other name
from elastic_jupyter.operator import settings as run_settings


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    """Credentials for kopf's own API calls (the same ones :class:`kube.KubeClient` uses)."""
    return kube.connection_info(kube.load_configuration())


@kopf.on.startup()
async def configure(
    settings: kopf.OperatorSettings, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """Apply kopf settings and create the run's shared state."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=run_settings.KOPF_ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=run_settings.KOPF_ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{run_settings.KOPF_ANNOTATION_PREFIX}/finalizer"
    settings.posting.enabled = True
    settings.posting.loggers = False
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 600
    settings.watching.client_timeout = 660

    given = memo.get(runtime.OPTIONS_KEY)
    options = (
        given if isinstance(given, run_settings.RunOptions) else run_settings.RunOptions.resolve()
    )
    state: runtime.Runtime | None = None
    # The phase gauge reads the runtime created just below (a closure, as it exists only now).
    the_metrics = metrics.Metrics(lambda: state.kernel_phases() if state else {})
    client = kube.KubeClient(kube.load_configuration())
    state = runtime.Runtime(client=client, metrics=the_metrics, options=options)
    try:
        the_metrics.serve(options.metrics_port)
    except OSError as error:
        # A taken port will not free itself: stop the operator with a clear message.
        raise kopf.PermanentError(
            f"cannot serve metrics on port {options.metrics_port}: {error}"
        ) from error
    if options.metrics_port:
        logger.info("Prometheus metrics on port %d", options.metrics_port)
    memo[runtime.RUNTIME_KEY] = state


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    """Close the API client and the metrics endpoint."""
    state = memo.get(runtime.RUNTIME_KEY)
    if isinstance(state, runtime.Runtime):
        await state.close()
