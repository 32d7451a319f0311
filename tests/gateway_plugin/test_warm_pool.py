"""Warm kernel pools end to end: the real operator keeps the pool, real EG processes claim.

The module runs its own operator for its ``pool-*`` namespace with a short claim timeout
(``ELASTIC_JUPYTER_POOL_CLAIM_TIMEOUT=15``) so a claim cut short is cleaned up within the test.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from elastic_jupyter import crds
from elastic_jupyter.crds import warm_pool
from elastic_jupyter.gateway_plugin.kernel_resource import LaunchInput
from elastic_jupyter.gateway_plugin.kube import ApiError, kernels_path
from elastic_jupyter.gateway_plugin.settings import GatewaySettings
from elastic_jupyter.gateway_plugin.warm_pool import claim_kernel
from elastic_jupyter.operator.service_accounts import operator_kubeconfig

from .conftest import BIN, KERNEL_IMAGE, Cluster, Gateway, kernelspec, wait_until

pytestmark = pytest.mark.slow

SPEC = "py-pool"
POOL_SIZE = 2


def _pool(cluster: Cluster, namespace: str, state: str = warm_pool.POOL_STATE_POOLED) -> list[Any]:
    selector = f"{warm_pool.LABEL_POOL}={SPEC},{warm_pool.LABEL_POOL_STATE}={state}"
    items: list[Any] = cluster.api.request(
        "GET", kernels_path(namespace), query={"labelSelector": selector}
    )["items"]
    return items


def _waiting(cluster: Cluster, namespace: str) -> list[str]:
    return sorted(
        o["metadata"]["name"]
        for o in _pool(cluster, namespace)
        if (o.get("status") or {}).get("phase") == crds.PHASE_POOLED
        and not o["metadata"].get("deletionTimestamp")
    )


def _full(cluster: Cluster, namespace: str, timeout: float = 60) -> list[str]:
    return list(
        wait_until(
            lambda: (names := _waiting(cluster, namespace)) and len(names) == POOL_SIZE and names,
            timeout,
            f"{POOL_SIZE} Pooled kernels in {namespace}",
            interval=0.2,
        )
    )


@pytest.fixture(scope="module")
def pool_ns(gw_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A namespace with its own operator and a JupyterKernelSpec with a warm pool of 2."""
    namespace = f"pool-{uuid.uuid4().hex[:6]}"
    gw_cluster.api.request("POST", "/api/v1/namespaces", body={"metadata": {"name": namespace}})
    log_path = tmp_path_factory.mktemp("pool-operator") / "operator.log"
    env = {
        **os.environ,
        "KUBECONFIG": str(operator_kubeconfig(gw_cluster.sandbox)),
        "ELASTIC_JUPYTER_POOL_CLAIM_TIMEOUT": "15",
    }
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                str(BIN / "elastic-jupyter-operator"),
                *("--namespace", namespace),
                *("--liveness", "none", "--metrics-port", "0"),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    body = {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_KERNEL_SPEC.kind,
        "metadata": {"name": SPEC, "namespace": namespace},
        "spec": {"language": "python", "image": KERNEL_IMAGE, "warmPool": {"size": POOL_SIZE}},
    }
    path = f"/apis/{crds.API_VERSION}/namespaces/{namespace}/{crds.JUPYTER_KERNEL_SPEC.plural}"
    gw_cluster.api.request("POST", path, body=body)
    try:
        try:
            _full(gw_cluster, namespace, 90)
        except AssertionError:
            print(log_path.read_text(errors="replace")[-5000:])
            raise
        yield namespace
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        with contextlib.suppress(ApiError):
            gw_cluster.api.request("DELETE", f"/api/v1/namespaces/{namespace}")


