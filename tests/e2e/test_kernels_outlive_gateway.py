"""Kernels outlive their gateway: the on-call engineer's side of issue #12.

On the sandbox with the real operator, the real gateway Deployment, a real notebook server
(jupyter_server 2, ``--gateway-url``) and ipykernel in kernel pods. The user starts kernels
through ``/api/sessions`` and sets ``x`` in each; then the gateway pod is deleted, its process is
killed with SIGKILL, or the JupyterGateway is edited (a rollout). Once the gateway is Ready again
every kernel answers through the notebook server with its ``x``, and no JupyterKernel was
deleted.

``EJ_E2E_RECOVERY_KERNELS`` sets how many kernels each case holds (default 3, so ``make test``
stays within minutes on two cores; the issue's acceptance run uses 20).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from elastic_jupyter import crds, harness
from tests.e2e import stack

KERNELS = int(os.environ.get("EJ_E2E_RECOVERY_KERNELS", "3"))
#: The suite's 300 s per test fits 3 kernels; the acceptance run (20 kernels started one by
#: one through the notebook server, on two shared cores) needs longer.
pytestmark = [pytest.mark.slow, pytest.mark.kubectl, pytest.mark.timeout(max(300, 45 * KERNELS))]
#: After the gateway is Ready again, how long a kernel may take to answer (generous: two cores
#: shared by several test runs; the measured time is in docs/benchmarks.md).
USABLE_WITHIN_S = 60.0


@pytest.fixture(scope="module")
def example(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[harness.UserPath]:
    """The elastic example (gateway, kernelspec, template, notebook) in its own namespace."""
    stack.skip_unless_built()
    sandbox = request.getfixturevalue("sandbox")
    namespace = f"ko-{uuid.uuid4().hex[:6]}"
    log = tmp_path_factory.mktemp("outlive-logs") / "operator.log"
    with (
        stack.operator_serving(sandbox, namespace, log) as kubectl,
        stack.example_up(kubectl, log, say=lambda _: None) as path,
    ):
        yield path


def gateway_pods(path: harness.UserPath) -> list[dict[str, Any]]:
    selector = f"{crds.LABEL_COMPONENT}={crds.COMPONENT_GATEWAY}"
    pods: list[dict[str, Any]] = path.kubectl.items("pods", "-l", selector)
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def _ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _restarts(pod: dict[str, Any]) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
    return int(statuses[0].get("restartCount") or 0)


def wait_gateway_ready(path: harness.UserPath, old: dict[str, tuple[str, int]]) -> None:
    """Wait until every gateway pod is Ready and none is an old one with its old restart count
    (``old``: pod name -> (uid, restartCount) before the disruption)."""

    def check() -> bool:
        pods = gateway_pods(path)
        if not pods:
            return False
        for pod in pods:
            meta = pod["metadata"]
            if old.get(meta["name"]) == (meta["uid"], _restarts(pod)) or not _ready(pod):
                return False
        return True

    harness.wait_until("the gateway Ready again", check, 120, 0.2)


def kernel_names(path: harness.UserPath, kernel_ids: Iterable[str]) -> set[str]:
    """Names of the JupyterKernels of these kernel ids."""
    wanted = set(kernel_ids)
    return {
        jk["metadata"]["name"]
        for jk in path.kubectl.items("jk")
        if jk["metadata"]["labels"].get(crds.LABEL_KERNEL_ID) in wanted
    }


def start_kernels(path: harness.UserPath, count: int) -> dict[str, int]:
    """Open ``count`` notebooks; kernel i holds ``x = 1000 + i``. Returns kernel id -> x."""
    values: dict[str, int] = {}
    for i in range(count):
        session = path.client.start_session(
            f"outlive-{uuid.uuid4().hex[:6]}.ipynb", path.kernel_name
        )
        kernel_id = str(session["kernel"]["id"])
        with path.client.channel(kernel_id) as channel:
            result = channel.execute(f"x = {1000 + i}", timeout_s=120)
            assert result.status == "ok", result
        values[kernel_id] = 1000 + i
    return values


def read_x(path: harness.UserPath, kernel_id: str) -> str:
    with path.client.channel(kernel_id) as channel:
        result = channel.execute("print(x)", timeout_s=10)
    assert result.status == "ok", f"kernel {kernel_id}: {result.ename} {result.evalue}"
    return result.stdout.strip()


def assert_usable(path: harness.UserPath, values: dict[str, int]) -> None:
    """Every kernel answers through the notebook server with its own ``x``."""
    for kernel_id, value in values.items():

        def answer(kid: str = kernel_id) -> str | None:
            with contextlib.suppress(Exception):
                return read_x(path, kid)
            return None

        got = harness.wait_until(f"kernel {kernel_id} usable", answer, USABLE_WITHIN_S, 0.5)
        assert got == str(value), f"kernel {kernel_id} lost its state: x is {got!r}"


def shut_down(path: harness.UserPath) -> None:
    for session in path.client.request("GET", "/api/sessions") or []:
        with contextlib.suppress(Exception):
            path.client.delete_session(str(session["id"]))


def delete_pod(path: harness.UserPath) -> None:
    for pod in gateway_pods(path):
        path.kubectl.run("delete", "pod", pod["metadata"]["name"], "--wait=false")


def kill_9(path: harness.UserPath) -> None:
    for pod in gateway_pods(path):
        container_id = pod["status"]["containerStatuses"][0]["containerID"]
        pid = int(str(container_id).rpartition("://")[2])
        os.kill(pid, signal.SIGKILL)


def spec_edit(path: harness.UserPath) -> None:
    """Any spec edit rolls the gateway Deployment out (new pods, old ones get SIGTERM)."""
    patch = {"spec": {"env": [{"name": "OUTLIVE_EDIT", "value": uuid.uuid4().hex[:6]}]}}
    path.kubectl.run(
        "patch",
        crds.JUPYTER_GATEWAY.plural,
        path.gateway_name,
        "--type=merge",
        "-p",
        json.dumps(patch),
    )


@pytest.mark.parametrize("disrupt", [delete_pod, kill_9, spec_edit], ids=lambda f: f.__name__)
def test_kernels_keep_their_state_across_a_gateway_restart(
    example: harness.UserPath, disrupt: Any
) -> None:
    path = example
    values = start_kernels(path, KERNELS)
    before = kernel_names(path, values)
    assert len(before) == KERNELS
    old = {p["metadata"]["name"]: (p["metadata"]["uid"], _restarts(p)) for p in gateway_pods(path)}
    try:
        disrupt(path)
        time.sleep(0.5)
        wait_gateway_ready(path, old)
        ready = time.monotonic()
        assert_usable(path, values)
        # Reported, not asserted (timings belong to bench/gateway_recovery.py): the issue's
        # "usable within 10 s of the gateway being Ready", through the notebook server.
        print(
            f"{disrupt.__name__}: {len(values)}/{len(values)} kernels usable with their x "
            f"{time.monotonic() - ready:.1f} s after the gateway was Ready"
        )
        assert kernel_names(path, values) == before, "JupyterKernels were deleted or replaced"
        listed = {k["id"] for k in path.client.kernels()}
        assert set(values) <= listed
    finally:
        shut_down(path)
