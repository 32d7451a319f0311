"""``elastic-jupyter-operator``: the operator's command line, a thin wrapper around ``kopf run``.

Usage::

    elastic-jupyter-operator                       # all namespaces
    elastic-jupyter-operator --namespace team-a --namespace 'team-*'
    elastic-jupyter-operator --liveness http://0.0.0.0:8080/healthz --metrics-port 9090
    elastic-jupyter-operator --default-kernel-image registry.example/kernel-py:1.2

The operator runs standalone by default (no kopf peering objects: run one replica, or pass
``--peering NAME`` to let several replicas elect one through kopf's peering resources, which
then need kopf's peering CRDs). Credentials: ``$KUBECONFIG`` when set, otherwise the in-cluster
service account — loaded by kopf's login handler when the operator starts, never at import time.

What runs: every handler that :mod:`elastic_jupyter.operator.handlers` imports.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

DEFAULT_LIVENESS = "http://0.0.0.0:8080/healthz"
DEFAULT_METRICS_PORT = 9090


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="elastic-jupyter-operator",
        description="Kopf operator for elastic-jupyter: JupyterKernel → Pod, "
        "JupyterKernelSpec → ConfigMap, JupyterKernelTemplate validation, and more.",
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        metavar="NAMESPACE",
        help="serve this namespace (repeatable; globs such as 'team-*' allowed)",
    )
    scope.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        help="serve all namespaces (the default when no --namespace is given)",
    )
    parser.add_argument(
        "--liveness",
        default=DEFAULT_LIVENESS,
        metavar="URL",
        help=f"kopf's liveness endpoint (default {DEFAULT_LIVENESS}; 'none' to disable)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=DEFAULT_METRICS_PORT,
        metavar="PORT",
        help=f"Prometheus metrics port (default {DEFAULT_METRICS_PORT}; 0 to disable)",
    )
    parser.add_argument(
        "--default-kernel-image",
        metavar="IMAGE",
        default=None,
        help="image of kernels whose JupyterKernelSpec and JupyterKernelTemplate name none, "
        "and of the built-in default kernelspec (default: $ELASTIC_JUPYTER_DEFAULT_KERNEL_IMAGE, "
        "else ghcr.io/elastic-jupyter/kernel-py:0.1.0)",
    )
    parser.add_argument(
        "--max-pooled-gpus",
        metavar="N",
        type=int,
        default=None,
        help="GPUs that waiting warm-pool kernels may hold cluster-wide (default: "
        "$ELASTIC_JUPYTER_MAX_POOLED_GPUS, else 0: GPU kernelspecs get no warm pool)",
    )
    parser.add_argument(
        "--peering",
        metavar="NAME",
        default=None,
        help="use kopf peering with this name instead of running standalone",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    parser.add_argument("--debug", action="store_true", help="log everything, including kopf's")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the operator until SIGINT/SIGTERM; return the exit code."""
    args = parse_args(argv)
    # Imported here, not at module level: `--help` stays fast and importing this module has no
    # side effects (the handler modules register themselves with kopf on import).
    import kopf

    from elastic_jupyter.operator import handlers, runtime, settings

    kopf.configure(verbose=args.verbose, debug=args.debug, quiet=args.quiet)
    if args.quiet:
        logging.getLogger("kopf").setLevel(logging.WARNING)
    options = settings.RunOptions.resolve(
        args.metrics_port, args.default_kernel_image, args.max_pooled_gpus
    )
    liveness = None if str(args.liveness).lower() in ("", "none", "off") else args.liveness
    logging.getLogger(__name__).info(
        "Starting elastic-jupyter-operator (%s) with handlers from %s",
        ", ".join(args.namespace) if args.namespace else "all namespaces",
        handlers.__name__,
    )
    kopf.run(
        standalone=args.peering is None,
        peering_name=args.peering,
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=liveness,
        memo=kopf.Memo({runtime.OPTIONS_KEY: options}),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