@pytest.fixture(scope="module")
def pool_gateway(gateway_factory: Callable[..., Gateway], pool_ns: str) -> Gateway:
    spec = kernelspec(config={warm_pool.CONFIG_WARM_POOL: {"namespace": pool_ns}})
    return gateway_factory(
        pool_ns,
        {SPEC: spec},
        env={"EG_MIRROR_WORKING_DIRS": "true"},
        args=[
            "--RemoteMappingKernelManager.cull_idle_timeout=4",
            "--RemoteMappingKernelManager.cull_interval=1",
            "--RemoteMappingKernelManager.cull_connected=True",
        ],
    )


def _kernel_of(cluster: Cluster, namespace: str, kernel_id: str) -> dict[str, Any]:
    items = cluster.api.request(
        "GET", kernels_path(namespace), query={"labelSelector": f"kernel_id={kernel_id}"}
    )["items"]
    assert len(items) == 1, items
    found: dict[str, Any] = items[0]
    return found


def test_pool_is_visible_and_not_in_the_gateway_kernel_list(
    gw_cluster: Cluster, pool_ns: str, pool_gateway: Gateway
) -> None:
    out = gw_cluster.kubectl("get", "jk", "-n", pool_ns)
    assert out.count("Pooled") == POOL_SIZE, out
    status, kernels = pool_gateway.request("GET", "/api/kernels")
    assert status == 200 and kernels == []


def test_warm_start_applies_identity_and_pool_refills(
    gw_cluster: Cluster, pool_ns: str, pool_gateway: Gateway
) -> None:
    before = set(_full(gw_cluster, pool_ns))
    # The kernel runs as the pod's non-root user: a directory it may enter.
    workdir = Path(tempfile.mkdtemp(prefix="alice-work-"))
    workdir.chmod(0o755)
    status, reply, _ = pool_gateway.start_kernel(
        SPEC,
        env={
            "KERNEL_USERNAME": "alice",
            "KERNEL_MY_SETTING": "from-the-client",
            "KERNEL_WORKING_DIR": str(workdir),
        },
    )
    assert status == 201, reply
    kernel_id = reply["id"]
    result = pool_gateway.execute(
        kernel_id,
        "import os; print(os.environ['KERNEL_USERNAME'], os.environ['KERNEL_MY_SETTING'], "
        "os.environ['KERNEL_ID'], os.getcwd())",
    )
    assert result.status == "ok", result
    assert result.stdout.split() == ["alice", "from-the-client", kernel_id, str(workdir)]
    jk = _kernel_of(gw_cluster, pool_ns, kernel_id)
    assert jk["metadata"]["name"] in before  # it ran in a kernel of the pool
    labels = jk["metadata"]["labels"]
    assert labels[warm_pool.LABEL_POOL_STATE] == warm_pool.POOL_STATE_CLAIMED
    assert labels[crds.LABEL_KERNEL_USERNAME] == "alice"
    assert "claimed pool kernel" in pool_gateway.log_text()
    # Refilled in the background; the claimed kernel never comes back to the pool.
    after = set(_full(gw_cluster, pool_ns))
    assert jk["metadata"]["name"] not in after

    # The gateway marks the claim completed: the operator never ends the user's kernel.
    def completed() -> bool:
        obj = _kernel_of(gw_cluster, pool_ns, kernel_id)
        claim = json.loads(obj["metadata"]["annotations"][warm_pool.ANNOTATION_CLAIM])
        return bool(claim.get("completed")) and claim["kernelId"] == kernel_id

    wait_until(completed, 10, "the claim marked completed", interval=0.2)
    assert pool_gateway.request("DELETE", f"/api/kernels/{kernel_id}")[0] == 204


def test_request_that_differs_from_the_pool_starts_cold(
    gw_cluster: Cluster, pool_ns: str, pool_gateway: Gateway
) -> None:
    before = set(_full(gw_cluster, pool_ns))
    status, reply, _ = pool_gateway.start_kernel(SPEC, env={"KERNEL_CPUS": "100m"})
    assert status == 201, reply
    jk = _kernel_of(gw_cluster, pool_ns, reply["id"])
    assert warm_pool.LABEL_POOL not in jk["metadata"]["labels"]
    assert set(_waiting(gw_cluster, pool_ns)) == before
    log = pool_gateway.log_text()
    assert "starts cold: request differs from the pool in spec.containers[kernel].resources" in log
    assert pool_gateway.request("DELETE", f"/api/kernels/{reply['id']}")[0] == 204


