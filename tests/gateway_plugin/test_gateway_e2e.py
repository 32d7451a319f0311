"""End to end: a real Enterprise Gateway loading KubeflowProcessProxy, on the sandbox cluster.

One gateway serves the whole module; kernels run in pods through the operator and the real
in-pod launcher. Checked: start, execute, kubectl view, interrupt, restart, shutdown; every
fail-fast case answers with its reason in under 5 s; client env the gateway owns is refused;
the original article's argv (no public key) works; an idle kernel costs no API request.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from elastic_jupyter import crds
from elastic_jupyter.gateway_plugin.kube import ApiError, kernels_path

from .conftest import KERNEL_IMAGE, Cluster, Gateway, kernelspec, wait_until

pytestmark = pytest.mark.slow

GATEWAY_AGENT = "elastic-jupyter-gateway"


@pytest.fixture(scope="module")
def ns(gw_cluster: Cluster) -> Iterator[str]:
    namespace = gw_cluster.create_namespace("gw-e2e")
    gw_cluster.apply_template(namespace, "kernel-tpl", {"containers": [{"name": "kernel"}]})
    secret_env = {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k"}}}
    gw_cluster.apply_template(
        namespace, "secret-tpl", {"containers": [{"name": "kernel", "env": [secret_env]}]}
    )
    exits = {"name": "kernel", "image": "busybox", "command": ["sh", "-c", "exit 3"]}
    gw_cluster.apply_template(namespace, "exit-tpl", {"containers": [exits]})
    yield namespace
    with contextlib.suppress(ApiError):
        gw_cluster.api.request("DELETE", f"/api/v1/namespaces/{namespace}")


@pytest.fixture(scope="module")
def gateway(gateway_factory: Callable[..., Gateway], ns: str) -> Gateway:
    tpl = (ns, "kernel-tpl")
    specs = {
        "py": kernelspec(template=tpl),
        "py-article": kernelspec(template=tpl, public_key=False),
        "py-no-template": kernelspec(template=(ns, "missing-tpl")),
        "py-bad-image": kernelspec(image="registry.invalid/nope:1", template=tpl),
        "py-secret": kernelspec(template=(ns, "secret-tpl")),
        "py-exit": kernelspec(image=None, template=(ns, "exit-tpl")),
        "py-argv": kernelspec(
            argv=["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            config={"kernel_template": f"{ns}/kernel-tpl"},
        ),
    }
    return gateway_factory(ns, specs)


def kernel_objects(cluster: Cluster, ns: str, kernel_id: str) -> list[dict[str, Any]]:
    return [
        k
        for k in cluster.kernels(ns)
        if k["metadata"]["labels"].get(crds.LABEL_KERNEL_ID) == kernel_id
    ]


def kernel_pods(cluster: Cluster, ns: str, kernel_id: str) -> list[dict[str, Any]]:
    return [
        p
        for p in cluster.pods(ns)
        if (p["metadata"].get("labels") or {}).get(crds.LABEL_KERNEL_ID) == kernel_id
    ]


def kernel_gone(cluster: Cluster, ns: str, kernel_id: str) -> Callable[[], bool]:
    return lambda: not kernel_objects(cluster, ns, kernel_id)


def test_kernel_lifecycle(gateway: Gateway, gw_cluster: Cluster, ns: str) -> None:
    status, body, _ = gateway.start_kernel("py")
    assert status == 201, body
    kid = body["id"]

    (jk,) = kernel_objects(gw_cluster, ns, kid)
    name = jk["metadata"]["name"]
    labels = jk["metadata"]["labels"]
    assert labels[crds.LABEL_COMPONENT] == crds.COMPONENT_KERNEL
    assert labels[crds.LABEL_GATEWAY] == "gw"
    assert labels[crds.LABEL_KERNELSPEC] == "py"
    assert jk["status"]["phase"] == crds.PHASE_RUNNING
    if shutil.which("kubectl"):
        assert name in gw_cluster.kubectl("get", "jk", "-n", ns, "-l", f"kernel_id={kid}")
        pods = gw_cluster.kubectl(
            "get", "pods", "-n", ns, "-l", f"kernel_id={kid},component=kernel"
        )
        assert name in pods

    reply = gateway.execute(kid, "x = 41 + 1\nprint(x)")
    assert (reply.status, reply.stdout.strip()) == ("ok", "42")

    started = time.monotonic()
    reply = gateway.execute_and_interrupt(kid, "import time\ntime.sleep(60)")
    assert reply.ename == "KeyboardInterrupt"
    assert time.monotonic() - started < 20
    assert gateway.execute(kid, "print(x)").stdout.strip() == "42"

    status, _ = gateway.request("POST", f"/api/kernels/{kid}/restart", {})
    assert status == 200
    (new,) = wait_until(
        lambda: (
            [k for k in kernel_objects(gw_cluster, ns, kid) if k["metadata"]["name"] != name]
            if not any(k["metadata"]["name"] == name for k in kernel_objects(gw_cluster, ns, kid))
            else None
        ),
        20,
        "the restarted kernel's new JupyterKernel to replace the old one",
    )
    assert new["metadata"]["name"] != name
    assert gateway.execute(kid, "print('x' in dir())").stdout.strip() == "False"

    status, _ = gateway.request("DELETE", f"/api/kernels/{kid}")
    assert status == 204
    wait_until(
        lambda: not kernel_objects(gw_cluster, ns, kid) and not kernel_pods(gw_cluster, ns, kid),
        20,
        "the JupyterKernel and its pod to be deleted",
    )


def test_idle_kernels_cost_no_api_requests(gateway: Gateway, gw_cluster: Cluster) -> None:
    status, body, _ = gateway.start_kernel("py")
    assert status == 201, body
    kid = body["id"]
    assert gateway.execute(kid, "print(1)").stdout.strip() == "1"
    before = gw_cluster.requests_by(GATEWAY_AGENT)
    time.sleep(4)  # jupyter_client's restarter polls every 3 s; the stock proxy lists pods then
    assert gateway.request("GET", f"/api/kernels/{kid}")[0] == 200
    after = gw_cluster.requests_by(GATEWAY_AGENT)
    assert after == before
    assert gateway.request("DELETE", f"/api/kernels/{kid}")[0] == 204


@pytest.mark.parametrize(
    ("spec", "env", "code", "words"),
    [
        ("py-no-template", {}, 500, "JupyterKernelTemplate"),
        ("py-bad-image", {}, 500, "ErrImagePull"),
        ("py-secret", {}, 500, "CreateContainerConfigError"),
        ("py-exit", {}, 500, "exited with code 3"),
        ("py", {"KERNEL_CPUS": "5000"}, 503, "Unschedulable"),
        ("py", {"KERNEL_NAMESPACE": "kube-system"}, 403, "EJ_ALLOW_KERNEL_NAMESPACE"),
        ("py", {"KERNEL_POD_NAME": "mine"}, 400, "KERNEL_POD_NAME is set by the gateway"),
        ("py", {"KERNEL_MEMORY": "lots"}, 400, "KERNEL_MEMORY"),
    ],
)
def test_launch_fails_fast_with_reason(
    gateway: Gateway,
    gw_cluster: Cluster,
    ns: str,
    spec: str,
    env: dict[str, str],
    code: int,
    words: str,
) -> None:
    status, body, elapsed = gateway.start_kernel(spec, env)
    assert status == code, body
    assert words in body["reason"] and words in body["message"]
    assert elapsed < 5
    wait_until(
        lambda: (
            not [
                k
                for k in gw_cluster.kernels(ns)
                if k["metadata"]["labels"].get(crds.LABEL_KERNELSPEC) == spec
            ]
        ),
        10,
        f"no JupyterKernel of kernelspec {spec} left",
    )


def test_original_argv_without_public_key(gateway: Gateway) -> None:
    status, body, _ = gateway.start_kernel("py-article")
    assert status == 201, body
    kid = body["id"]
    assert gateway.execute(kid, "print(6 * 7)").stdout.strip() == "42"
    assert gateway.request("DELETE", f"/api/kernels/{kid}")[0] == 204


def test_kernel_argv_runs_inside_the_pod(gateway: Gateway, gw_cluster: Cluster, ns: str) -> None:
    """A kernelspec whose argv is the kernel itself (no kubeflow-launcher) still runs in a pod."""
    status, body, _ = gateway.start_kernel("py-argv")
    assert status == 201, body
    kid = body["id"]
    (jk,) = kernel_objects(gw_cluster, ns, kid)
    container = jk["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["KERNEL_ARGV"] == '["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]'
    assert (
        gateway.execute(kid, "import sys\nprint(sys.prefix)")
        .stdout.strip()
        .endswith(".venv-kernel")
    )
    assert gateway.request("DELETE", f"/api/kernels/{kid}")[0] == 204


def test_cli_creates_the_jupyterkernel_standalone(gw_cluster: Cluster, ns: str) -> None:
    """``kubeflow-launcher`` run by hand creates the same JupyterKernel the proxy would."""
    kid = str(uuid.uuid4())
    env = {
        **os.environ,
        "KUBECONFIG": str(gw_cluster.gateway_kubeconfig(ns, "cli")),
        "EG_NAME": "cli",
        "EG_NAMESPACE": ns,
        "KERNEL_USERNAME": "jovyan",
        "KERNEL_IMAGE": KERNEL_IMAGE,
        "KERNEL_NAME": "py",
    }
    args = ["--RemoteProcessProxy.kernel-id", kid, "--RemoteProcessProxy.port-range", "0..0"]
    args += ["--RemoteProcessProxy.response-address", "127.0.0.1:1"]
    args += ["--RemoteProcessProxy.public-key", "MIGfMA0"]
    args += ["--kernel-template-name", "kernel-tpl", "--kernel-template-namespace", ns]
    out = subprocess.run(
        [str(Path(sys.executable).with_name("kubeflow-launcher")), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    (jk,) = kernel_objects(gw_cluster, ns, kid)
    assert jk["metadata"]["name"] in out.stdout
    assert jk["metadata"]["labels"][crds.LABEL_GATEWAY] == "cli"
    assert jk["spec"]["template"]["metadata"]["labels"]["team"] == "tests"
    gw_cluster.api.request("DELETE", kernels_path(ns, jk["metadata"]["name"]))

    args[args.index("kernel-tpl")] = "absent-tpl"
    out = subprocess.run(
        [str(Path(sys.executable).with_name("kubeflow-launcher")), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert f"JupyterKernelTemplate {ns}/absent-tpl not found" in out.stderr


def test_watch_resumes_when_the_api_server_drops_streams(
    gateway_factory: Callable[..., Gateway], gw_cluster: Cluster, ns: str
) -> None:
    """Streams cut every half second: the gateway resumes from its resourceVersion, no re-list."""
    faults = {"dropWatchesAfterSeconds": 0.5, "resources": [crds.JUPYTER_KERNEL.plural]}
    gw_cluster.api.request("POST", "/sandbox/faults", body=faults)
    try:
        gateway = gateway_factory(ns, {"py": kernelspec()}, name="gw-faults")
        before = gw_cluster.requests_by(GATEWAY_AGENT)
        for _ in range(2):
            status, body, _ = gateway.start_kernel("py")
            assert status == 201, body
            kid = body["id"]
            assert gateway.execute(kid, "print(3)").stdout.strip() == "3"
            time.sleep(1.0)  # streams are cut meanwhile; poll() must still see the kernel
            assert gateway.request("GET", f"/api/kernels/{kid}")[0] == 200
            assert gateway.request("DELETE", f"/api/kernels/{kid}")[0] == 204
            wait_until(kernel_gone(gw_cluster, ns, kid), 20, "the kernel to go")
    finally:
        gw_cluster.api.request("POST", "/sandbox/faults", body={})
    after = gw_cluster.requests_by(GATEWAY_AGENT)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    kernels = f"{crds.JUPYTER_KERNEL.plural}.{crds.GROUP}"
    assert delta.get(f"watch {kernels}", 0) >= 3, delta
    assert delta.get(f"list {kernels}", 0) == 1, delta  # the first list only
