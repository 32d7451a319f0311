"""Operator qualities: few API writes, idempotent restarts (kill -9 mid-burst), the CLI."""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner

from elastic_jupyter import crds
from elastic_jupyter.operator import main
from elastic_jupyter.operator.service_accounts import operator_kubeconfig
from elastic_jupyter.sandbox.cluster import SandboxCluster
from tests.helpers import wait_for
from tests.operator.conftest import (
    KERNELS,
    create_kernel,
    new_namespace,
    run_operator,
    wait_status,
)

OPERATOR_AGENTS = {"kopf", "elastic-jupyter-operator"}
WRITE_VERBS = {"create", "update", "patch", "delete"}


def operator_writes(stats: dict[str, Any]) -> dict[tuple[str, str], int]:
    """Writes made by the operator (kopf's own requests and ours), by (verb, resource)."""
    result: dict[tuple[str, str], int] = {}
    for row in stats["counts"]:
        if row["userAgent"] in OPERATOR_AGENTS and row["verb"] in WRITE_VERBS:
            resource = row["resource"] + (f"/{row['subresource']}" if row["subresource"] else "")
            key = (row["verb"], resource)
            result[key] = result.get(key, 0) + row["count"]
    return result


def diff(after: dict[tuple[str, str], int], before: dict[tuple[str, str], int]) -> dict[Any, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


@pytest.mark.slow
def test_kernel_start_costs_at_most_four_writes(
    sandbox: SandboxCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process operator (KopfRunner), namespaced: one kernel start, counted by the sandbox."""
    monkeypatch.setenv("KUBECONFIG", str(operator_kubeconfig(sandbox)))  # its own account
    ns = new_namespace(sandbox, prefix="opr-")
    args = ["run", "--standalone", "--namespace", ns, "-m", "elastic_jupyter.operator.handlers"]
    try:
        with KopfRunner(args) as runner:
            before = operator_writes(sandbox.stats())
            create_kernel(sandbox, ns, "k-writes")
            wait_status(sandbox, ns, "k-writes", phase="Running")
            # The Running event is posted in the background: wait for it before counting.
            wait_for(
                lambda: diff(operator_writes(sandbox.stats()), before).get(("create", "events")),
                timeout=10,
            )
            writes = diff(operator_writes(sandbox.stats()), before)
        assert runner.exception is None, runner.output
    finally:
        sandbox.delete_namespace(ns)
    assert writes == {
        ("create", "pods"): 1,
        ("patch", f"{crds.JUPYTER_KERNEL.crd_name}/status"): 1,
        ("create", "events"): 1,
    }, writes
    assert sum(writes.values()) <= 4


@pytest.mark.slow
def test_kill_9_mid_burst_neither_duplicates_nor_loses_kernels(
    sandbox: SandboxCluster, tmp_path: Path
) -> None:
    total = 200
    ns = new_namespace(sandbox, prefix="opkill-")
    pods_path = f"/api/v1/namespaces/{ns}/pods"

    def pod_count() -> int:
        return len(sandbox.request("GET", pods_path)["items"])

    try:
        with (
            concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool,
            run_operator(sandbox, tmp_path, "--namespace", ns, name="first") as first,
        ):
            # The first kernel shows the operator is up and watching; the rest arrive as a
            # paced burst (about 1.5 s), and the operator is killed in the middle of it.
            create_kernel(sandbox, ns, "k-000")
            wait_for(lambda: pod_count() >= 1, timeout=30, message="the first pod")

            def burst() -> None:
                for i in range(1, total):
                    create_kernel(sandbox, ns, f"k-{i:03d}")
                    time.sleep(0.005)

            creations = pool.submit(burst)
            time.sleep(0.5)
            first.kill()
            created_before_kill = pod_count()
            creations.result()
        assert 0 < created_before_kill < total
        with run_operator(sandbox, tmp_path, "--namespace", ns, name="second") as second:
            # The sandbox node takes 110 pods, so not all 200 can run: every kernel must have
            # its pod and a status describing it (Running, or Pending "Too many pods").
            def all_reported() -> bool:
                items = sandbox.request("GET", KERNELS.format(ns=ns))["items"]
                return len(items) == total and all(
                    (i.get("status") or {}).get("podName") == i["metadata"]["name"]
                    and (i.get("status") or {}).get("phase") in ("Running", "Pending")
                    for i in items
                )

            wait_for(all_reported, timeout=60, message="a status for every kernel after restart")
            pods = sandbox.request("GET", pods_path)["items"]
            kernels = sandbox.request("GET", KERNELS.format(ns=ns))["items"]
            assert second.process.poll() is None, second.log_text()[-2000:]
    finally:
        sandbox.delete_namespace(ns)
    assert len(pods) == total
    owners = {k["metadata"]["uid"]: k["metadata"]["name"] for k in kernels}
    for pod in pods:
        (owner,) = pod["metadata"]["ownerReferences"]
        assert owners[owner["uid"]] == pod["metadata"]["name"]
        assert pod["metadata"]["labels"][crds.LABEL_KERNEL] == pod["metadata"]["name"]


@pytest.mark.slow
def test_pod_deleted_while_the_operator_was_down_is_reported_at_restart(
    sandbox: SandboxCluster, tmp_path: Path
) -> None:
    ns = new_namespace(sandbox, prefix="opdown-")
    try:
        with run_operator(sandbox, tmp_path, "--namespace", ns, name="before"):
            create_kernel(sandbox, ns, "k-down")
            wait_status(sandbox, ns, "k-down", phase="Running")
        sandbox.request("DELETE", f"/api/v1/namespaces/{ns}/pods/k-down")
        with run_operator(sandbox, tmp_path, "--namespace", ns, name="after"):
            status = wait_status(sandbox, ns, "k-down", phase="Failed", reason="PodDeleted")
    finally:
        sandbox.delete_namespace(ns)
    assert status["podName"] == "k-down"


def test_cli_arguments() -> None:
    args = main.parse_args(["--namespace", "a", "-n", "b*", "--metrics-port", "0"])
    assert args.namespace == ["a", "b*"]
    assert args.metrics_port == 0
    assert args.liveness == main.DEFAULT_LIVENESS
    assert args.peering is None
    assert main.parse_args([]).namespace == []
    with pytest.raises(SystemExit):
        main.parse_args(["--namespace", "a", "--all-namespaces"])


#: Resources the kernel handlers and kopf use; anything else belongs to other handlers' RBAC.
KERNEL_RESOURCES = {
    "pods",
    "configmaps",
    "events",
    "namespaces",
    "customresourcedefinitions.apiextensions.k8s.io",
    crds.JUPYTER_KERNEL.crd_name,
    crds.JUPYTER_KERNEL_SPEC.crd_name,
    crds.JUPYTER_KERNEL_TEMPLATE.crd_name,
}


def rbac_allows(rules: list[dict[str, Any]], verb: str, resource: str, sub: str) -> bool:
    name, _, group = resource.partition(".")
    full = f"{name}/{sub}" if sub else name
    return any(
        group in rule.get("apiGroups", [])
        and full in rule.get("resources", [])
        and verb in rule.get("verbs", [])
        for rule in rules
    )


def test_rbac_covers_every_request_the_operator_made(sandbox: SandboxCluster) -> None:
    """Checked against what this session's operators really did (run after the tests above)."""
    import yaml

    rbac_dir = Path(crds.__file__).parent / "rbac"
    rules: list[dict[str, Any]] = []
    for path in sorted(rbac_dir.glob("operator-*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "ClusterRole":
                rules.extend(doc.get("rules") or [])
    made = {
        (row["verb"], row["resource"], row["subresource"])
        for row in sandbox.stats()["counts"]
        if row["userAgent"] in OPERATOR_AGENTS and row["resource"] in KERNEL_RESOURCES
    }
    if ("create", "pods", "") not in made:
        pytest.skip("no operator ran in this session yet (run the whole module)")
    missing = sorted(m for m in made if not rbac_allows(rules, *m))
    assert not missing, f"requests the operator's ClusterRoles do not allow: {missing}"
