"""The elastic-jupyter demo (run by ``make demo``; ``--once`` exits right after showing it).

Foundation version: brings up the sandbox cluster (an in-memory Kubernetes API server plus a
local kubelet running pods as processes) with the five CRDs applied, shows them with kubectl,
and explains how to use it until Ctrl-C. Later issues grow this into the whole system
(operator, gateway, notebook, kernels).

    python examples/demo.py [--once] [--gpus N]
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import threading

from elastic_jupyter.sandbox.cluster import SandboxCluster


def _show(cluster: SandboxCluster, *args: str) -> None:
    print(f"$ kubectl {' '.join(args)}", flush=True)
    if shutil.which("kubectl") is None:
        print("(kubectl is not on PATH: install kubectl 1.32 to run this yourself)")
        return
    result = cluster.kubectl(*args, check=False)
    print((result.stdout or result.stderr).rstrip() or "(no output)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--once", action="store_true", help="show the cluster, then stop")
    parser.add_argument("--gpus", type=int, default=2, help="nvidia.com/gpu on the sandbox node")
    args = parser.parse_args(argv)

    print("Starting the sandbox cluster with the elastic-jupyter CRDs ...", flush=True)
    with SandboxCluster(apply_crds=True, node_gpus=args.gpus) as cluster:
        print(f"API server {cluster.url}, kubeconfig {cluster.kubeconfig}\n", flush=True)
        _show(cluster, "get", "nodes")
        _show(cluster, "get", "crd")
        _show(cluster, "get", "jupyter", "-A")
        print(
            "\nUse it from another shell:\n"
            f"  export KUBECONFIG={cluster.kubeconfig}\n"
            "  kubectl get jupyter -A\n"
            "  kubectl run hello --image=python:3.11 --restart=Never -- "
            "python3 -c 'print(\"hello from a sandbox pod\")'\n"
            "  kubectl logs hello\n"
            "Pods run as local processes, each with its own 127.x.y.z address.",
            flush=True,
        )
        if args.once:
            return 0
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        print("\nPress Ctrl-C to stop the sandbox (every pod process stops with it).", flush=True)
        stop.wait()
        print("\nStopping ...", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