def _launch_input(pool_ns: str, kernel_id: str) -> LaunchInput:
    return LaunchInput(
        kernel_id=kernel_id,
        kernelspec_name=SPEC,
        response_address="127.0.0.1:9",
        public_key="unused",
        port_range="0..0",
        env={"KERNEL_USERNAME": "racer"},
        image_name=KERNEL_IMAGE,
    )


def test_concurrent_claims_never_share_a_kernel_and_a_cut_claim_is_cleaned_up(
    gw_cluster: Cluster, pool_ns: str, pool_gateway: Gateway
) -> None:
    """Six claimers (as six gateway replicas would) race for a pool of two: two win, each a
    different kernel. None sends the identity (as if each crashed right after its claim): the
    operator deletes the claimed kernels after the claim timeout, no user code having run."""
    waiting = set(_full(gw_cluster, pool_ns))
    settings = GatewaySettings.from_env({"EG_NAMESPACE": pool_ns, "EG_NAME": "gw"})
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        results = list(
            pool.map(
                lambda i: claim_kernel(
                    gw_cluster.api,
                    settings,
                    _launch_input(pool_ns, f"race-{i}"),
                    pool_ns,
                    f"replica-{i}",
                ),
                range(6),
            )
        )
    won = [r.obj["metadata"]["name"] for r in results if r.obj is not None]
    assert len(won) == POOL_SIZE and set(won) == waiting
    for name in won:
        obj = gw_cluster.api.request("GET", kernels_path(pool_ns, name))
        assert obj["metadata"]["labels"][warm_pool.LABEL_POOL_STATE] == "claimed"
    # Refilled although the claims never completed; then the cut claims are deleted.
    refilled = set(_full(gw_cluster, pool_ns))
    assert not refilled & waiting

    def gone() -> bool:
        names = {o["metadata"]["name"] for o in gw_cluster.kernels(pool_ns)}
        return not names & set(won)

    wait_until(gone, 60, "claimed kernels whose claim never completed deleted", interval=0.2)


def test_pool_refills_after_a_pooled_pod_is_deleted(
    gw_cluster: Cluster, pool_ns: str, pool_gateway: Gateway
) -> None:
    before = _full(gw_cluster, pool_ns)
    victim = before[0]
    gw_cluster.api.request("DELETE", f"/api/v1/namespaces/{pool_ns}/pods/{victim}")

    def replaced() -> bool:
        names = _waiting(gw_cluster, pool_ns)
        return len(names) == POOL_SIZE and victim not in names

    wait_until(replaced, 60, "the deleted pod's kernel replaced", interval=0.2)
    names = {o["metadata"]["name"] for o in gw_cluster.kernels(pool_ns)}
    assert victim not in names


def test_culling_ends_idle_claimed_kernels_but_never_pooled_ones(
    gw_cluster: Cluster, pool_ns: str, pool_gateway: Gateway
) -> None:
    waiting = set(_full(gw_cluster, pool_ns))
    status, reply, _ = pool_gateway.start_kernel(SPEC)
    assert status == 201, reply
    kernel_id = reply["id"]
    assert pool_gateway.execute(kernel_id, "print(1)").status == "ok"
    claimed = _kernel_of(gw_cluster, pool_ns, kernel_id)["metadata"]["name"]
    assert claimed in waiting
    wait_until(
        lambda: pool_gateway.request("GET", "/api/kernels")[1] == [],
        60,
        "the idle claimed kernel culled",
        interval=0.5,
    )
    culled = [line for line in pool_gateway.log_text().splitlines() if "Culling" in line]
    assert any(kernel_id in line for line in culled)  # EG's culler, not the operator, ended it
    time.sleep(3)  # more cull intervals: the pool kernels are not the culler's
    still = set(_waiting(gw_cluster, pool_ns))
    assert waiting - {claimed} <= still
