"""A notebook's cell runs in a kernel pod made from the kernel image we ship (images/kernel-py).

A sandbox of its own runs with ``--container-runtime podman`` and an image map entry sending
the example's kernel image (``ghcr.io/elastic-jupyter/kernel-py:0.1.0``) to the image built
here by ``make images`` (``elastic-jupyter/kernel-py:dev``), so the kernel pod runs in that
image through podman while the gateway and the notebook server run as processes. Through the
notebook server's API, as JupyterLab calls it: open a notebook, run a cell; the cell reports the
pod, the image's Python, the pod's runAsUser; the container carries the pod's uid; shutting the
kernel down removes the container.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from elastic_jupyter import harness
from elastic_jupyter.sandbox.cluster import SandboxCluster
from elastic_jupyter.sandbox.podman_runtime import POD_UID_LABEL
from tests.e2e import stack
from tests.helpers import wait_for
from tests.images.podman import BUILD_TIMEOUT, build_images, image_ref, podman, require_podman

pytestmark = [pytest.mark.slow, pytest.mark.kubectl, pytest.mark.timeout(BUILD_TIMEOUT + 600)]

NAMESPACE = f"e2e-image-{uuid.uuid4().hex[:6]}"
CELL = "import os, sys\nprint(os.getuid(), sys.prefix, os.environ.get('POD_NAME'))"


@pytest.fixture(scope="module")
def image_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.UserPath]:
    stack.skip_unless_built()
    require_podman()
    build_images("kernel-py")
    tmp = tmp_path_factory.mktemp("image-stack")
    image_map = tmp / "image-map.yaml"
    rules = [
        {
            "match": "*kernel-py*",
            "use": "kernel",
            "runtime": "podman",
            "image": image_ref("kernel-py"),
        }
    ]
    image_map.write_text(json.dumps({"images": rules}))
    with SandboxCluster(
        apply_crds=True,
        image_map=image_map,
        extra_args=["--container-runtime", "podman"],
    ) as sandbox:
        log = tmp / "operator.log"
        with (
            stack.operator_serving(sandbox, NAMESPACE, log, delete_namespace=False) as kubectl,
            stack.example_up(kubectl, log) as path,
        ):
            yield path


def pod_containers(pod_uid: str) -> list[dict[str, Any]]:
    out = podman("ps", "--all", "--format=json", "--filter", f"label={POD_UID_LABEL}={pod_uid}")
    found: list[dict[str, Any]] = json.loads(out or "[]")
    return found


def test_cell_runs_in_the_kernel_image(image_stack: harness.UserPath) -> None:
    path = image_stack
    path.open_notebook()
    pod = path.run_in_kernel_pod()
    assert path.channel is not None
    result = path.channel.execute(CELL, 60)
    assert result.status == "ok", result.stderr
    uid, prefix, pod_name = result.stdout.split()
    assert (uid, prefix, pod_name) == ("1000", "/opt/venv", pod.name)  # the image's venv

    pods = path.kernel_pods(path.kernel_id)
    assert [p["metadata"]["name"] for p in pods] == [pod.name]
    pod_uid = pods[0]["metadata"]["uid"]
    containers = pod_containers(pod_uid)
    assert len(containers) == 1
    assert containers[0]["Image"].endswith(image_ref("kernel-py"))
    assert containers[0]["State"] == "running"
    # The container's output is the pod's log: the launcher started the image's Python kernel.
    logs = path.kubectl.run("logs", pod.name, "-c", "kernel")
    assert "kernel started" in logs and "/opt/venv/bin/python" in logs

    path.shut_down()
    wait_for(lambda: pod_containers(pod_uid) == [], timeout=30, message="container removal")
