"""The scripted user session of elastic-jupyter: what ``make demo`` shows.

On the sandbox cluster with the real operator, it applies the elastic example (a JupyterGateway,
a JupyterKernelSpec, a JupyterKernelTemplate and a JupyterNotebook) and then behaves like a user
of the **notebook server** (jupyter_server 2, started by the JupyterNotebook, talking to the
gateway by URL): it opens a session, runs code that names the kernel pod, looks at the
JupyterKernel and the pod with kubectl, interrupts a long cell, restarts the kernel, deletes the
kernel's pod behind its back and watches the kernel come back, shuts it down, shares two GPUs
between three notebooks (examples/gpu), and lets an idle kernel be culled. Every step is printed
plainly.

Run: ``.venv/bin/python examples/demo_session.py [--once] [--no-gpu]``. Without ``--once`` it
prints the JupyterLab URL afterwards and keeps everything running until Ctrl-C (or SIGTERM), then
stops it all cleanly. Needs kubectl on PATH.

The steps live in :mod:`elastic_jupyter.harness.user_path`; ``tests/e2e/test_user_path.py``
runs the same ones, so what the demo shows is what CI checks.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from elastic_jupyter.harness import (
    ELASTIC_EXAMPLE,
    GPU_EXAMPLE,
    NO_PORTS,
    Kubectl,
    NotebookAPIError,
    StepFailedError,
    UserPath,
    operator_env,
    operator_process,
    run_script,
)

DEMO_NAMESPACE = "demo"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--once", action="store_true", help="exit after the scripted session")
    parser.add_argument("--no-gpu", action="store_true", help="skip the GPU sharing steps")
    parser.add_argument("--example", type=Path, default=ELASTIC_EXAMPLE, help="elastic example")
    parser.add_argument("--gpu-example", type=Path, default=GPU_EXAMPLE, help="GPU example")
    return parser.parse_args(argv)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Bring up sandbox + operator, run the session, then wait for Ctrl-C (unless --once).

    Ctrl-C or SIGTERM at any moment stops the operator, then the sandbox (which kills every pod
    process and removes its /etc/hosts entries), and exits.
    """
    from elastic_jupyter.sandbox.cluster import SandboxCluster

    args = _parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    try:
        print("==> Starting the sandbox cluster (API server, kubelet, scheduler with 2 GPUs)")
        with SandboxCluster(node_gpus=2) as cluster:
            return _session(cluster, args)
    except KeyboardInterrupt:
        print("\n==> Stopped: operator and sandbox are down, no pod process is left")
        return 130


def _session(cluster: Any, args: argparse.Namespace) -> int:
    kubeconfig = str(cluster.kubeconfig)
    print(f"    KUBECONFIG={kubeconfig} (the CRDs of crds/ are applied)")
    kubectl = Kubectl(kubeconfig, DEMO_NAMESPACE)
    cluster.kubectl("create", "namespace", DEMO_NAMESPACE, check=False)
    print(f"==> Starting the operator: elastic-jupyter-operator --namespace {DEMO_NAMESPACE}")
    log = cluster.state_dir / "operator.log"
    with operator_process(operator_env(cluster), log, "--namespace", DEMO_NAMESPACE, *NO_PORTS):
        path = UserPath(kubectl)
        try:
            run_script(path, not args.no_gpu, args.example, args.gpu_example)
        except (StepFailedError, TimeoutError, NotebookAPIError) as error:
            print(f"\n!!! the demo failed: {error}")
            print(path.diagnose())
            print("    operator log (tail):")
            print(log.read_text(errors="replace")[-4000:])
            return 1
        finally:
            if path.channel is not None:
                path.channel.close()
        print("\n==> The scripted session is done.")
        if args.once:
            print("==> Stopping the operator and the sandbox (--once)")
            return 0
        print(f"    Open JupyterLab: {path.lab_url}")
        look = f"KUBECONFIG={kubeconfig} kubectl -n {DEMO_NAMESPACE} get jupyter,pods"
        print(f"    Look around:     {look}")
        print("    Ctrl-C stops everything.")
        while True:
            signal.pause()


if __name__ == "__main__":
    sys.exit(main())
