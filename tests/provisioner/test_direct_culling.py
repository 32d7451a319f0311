"""jupyter_server's own culler ends an idle direct-mode kernel: its JupyterKernel, pod and
Secret go (a server started with a small ``cull_idle_timeout``, as the docs show)."""

from __future__ import annotations

import uuid

import pytest

from elastic_jupyter import crds, harness
from tests.provisioner.conftest import KERNEL_NAME, DirectSetup

pytestmark = [pytest.mark.slow, pytest.mark.kubectl]

#: Read by the ``direct`` fixture: the notebook server's extra arguments.
SERVER_ARGS = (
    "--MappingKernelManager.cull_idle_timeout=4",
    "--MappingKernelManager.cull_interval=1",
)


def test_idle_kernel_is_culled_with_its_pod(direct: DirectSetup) -> None:
    session = direct.client.start_session(f"cull-{uuid.uuid4().hex[:6]}.ipynb", KERNEL_NAME)
    kernel_id = str(session["kernel"]["id"])
    with direct.client.channel(kernel_id) as channel:
        assert channel.execute("x = 1", timeout_s=60).status == "ok"
    jk = direct.kernel_of(kernel_id)
    assert jk is not None
    name = jk["metadata"]["name"]

    def culled() -> bool:
        return (
            direct.client.kernel(kernel_id) is None
            and direct.kernel_of(kernel_id) is None
            and not direct.pods_of(kernel_id)
            and direct.kubectl.get("secret", crds.kernel_secret_name(name)) is None
        )

    harness.wait_until("the idle kernel culled, its pod and Secret gone", culled, 60, 0.5)
