"""Two gateway replicas, active-active: a kernel started through one is served by the other.

Real operator, a JupyterGateway with ``replicas: 2``, real EG pods and ipykernel kernels. The
test talks to each gateway pod directly (what a Service without session affinity does per
connection): start through replica A; list, execute, interrupt, restart and shut down through
replica B; A follows (same list, and it neither restarts nor resurrects the kernel B ended).
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from elastic_jupyter import crds, harness
from tests.e2e import stack

pytestmark = [pytest.mark.slow, pytest.mark.kubectl]


@pytest.fixture(scope="module")
def replicas(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[harness.UserPath, harness.NotebookClient, harness.NotebookClient]]:
    """(user path, client of replica A, client of replica B)."""
    stack.skip_unless_built()
    sandbox = request.getfixturevalue("sandbox")
    namespace = f"rep-{uuid.uuid4().hex[:6]}"
    log = tmp_path_factory.mktemp("replica-logs") / "operator.log"
    with stack.operator_serving(sandbox, namespace, log) as kubectl:
        example = stack.ROOT / "examples" / "elastic"
        for path in sorted(example.glob("*kernel*.yaml")) + sorted(example.glob("*gateway*")):
            kubectl.run("apply", "-f", str(path))
        gateway = "jupytergateway-elastic"
        patch = json.dumps({"spec": {"replicas": 2}})
        kubectl.run("patch", crds.JUPYTER_GATEWAY.plural, gateway, "--type=merge", "-p", patch)
        path = harness.UserPath(kubectl, say=lambda _: None, timeout_s=120)
        path.wait_ready(crds.JUPYTER_GATEWAY.plural, gateway)
        secret = kubectl.get("secret", f"{gateway}-auth") or {}
        token = base64.b64decode(secret["data"]["token"]).decode()
        selector = f"{crds.LABEL_COMPONENT}={crds.COMPONENT_GATEWAY}"

        def two_ready() -> list[str] | None:
            ips = [
                p["status"]["podIP"]
                for p in kubectl.items("pods", "-l", selector)
                if not p["metadata"].get("deletionTimestamp")
                and any(
                    c.get("type") == "Ready" and c.get("status") == "True"
                    for c in p["status"].get("conditions") or []
                )
            ]
            return ips if len(ips) == 2 else None

        ips = harness.wait_until("two gateway replicas Ready", two_ready, 120, 0.3)
        a, b = (harness.NotebookClient(f"http://{ip}:8888", token, 60) for ip in ips)
        path.kernel_name = "python-kubernetes"
        harness.wait_until(
            "kernelspec served",
            lambda: path.kernel_name in b.kernelspecs().get("kernelspecs", {}),
            60,
        )
        yield path, a, b
        kubectl.run("delete", "jupytergateways,jupyterkernels", "--all", "--wait=false")


def gateway_logs(path: harness.UserPath) -> str:
    selector = f"{crds.LABEL_COMPONENT}={crds.COMPONENT_GATEWAY}"
    return "\n".join(
        f"--- {p['metadata']['name']}\n"
        + path.kubectl.run("logs", p["metadata"]["name"], "--tail=60", check=False)
        for p in path.kubectl.items("pods", "-l", selector)
    )


def test_started_through_one_replica_served_by_the_other(replicas: Any) -> None:
    path, a, b = replicas
    body = {"name": path.kernel_name, "env": {"KERNEL_USERNAME": "alice"}}
    kernel_id = str(a.request("POST", "/api/kernels", body)["id"])
    started = time.monotonic()
    harness.wait_until("replica B to list the kernel", lambda: b.kernel(kernel_id), 10, 0.05)
    print(f"replica B lists the kernel {time.monotonic() - started:.3f} s after A answered")
    assert {k["id"] for k in a.kernels()} == {k["id"] for k in b.kernels()}
    if os.environ.get("EJ_E2E_SHOW_LOGS"):
        print(gateway_logs(path))
    jk_names = {jk["metadata"]["name"] for jk in path.kernel_objects(kernel_id)}

    with b.channel(kernel_id) as channel:  # execute through B
        assert channel.execute("x = 42; print(x)", timeout_s=60).stdout.strip() == "42"
        msg_id = channel.send_execute("import time; time.sleep(60)")
        time.sleep(1.0)
        b.interrupt(kernel_id)  # interrupt through B
        result = channel.wait_reply(msg_id, 20)
        assert result.ename == "KeyboardInterrupt", result
        assert channel.execute("print(x)", timeout_s=30).stdout.strip() == "42"
    with a.channel(kernel_id) as channel:  # A still serves it, same state
        assert channel.execute("print(x)", timeout_s=30).stdout.strip() == "42"

    try:
        b.restart(kernel_id)  # restart through B: a fresh kernel in a new pod
    except Exception:
        print(gateway_logs(path))
        raise

    def fresh() -> bool:
        try:
            with b.channel(kernel_id) as channel:
                return (
                    channel.execute("print('x' in dir())", timeout_s=10).stdout.strip() == "False"
                )
        except Exception:
            return False

    harness.wait_until("the restarted kernel to answer through B", fresh, 60, 0.5)
    assert {jk["metadata"]["name"] for jk in path.kernel_objects(kernel_id)} - jk_names

    def fresh_through_a() -> bool:
        try:
            with a.channel(kernel_id) as channel:
                return (
                    channel.execute("print('x' in dir())", timeout_s=10).stdout.strip() == "False"
                )
        except Exception:
            return False

    harness.wait_until("A to follow the restart", fresh_through_a, 30, 0.5)

    b.request("DELETE", f"/api/kernels/{kernel_id}")  # shut down through B
    harness.wait_until("the kernel gone", lambda: not path.kernel_objects(kernel_id), 30, 0.2)
    harness.wait_until("A to forget it", lambda: a.kernel(kernel_id) is None, 10, 0.1)
    time.sleep(5)  # A's restarter would have resurrected it by now
    assert path.kernel_objects(kernel_id) == [], "a replica restarted a kernel shut down elsewhere"
    assert a.kernel(kernel_id) is None and b.kernel(kernel_id) is None


def test_killing_one_replica_leaves_every_kernel_usable_through_the_other(replicas: Any) -> None:
    path, a, b = replicas
    count = int(os.environ.get("EJ_E2E_RECOVERY_KERNELS", "3"))
    body = {"name": path.kernel_name, "env": {"KERNEL_USERNAME": "alice"}}
    values = {}
    for i in range(count):
        kernel_id = str(a.request("POST", "/api/kernels", body)["id"])
        with a.channel(kernel_id) as channel:
            assert channel.execute(f"x = {500 + i}", timeout_s=60).status == "ok"
        values[kernel_id] = 500 + i
    before = {kid: {j["metadata"]["uid"] for j in path.kernel_objects(kid)} for kid in values}
    selector = f"{crds.LABEL_COMPONENT}={crds.COMPONENT_GATEWAY}"
    (pod,) = [
        p
        for p in path.kubectl.items("pods", "-l", selector)
        if a.base_url.endswith(f"//{p['status'].get('podIP')}:8888")
    ]
    os.kill(int(pod["status"]["containerStatuses"][0]["containerID"].rpartition("://")[2]), 9)
    for kernel_id, value in values.items():

        def answer(kid: str = kernel_id) -> str | None:
            try:
                with b.channel(kid) as channel:
                    return str(channel.execute("print(x)", timeout_s=10).stdout.strip())
            except Exception:
                return None

        got = harness.wait_until(f"kernel {kernel_id} through B", answer, 60, 0.5)
        assert got == str(value)
    after = {kid: {j["metadata"]["uid"] for j in path.kernel_objects(kid)} for kid in values}
    assert after == before, "JupyterKernels were deleted or replaced"
    for kernel_id in values:
        b.request("DELETE", f"/api/kernels/{kernel_id}")
