"""Enterprise Gateway 3.3's *stock* Kubernetes process proxy on the sandbox, for comparison rows.

Test and benchmark harness only: nothing here is product code. EG's wheel ships
``KubernetesProcessProxy`` but not its kernelspec, ``launch_kubernetes.py`` (run by EG to create
the kernel pod from ``kernel-pod.yaml.j2``) or ``launch_ipykernel.py`` (run inside the kernel
pod); those are in EG's source release under ``etc/``. :func:`ensure_sources` fetches that
release once with pip (``pip download --no-binary``, the registry's ordinary client) into
``.stock-eg/`` at the repository root (git-ignored) and reuses it afterwards.

How EG is made to run against the sandbox, as it would in a pod:

* ``enterprise_gateway.services.processproxies.k8s`` calls ``config.load_incluster_config()``
  when imported. ``KUBERNETES_SERVICE_HOST``/``PORT`` name the TLS listener (the sandbox's own,
  or :class:`FaultProxy` in front of it), and a ``sitecustomize`` on ``PYTHONPATH`` points the
  kubernetes client's in-cluster token and CA paths at files in the work directory: a token of
  a ServiceAccount ``enterprise-gateway`` bound to ``cluster-admin`` (the default
  ``EG_KERNEL_CLUSTER_ROLE``; EG's Helm chart grants its gateway a similar cluster-wide role)
  and the sandbox's CA.
* The kernelspec is EG's ``python_kubernetes`` with its ``scripts/`` copied from the release;
  its image ``elyra/kernel-py:3.3.0`` is mapped (``--image-map``) to EG's
  ``bootstrap-kernel.sh`` (the image's CMD) with ``KERNEL_LANGUAGE=python`` (the image's ENV).
  ``launch_kubernetes.py`` copies the gateway's whole environment into the pod, so the pod's
  ``python`` is this venv's, which has ipykernel and pycryptodomex as the image does.
* Kernels share the gateway's namespace (``EG_SHARED_NAMESPACE``), EG's own default for session
  persistence (off) is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import ssl
import subprocess
import sys
import tarfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiohttp
from _stack import Stack, wait_gateway_ready
from aiohttp import web

from elastic_jupyter.harness.processes import free_port
from elastic_jupyter.sandbox.cluster import SandboxCluster
from elastic_jupyter.sandbox.imagemap import default_kernel_venv

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BIN = Path(sys.executable).parent
CACHE = REPO / ".stock-eg"
KERNEL_IMAGE = "elyra/kernel-py:3.3.0"
KERNEL_NAME = "python_kubernetes"
PROXY_CLASS = "enterprise_gateway.services.processproxies.k8s.KubernetesProcessProxy"

SITECUSTOMIZE = '''\
"""Test harness only (bench/_stock_eg.py): the in-cluster service-account files live here."""
import os

if os.environ.get("STOCK_EG_TOKEN_FILE"):
    try:
        from kubernetes.config import incluster_config
    except ImportError:  # a process without the kubernetes client (the kernel itself)
        pass
    else:
        incluster_config.SERVICE_TOKEN_FILENAME = os.environ["STOCK_EG_TOKEN_FILE"]
        incluster_config.SERVICE_CERT_FILENAME = os.environ["STOCK_EG_CA_FILE"]
'''


def ensure_sources(cache: Path = CACHE, fetch: bool = False) -> Path:
    """EG's ``etc/`` from its source release; return its path.

    Only the set-up fetches it (``make venv``, which runs this file with ``--fetch``): a test or
    a benchmark run downloads nothing and says which command to run when it is missing.
    """
    eg_version = version("jupyter_enterprise_gateway")
    etc = cache / f"jupyter_enterprise_gateway-{eg_version}" / "etc"
    if (etc / "kernel-launchers" / "kubernetes" / "scripts" / "launch_kubernetes.py").exists():
        return etc
    if not fetch:
        raise RuntimeError(
            f"Enterprise Gateway {eg_version}'s kernel launchers are not in {cache}: run "
            "`make venv` (it fetches EG's source release from PyPI once)"
        )
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--no-binary", "jupyter-enterprise-gateway", "-d", str(cache),
            f"jupyter-enterprise-gateway=={eg_version}",
        ],
        check=True,
        timeout=600,
    )  # fmt: skip
    archive = cache / f"jupyter_enterprise_gateway-{eg_version}.tar.gz"
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if "/etc/" in m.name and m.isfile()]
        tar.extractall(cache, members=members, filter="data")
    return etc


def image_map_file(etc: Path, path: Path) -> Path:
    """The sandbox image map: EG's kernel image runs EG's bootstrap script."""
    launchers = etc / "kernel-launchers"
    rules = {
        "images": [
            {
                "match": ["elyra/kernel-py*"],
                "path": [str(BIN), str(default_kernel_venv() / "bin")],
                "command": ["bash", str(launchers / "bootstrap" / "bootstrap-kernel.sh")],
                "env": {"KERNEL_LANGUAGE": "python", "KERNEL_LAUNCHERS_DIR": str(launchers)},
            }
        ]
    }
    path.write_text(json.dumps(rules), encoding="utf-8")
    return path


def write_kernelspec(etc: Path, share: Path, harness_env: dict[str, str]) -> None:
    spec_dir = share / "kernels" / KERNEL_NAME
    scripts = spec_dir / "scripts"
    scripts.mkdir(parents=True, exist_ok=True)
    source = etc / "kernel-launchers" / "kubernetes" / "scripts"
    for name in ("launch_kubernetes.py", "kernel-pod.yaml.j2"):
        shutil.copyfile(source / name, scripts / name)
    stock = json.loads((etc / "kernelspecs" / KERNEL_NAME / "kernel.json").read_text())
    stock["metadata"]["process_proxy"]["config"]["image_name"] = KERNEL_IMAGE
    stock["argv"][0] = sys.executable
    stock["argv"][1] = str(scripts / "launch_kubernetes.py")
    # EG gives launch_kubernetes.py only the kernelspec's env (and KUBERNETES_SERVICE_*): the
    # harness's sitecustomize and token paths go there (a real pod has the files in place).
    stock["env"] = dict(harness_env)
    (spec_dir / "kernel.json").write_text(json.dumps(stock, indent=2), encoding="utf-8")


class FaultProxy:
    """A TLS listener in front of the sandbox's API server, for EG alone: ``error_rate`` of the
    requests answer 500 or 503 (a Status body, half each, seeded), the rest pass through; with
    ``drop_watches_after`` a watch stream ends after that many seconds (at its next event).

    EG's process proxy only lists, creates and deletes pods (it polls; it opens no watch), so
    this stands in for the sandbox's own fault switch without touching the kubelet's traffic."""

    def __init__(self, sandbox: SandboxCluster, seed: int) -> None:
        self.sandbox = sandbox
        self.error_rate = 0.0
        self.rng = random.Random(seed)
        self.port = free_port()
        self.injected = 0
        self.passed = 0
        self.drop_watches_after: float | None = None
        self.watch_requests = 0
        self.list_requests = 0
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: Any = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        watch = request.query.get("watch") in ("1", "true")
        self.watch_requests += int(watch)
        self.list_requests += int(request.method == "GET" and request.path.endswith("/pods"))
        if self.error_rate and self.rng.random() < self.error_rate:
            self.injected += 1
            code = self.rng.choice([500, 503])
            body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
                    "message": f"injected fault ({code})", "reason": "InternalError"}  # fmt: skip
            return web.json_response(body, status=code)
        self.passed += 1
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host",)}
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        body = await request.read()
        url = self.sandbox.url + request.rel_url.path_qs
        async with (
            aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session,
            session.request(request.method, url, headers=headers, data=body) as upstream,
        ):
            out = web.StreamResponse(status=upstream.status)
            for key, value in upstream.headers.items():
                if key.lower() not in ("transfer-encoding", "content-length", "connection"):
                    out.headers.add(key, value)
            await out.prepare(request)
            cut = time.monotonic() + (self.drop_watches_after or 0) if watch else None
            async for chunk in upstream.content.iter_any():
                await out.write(chunk)
                if cut is not None and self.drop_watches_after and time.monotonic() > cut:
                    break  # a dropped watch: the stream just ends
            await out.write_eof()
            return out

    def start(self) -> FaultProxy:
        import threading

        pki = self.sandbox.state_dir / "pki"
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(pki / "apiserver.crt"), str(pki / "apiserver.key"))
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application(client_max_size=64 * 2**20)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=context)
            loop.run_until_complete(site.start())
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._runner is not None:
            future = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
            with contextlib.suppress(Exception):
                future.result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)


class StockStack(Stack):
    """Sandbox + stock EG 3.3 with ``KubernetesProcessProxy``; no operator, none of our code.

    Reuses :class:`Stack`'s kernel helpers (``start_one``, ``start_many``, ``delete_kernels``);
    kernels are started with ``kind="python_kubernetes"``."""

    def __init__(
        self, workdir: Path, pods: int, launch_timeout: float = 120, seed: int = 14
    ) -> None:
        self.etc = ensure_sources()
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(workdir, pods, launch_timeout=launch_timeout)
        # Replace the parent's sandbox with one whose image map knows EG's kernel image.
        shutil.rmtree(self.sandbox.state_dir, ignore_errors=True)
        image_map = image_map_file(self.etc, workdir / "image-map.json")
        extra = ["--node-resource", f"pods={pods + 50}"]
        self.sandbox = SandboxCluster(
            apply_crds=False, node_cpu="256", node_memory="1Ti", dns=False,
            extra_args=extra, image_map=image_map,
        )  # fmt: skip
        self.namespace = "enterprise-gateway"
        self.seed = seed
        self.proxy: FaultProxy | None = None
        self.eg_env: dict[str, str] = {}

    def __enter__(self) -> StockStack:
        self.sandbox.start()
        try:
            self.sandbox.create_namespace(self.namespace)
            self.proxy = FaultProxy(self.sandbox, self.seed).start()
            self._service_account()
            self._start_gateway()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        super().close()
        if self.proxy is not None:
            self.proxy.stop()

    def _start_operator(self) -> None:  # stock EG has no operator
        return None

    def _service_account(self) -> None:
        sa_dir = self.workdir / "serviceaccount"
        sa_dir.mkdir(parents=True, exist_ok=True)
        self.sandbox.request(
            "POST",
            f"/api/v1/namespaces/{self.namespace}/serviceaccounts",
            {"apiVersion": "v1", "kind": "ServiceAccount",
             "metadata": {"name": "enterprise-gateway"}},
        )  # fmt: skip
        self.sandbox.request(
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "enterprise-gateway"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                            "name": "cluster-admin"},
                "subjects": [{"kind": "ServiceAccount", "name": "enterprise-gateway",
                              "namespace": self.namespace}],
            },
        )  # fmt: skip
        answer = self.sandbox.request(
            "POST",
            f"/api/v1/namespaces/{self.namespace}/serviceaccounts/enterprise-gateway/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
             "spec": {"expirationSeconds": 86400}},
        )  # fmt: skip
        (sa_dir / "token").write_text(answer["status"]["token"], encoding="utf-8")
        shutil.copyfile(self.sandbox.state_dir / "pki" / "ca.crt", sa_dir / "ca.crt")
        site = self.workdir / "site"
        site.mkdir(exist_ok=True)
        (site / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")

    def _start_gateway(self) -> None:
        share = self.workdir / "share" / "jupyter"
        harness = {
            "PYTHONPATH": str(self.workdir / "site"),
            "STOCK_EG_TOKEN_FILE": str(self.workdir / "serviceaccount" / "token"),
            "STOCK_EG_CA_FILE": str(self.workdir / "serviceaccount" / "ca.crt"),
        }
        write_kernelspec(self.etc, share, harness)
        self.port = self.port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        if not self.eg_env:
            assert self.proxy is not None
            env = {
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("EG_", "EJ_", "KERNEL_", "KUBE", "JUPYTER"))
            }
            env.update(
                {
                    "PATH": os.pathsep.join([str(BIN), env.get("PATH", os.defpath)]),
                    **harness,
                    "KUBERNETES_SERVICE_HOST": "127.0.0.1",
                    "KUBERNETES_SERVICE_PORT": str(self.proxy.port),
                    "JUPYTER_PATH": str(share),
                    "JUPYTER_DATA_DIR": str(self.workdir / "data"),
                    "JUPYTER_RUNTIME_DIR": str(self.workdir / "runtime"),
                    "EG_NAMESPACE": self.namespace,
                    "EG_SHARED_NAMESPACE": "True",
                    "EG_RESPONSE_IP": "127.0.0.1",
                    "EG_RESPONSE_PORT": str(free_port()),
                    "EG_KERNEL_LAUNCH_TIMEOUT": str(int(self.launch_timeout or 120)),
                    "EG_LIST_KERNELS": "true",
                    "KERNEL_USERNAME": "jovyan",
                }
            )
            self.eg_env = env
        with self.gateway_log.open("ab") as log:
            self.gateway = subprocess.Popen(
                [
                    str(BIN / "jupyter-enterprisegateway"),
                    "--ip=127.0.0.1",
                    f"--port={self.port}",
                    f"--EnterpriseGatewayApp.default_kernel_name={KERNEL_NAME}",
                ],
                env=self.eg_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        wait_gateway_ready(self.base, self.gateway, self.gateway_log, "stock gateway")


if __name__ == "__main__":
    # `make venv`: fetch EG's source release once (the only download, at set-up time)
    if sys.argv[1:] != ["--fetch"]:
        sys.exit("usage: bench/_stock_eg.py --fetch")
    print(ensure_sources(fetch=True))
