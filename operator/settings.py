"""The operator's run options: what the command line and the environment configure.

:mod:`main` resolves them from its arguments and hands them to kopf in the memo;
:func:`lifecycle.configure` keeps them on the run's :class:`~runtime.Runtime`, where handlers
read them (``state.options``). An operator started without :mod:`main` (``kopf run -m
elastic_jupyter.operator.handlers``, ``KopfRunner`` in tests) resolves them from the
environment alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from elastic_jupyter import crds
from elastic_jupyter.operator import warm_pool_objects

#: Prefix of kopf's own annotations on objects handled by ``on.create``/``on.update`` handlers.
KOPF_ANNOTATION_PREFIX = f"kopf.{crds.GROUP}"
#: Environment variable the CLI sets for the metrics port (0 or unset: no endpoint).
METRICS_PORT_ENV = "ELASTIC_JUPYTER_OPERATOR_METRICS_PORT"
#: Image of kernels whose kernelspec and template name none (``--default-kernel-image``).
DEFAULT_KERNEL_IMAGE = "ghcr.io/elastic-jupyter/kernel-py:0.1.0"
DEFAULT_KERNEL_IMAGE_ENV = "ELASTIC_JUPYTER_DEFAULT_KERNEL_IMAGE"
MAX_POOLED_GPUS_ENV = "ELASTIC_JUPYTER_MAX_POOLED_GPUS"
#: Seconds a warm-pool claim may stay unfinished before the operator ends the kernel.
POOL_CLAIM_TIMEOUT_ENV = "ELASTIC_JUPYTER_POOL_CLAIM_TIMEOUT"


@dataclass(frozen=True)
class RunOptions:
    """Options of one operator run (the defaults suit tests)."""

    #: Prometheus metrics port; 0: no endpoint.
    metrics_port: int = 0
    #: The image of kernels whose kernelspec and template set none.
    default_kernel_image: str = DEFAULT_KERNEL_IMAGE
    #: GPUs waiting warm-pool kernels may hold cluster-wide (0: GPU kernelspecs get no pool).
    max_pooled_gpus: int = 0
    #: Seconds a claimed pool kernel may wait for its claim to complete.
    pool_claim_timeout: float = warm_pool_objects.DEFAULT_CLAIM_TIMEOUT

    @classmethod
    def resolve(
        cls,
        metrics_port: int | None = None,
        default_kernel_image: str | None = None,
        max_pooled_gpus: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> RunOptions:
        """Command-line values first, then the environment
        (``$ELASTIC_JUPYTER_OPERATOR_METRICS_PORT``, ``$ELASTIC_JUPYTER_DEFAULT_KERNEL_IMAGE``,
        ``$ELASTIC_JUPYTER_MAX_POOLED_GPUS``, ``$ELASTIC_JUPYTER_POOL_CLAIM_TIMEOUT``), then the
        defaults."""
        env = os.environ if env is None else env
        image = (
            (default_kernel_image or "").strip()
            or env.get(DEFAULT_KERNEL_IMAGE_ENV, "").strip()
            or DEFAULT_KERNEL_IMAGE
        )
        port = metrics_port or int(env.get(METRICS_PORT_ENV) or 0)
        if max_pooled_gpus is None:
            max_pooled_gpus = int(env.get(MAX_POOLED_GPUS_ENV) or 0)
        timeout = float(env.get(POOL_CLAIM_TIMEOUT_ENV) or warm_pool_objects.DEFAULT_CLAIM_TIMEOUT)
        return cls(
            metrics_port=port,
            default_kernel_image=image,
            max_pooled_gpus=max_pooled_gpus,
            pool_claim_timeout=timeout,
        )
