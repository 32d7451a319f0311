"""``elastic-jupyter-sandbox``: run the sandbox cluster, or ask a running one about itself.

``elastic-jupyter-sandbox up`` (also ``python -m elastic_jupyter.sandbox up``) starts, in one
process and one asyncio loop, the API server (:mod:`.apiserver`) and, as HTTP clients of it,
the kubelet (:mod:`.kubelet`), scheduler (:mod:`.scheduler`), Deployment/ReplicaSet controllers
(:mod:`.deployments`) and the Service controller with its proxies and DNS (:mod:`.services`).
It writes a kubeconfig, applies ``--apply`` files, prints one machine-readable line::

    SANDBOX READY url=http://127.0.0.1:PORT kubeconfig=PATH secure_url=https://127.0.0.1:PORT2

then how to use it, and runs until Ctrl-C or SIGTERM, when it kills every pod process, closes
the proxies, removes its ``/etc/hosts`` block and exits. :class:`.cluster.SandboxCluster` runs
this command for tests, benchmarks and the demo.

``elastic-jupyter-sandbox kubeconfig`` prints the kubeconfig path of the sandbox running from a
state directory; ``elastic-jupyter-sandbox status`` prints its node, pods and request counters.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import stat
import sys
import urllib.request
from pathlib import Path
from typing import Any

from .applier import Applier
from .imagemap import KERNEL_VENV_ENV, ImageMap
from .kubeclient import KubeClient
from .kubeconfig import token_of, write_kubeconfig
from .podman_runtime import PodmanRuntime
from .tls import make_serving_cert

log = logging.getLogger("elastic_jupyter.sandbox")
READY_PREFIX = "SANDBOX READY"
RUNTIME_FILE = "sandbox.json"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="elastic-jupyter-sandbox",
        description="A local Kubernetes cluster whose pods are local processes.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run the sandbox until Ctrl-C")
    up.add_argument("--host", default="127.0.0.1", help="API server address (loopback only)")
    up.add_argument("--port", type=int, default=0, help="API server port (0: a free one)")
    up.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".sandbox"),
        help="pod directories, logs and the kubeconfig (default: ./.sandbox)",
    )
    up.add_argument(
        "--kubeconfig",
        type=Path,
        help="where to write the kubeconfig (default: STATE_DIR/kubeconfig)",
    )
    up.add_argument("--node-name", default="sandbox-node")
    up.add_argument("--node-cpu", default="8")
    up.add_argument("--node-memory", default="32Gi")
    up.add_argument("--node-gpus", type=int, default=2, help="nvidia.com/gpu capacity")
    up.add_argument(
        "--node-resource",
        action="append",
        default=[],
        metavar="NAME=QTY",
        help="a node capacity entry, e.g. example.com/fpga=4 or pods=500 (repeatable)",
    )
    up.add_argument("--node-label", action="append", default=[], metavar="KEY=VALUE")
    up.add_argument(
        "--image-map",
        type=Path,
        action="append",
        default=[],
        help="YAML image rules tried before the defaults (repeatable)",
    )
    up.add_argument(
        "--kernel-venv",
        type=Path,
        help=f"venv for kernel/notebook images (default ${KERNEL_VENV_ENV} or <repo>/.venv-kernel)",
    )
    up.add_argument(
        "--apply",
        type=Path,
        action="append",
        default=[],
        metavar="DIR_OR_FILE",
        help="apply YAML like kubectl apply -f before reporting ready (repeatable)",
    )
    up.add_argument("--no-kubelet", action="store_true", help="API server and controllers only")
    up.add_argument(
        "--no-rbac",
        action="store_true",
        help="debugging only: authenticate nobody, authorize everything (RBAC is on by default)",
    )
    up.add_argument(
        "--no-dns", action="store_true", help="do not publish Service names in /etc/hosts"
    )
    up.add_argument(
        "--no-run-as-user",
        action="store_true",
        help="ignore securityContext.runAsUser/runAsGroup (run pods as this user)",
    )
    up.add_argument(
        "--no-grant-traverse",
        action="store_true",
        help="never add o+x to directories blocking a non-root pod's executable or the "
        "state directory (refuse to start when the state directory is unreachable)",
    )
    up.add_argument(
        "--container-runtime",
        choices=("process", "podman"),
        default="process",
        help="podman: pods whose image is in podman's local store (or whose image map entry "
        "says runtime: podman) run in that image through podman; others as processes",
    )
    up.add_argument(
        "--crash-backoff",
        type=float,
        default=10.0,
        help="first CrashLoopBackOff delay in seconds (Kubernetes: 10)",
    )
    up.add_argument("--log-level", default=os.environ.get("SANDBOX_LOG_LEVEL", "INFO"))

    for name, text in (
        ("kubeconfig", "print the kubeconfig path of a running sandbox"),
        ("status", "print the node, pods and request counters of a sandbox"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--state-dir", type=Path, default=Path(".sandbox"))
    return parser


def _podman_runtime(choice: str) -> PodmanRuntime | None:
    if choice != "podman":
        return None
    runtime = PodmanRuntime()
    if not runtime.available():
        raise SystemExit("--container-runtime podman: podman is not on PATH")
    return runtime


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    result = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep:
            raise SystemExit(f"{flag} expects NAME=VALUE, not {value!r}")
        result[key] = val
    return result


async def _up(args: argparse.Namespace) -> int:
    # Imported here so that `kubeconfig`/`status` stay instant.
    from .apiserver import SERVER, start_apiserver
    from .deployments import DeploymentControllers
    from .kubelet import Kubelet, KubeletConfig
    from .nodes import NodeControl
    from .scheduler import Scheduler
    from .services import ServiceController

    state_dir: Path = args.state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    if not args.no_kubelet and not args.no_run_as_user and os.geteuid() == 0:
        _make_state_dir_reachable(state_dir, grant=not args.no_grant_traverse)
    kubeconfig: Path = (args.kubeconfig or state_dir / "kubeconfig").resolve()
    image_map = ImageMap.default(kernel_venv=args.kernel_venv)
    for path in reversed(args.image_map):
        image_map = image_map.with_file(path)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    cert = make_serving_cert(state_dir / "pki")
    api = await start_apiserver(args.host, args.port, tls=cert, rbac=not args.no_rbac)
    tokens = api.access.controller_tokens
    components: list[Any] = []
    try:
        # the admin's kubeconfig: readable by this user only (it holds a superuser token)
        write_kubeconfig(kubeconfig, api.secure_url, api.access.admin_token, ca_pem=cert.ca_pem)
        if args.apply:
            client = KubeClient(api.url, user_agent="sandbox-apply", token=api.access.admin_token)
            try:
                for line in await Applier(client).apply_paths([p.resolve() for p in args.apply]):
                    log.info("applied %s", line)
            finally:
                await client.close()
        if not args.no_kubelet:
            config = KubeletConfig(
                state_dir=state_dir,
                node_name=args.node_name,
                cpu=args.node_cpu,
                memory=args.node_memory,
                gpus=args.node_gpus,
                extended_resources=_pairs(args.node_resource, "--node-resource"),
                labels=_pairs(args.node_label, "--node-label"),
                image_map=image_map,
                run_as_user=not args.no_run_as_user,
                grant_traverse=not args.no_grant_traverse,
                token=tokens["kubelet"],
                pod_api_url=api.secure_url,
                pod_api_ca=cert.ca_pem,
                crash_backoff_base=args.crash_backoff,
                podman=_podman_runtime(args.container_runtime),
            )
            if config.podman is not None:
                await config.podman.remove_orphans()
            # Behind /sandbox/nodes: the kubelet can crash and come back, more nodes can join.
            control = NodeControl(api.url, config, Kubelet)
            api.app[SERVER].node_control = control
            components.append(control)
        components.append(Scheduler(api.url, token=tokens["scheduler"]))
        components.append(DeploymentControllers(api.url, token=tokens["controller-manager"]))
        components.append(
            ServiceController(
                api.url,
                dns=not args.no_dns,
                hosts_tag=f"port={api.port}",
                token=tokens["controller-manager"],
            )
        )
        for component in components:
            await component.start()
        runtime = {
            "url": api.url,
            "secure_url": api.secure_url,
            "kubeconfig": str(kubeconfig),
            "pid": os.getpid(),
        }
        (state_dir / RUNTIME_FILE).write_text(json.dumps(runtime), encoding="utf-8")
        print(
            f"{READY_PREFIX} url={api.url} kubeconfig={kubeconfig} secure_url={api.secure_url}",
            flush=True,
        )
        print(
            "\nThe elastic-jupyter sandbox is running (pods are local processes).\n"
            f"  export KUBECONFIG={kubeconfig}\n"
            "  kubectl get nodes\n"
            "  kubectl get jupyter -A\n"
            "Press Ctrl-C to stop it; every pod process is stopped with it.",
            flush=True,
        )
        await stop.wait()
        log.info("stopping")
    finally:
        for component in reversed(components):
            try:
                await asyncio.wait_for(component.stop(), 20)
            except Exception:
                log.exception("stopping %s failed", type(component).__name__)
        await api.stop()
        with contextlib.suppress(FileNotFoundError):
            (state_dir / RUNTIME_FILE).unlink()
    return 0


def _make_state_dir_reachable(state_dir: Path, grant: bool) -> None:
    """Pods running as non-root users read their files under the state directory: every
    directory above it must let them through (``mktemp -d`` makes a 0700 one). Grant ``o+x``
    (logged), or with ``--no-grant-traverse`` refuse to start with one line saying the fix."""
    from .runas import grant_traverse, untraversable_parents

    blocked = untraversable_parents(state_dir)
    if blocked and not grant:
        mode = stat.S_IMODE(blocked[0].stat().st_mode)
        raise SystemExit(
            f"elastic-jupyter-sandbox: non-root pods cannot reach the state directory "
            f"{state_dir}: {blocked[0]} (mode {mode:o}) does not let other users through; run "
            f"chmod o+x {' '.join(str(d) for d in blocked)}, or pick a --state-dir below "
            "traversable directories, or drop --no-grant-traverse"
        )
    for directory in blocked:
        grant_traverse(directory, f"their pod files in the state directory {state_dir}")


def _runtime(state_dir: Path) -> dict[str, Any]:
    path = state_dir / RUNTIME_FILE
    if not path.exists():
        raise SystemExit(f"no sandbox is running from {state_dir.resolve()} (no {RUNTIME_FILE})")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _get(url: str, token: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def _status(state_dir: Path) -> int:
    runtime = _runtime(state_dir)
    url = runtime["url"]
    print(f"sandbox: {url} (pid {runtime['pid']}), kubeconfig {runtime['kubeconfig']}")
    token = token_of(Path(runtime["kubeconfig"]))
    for node in _get(url + "/api/v1/nodes", token).get("items") or []:
        alloc = node.get("status", {}).get("allocatable", {})
        print(
            f"node {node['metadata']['name']}: " + ", ".join(f"{k}={v}" for k, v in alloc.items())
        )
    for pod in _get(url + "/api/v1/pods", token).get("items") or []:
        status = pod.get("status") or {}
        print(
            f"pod {pod['metadata'].get('namespace')}/{pod['metadata']['name']}: "
            f"{status.get('phase')} {status.get('podIP', '')}"
        )
    print(json.dumps(_get(url + "/sandbox/stats", token), indent=2, sort_keys=True))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "kubeconfig":
        print(_runtime(args.state_dir)["kubeconfig"])
        return 0
    if args.command == "status":
        return _status(args.state_dir)
    logging.basicConfig(
        level=str(args.log_level).upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    try:
        return asyncio.run(_up(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
