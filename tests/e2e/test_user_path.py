"""The user's path, end to end, on the sandbox with the real operator and the real gateway.

Through the notebook server's API (jupyter_server 2 started by the JupyterNotebook, talking to
the JupyterGateway by URL): a cell runs in the kernel pod; kubectl shows the JupyterKernel and
the pod; interrupt; restart; the pod deleted behind the kernel's back and the kernel back by
itself; shutdown; two GPUs shared by three notebooks; culling (last: it reconfigures the
gateway, and puts it back). The steps are those of ``make demo`` (``examples/demo_session.py``,
:mod:`elastic_jupyter.harness.user_path`). The tests share one stack but not their order: each
sets up what it needs (``ensure_kernel``), so they pass alone, reversed or shuffled
(``pytest tests/e2e --order reverse``, ``--order random``).
"""

from __future__ import annotations

import pytest

from elastic_jupyter import crds, harness
from tests.e2e import stack

pytestmark = [pytest.mark.slow, pytest.mark.kubectl]


def test_example_brings_up_gateway_and_notebook(elastic_stack: harness.UserPath) -> None:
    path = elastic_stack
    assert path.notebook is not None and path.kernel_name
    specs = path.client.kernelspecs()["kernelspecs"]
    assert path.kernel_name in specs  # the notebook server lists the gateway's kernels


def test_cell_runs_in_the_kernel_pod(elastic_stack: harness.UserPath) -> None:
    path = elastic_stack
    path.open_notebook()
    pod = path.run_in_kernel_pod()
    path.show_kernel_objects()
    pods = path.kernel_pods(path.kernel_id)
    assert [p["metadata"]["name"] for p in pods] == [pod.name]
    assert pods[0]["metadata"]["labels"][crds.LABEL_COMPONENT] == crds.COMPONENT_KERNEL


def test_interrupt_stops_a_long_cell_and_keeps_the_kernel(elastic_stack: harness.UserPath) -> None:
    elastic_stack.ensure_kernel()
    elastic_stack.interrupt_long_cell()


def test_restart_gives_a_fresh_kernel_in_a_new_pod(elastic_stack: harness.UserPath) -> None:
    old = elastic_stack.ensure_kernel()
    elastic_stack.restart_kernel()
    assert elastic_stack.pod is not None and elastic_stack.pod.name != old.name


def test_kernel_comes_back_after_its_pod_is_deleted(elastic_stack: harness.UserPath) -> None:
    old = elastic_stack.ensure_kernel()
    recorded = elastic_stack.delete_pod_behind_its_back()
    assert elastic_stack.pod is not None and elastic_stack.pod.name != old.name
    if recorded:  # seen before the gateway replaced the JupyterKernel
        assert recorded["phase"] == crds.PHASE_FAILED and recorded["reason"]


def test_shutdown_deletes_the_kernel_and_its_pod(elastic_stack: harness.UserPath) -> None:
    elastic_stack.ensure_kernel()
    kernel_id = elastic_stack.kernel_id
    elastic_stack.shut_down()
    assert elastic_stack.kernel_objects(kernel_id) == []
    assert elastic_stack.kernel_pods(kernel_id) == []


@pytest.mark.skipif(
    bool(stack.missing_parts(gpu=True)),
    reason="GPU sharing needs: " + "; ".join(stack.missing_parts(gpu=True)),
)
def test_two_gpus_three_notebooks(elastic_stack: harness.UserPath) -> None:
    seen = elastic_stack.gpu_sharing()
    assert "nvidia.com/gpu" in seen["refusal"]
    assert seen["refused_after_s"] < 30  # told within seconds, not after the launch timeout


def test_idle_kernel_is_culled(elastic_stack: harness.UserPath) -> None:
    elastic_stack.culling(idle_timeout_s=10, interval_s=2, restore=True)
