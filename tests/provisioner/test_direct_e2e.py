"""Direct mode end to end, by hand: a plain jupyter_server 2 with the kubeflow provisioner.

The user's side, as JupyterLab calls the server: ``POST /api/sessions``, the kernel websocket,
execute, iopub until idle; the on-call engineer's side: kill -9 of the notebook server.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from elastic_jupyter import crds, harness
from elastic_jupyter.provisioner.settings import default_notebook_name
from tests.provisioner.conftest import KERNEL_NAME, DirectSetup, kernelspec

pytestmark = [pytest.mark.slow, pytest.mark.kubectl]


def open_notebook(direct: DirectSetup, kernel_name: str = KERNEL_NAME) -> tuple[str, str]:
    session = direct.client.start_session(f"direct-{uuid.uuid4().hex[:6]}.ipynb", kernel_name)
    return str(session["id"]), str(session["kernel"]["id"])


def test_cell_runs_in_a_kernel_pod(direct: DirectSetup) -> None:
    _, kernel_id = open_notebook(direct)
    with direct.client.channel(kernel_id) as channel:
        result = channel.execute("import os; print(os.environ['KERNEL_ID'], 6 * 7)", timeout_s=60)
    assert result.status == "ok", result
    assert result.stdout.split() == [kernel_id, "42"]
    jk = direct.kernel_of(kernel_id)
    assert jk is not None and jk["status"]["phase"] == crds.PHASE_RUNNING
    labels = jk["metadata"]["labels"]
    assert crds.LABEL_GATEWAY not in labels
    assert labels[crds.LABEL_NOTEBOOK] == default_notebook_name()  # by hand: jupyter-<os user>
    annotations = jk["metadata"]["annotations"]
    assert annotations[crds.ANNOTATION_NOTEBOOK_NAMESPACE] == direct.namespace
    pods = direct.pods_of(kernel_id)
    assert [p["status"]["phase"] for p in pods] == ["Running"]


def test_interrupt_stops_a_running_cell(direct: DirectSetup) -> None:
    _, kernel_id = open_notebook(direct)
    with direct.client.channel(kernel_id) as channel:
        assert channel.execute("x = 1", timeout_s=60).status == "ok"
        channel.states.clear()  # the "busy" to wait for is this cell's, not the last one's
        msg_id = channel.send_execute("import time; time.sleep(60)")
        assert channel.wait_for_state("busy", 10)
        time.sleep(0.5)  # the cell is inside sleep()
        started = time.monotonic()
        direct.client.interrupt(kernel_id)
        result = channel.wait_reply(msg_id, 20)
        assert result.status == "error" and result.ename == "KeyboardInterrupt", result
        assert time.monotonic() - started < 20
        assert channel.execute("print(x + 1)", timeout_s=20).stdout.strip() == "2"


def test_restart_gives_a_fresh_kernel_and_removes_the_old_pod(direct: DirectSetup) -> None:
    _, kernel_id = open_notebook(direct)
    with direct.client.channel(kernel_id) as channel:
        assert channel.execute("x = 5", timeout_s=60).status == "ok"
    old = direct.kernel_of(kernel_id)
    assert old is not None
    old_name = old["metadata"]["name"]
    direct.client.restart(kernel_id)
    with direct.client.channel(kernel_id) as channel:
        gone = channel.execute("print(x)", timeout_s=60)
        assert gone.status == "error" and gone.ename == "NameError", gone
        assert channel.execute("print(6 * 7)", timeout_s=20).stdout.strip() == "42"

    def old_pod_gone() -> bool:
        return old_name not in {p["metadata"]["name"] for p in direct.pods_of(kernel_id)}

    harness.wait_until("the old kernel pod gone", old_pod_gone, 60, 0.5)
    new = direct.kernel_of(kernel_id)
    assert new is not None and new["metadata"]["name"] != old_name
    assert direct.kubectl.get("jk", old_name) is None


def test_shutdown_deletes_kernel_pod_and_secret(direct: DirectSetup) -> None:
    session_id, kernel_id = open_notebook(direct)
    with direct.client.channel(kernel_id) as channel:
        assert channel.execute("x = 1", timeout_s=60).status == "ok"
    jk = direct.kernel_of(kernel_id)
    assert jk is not None
    name = jk["metadata"]["name"]
    assert direct.kubectl.get("secret", crds.kernel_secret_name(name)) is not None
    direct.client.delete_session(session_id)

    def all_gone() -> bool:
        return (
            direct.kernel_of(kernel_id) is None
            and not direct.pods_of(kernel_id)
            and direct.kubectl.get("secret", crds.kernel_secret_name(name)) is None
        )

    harness.wait_until("JupyterKernel, pod and Secret gone", all_gone, 60, 0.5)
    assert direct.client.kernel(kernel_id) is None


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"kernel_template_name": "no-such-template"}, ["no-such-template", "not found"]),
        ({"image_name": "registry.invalid/nothing:1"}, ["ErrImagePull"]),
        (
            {
                "resources": {
                    "requests": {"nvidia.com/gpu": "64"},
                    "limits": {"nvidia.com/gpu": "64"},
                }
            },
            ["Unschedulable", "nvidia.com/gpu"],
        ),
    ],
    ids=["missing-template", "unpullable-image", "unschedulable"],
)
def test_start_failure_reaches_the_user_within_seconds(
    direct: DirectSetup, config: dict[str, Any], words: list[str]
) -> None:
    name = f"broken-{uuid.uuid4().hex[:4]}"
    direct.add_kernelspec(
        name,
        kernelspec(
            config.get("kernel_template_name"), config.get("image_name"), config.get("resources")
        ),
    )
    started = time.monotonic()
    with pytest.raises(harness.NotebookAPIError) as failed:
        open_notebook(direct, name)
    elapsed = time.monotonic() - started
    for word in words:
        assert word in failed.value.message, failed.value.message
    assert elapsed < 20, f"the failure took {elapsed:.1f} s"
    assert not [
        jk for jk in direct.kernels() if jk["spec"].get("kernelName") == name
    ] or harness.wait_until(
        "the failed kernel's JupyterKernel deleted",
        lambda: (
            not [
                jk
                for jk in direct.kernels()
                if jk["spec"].get("kernelName") == name
                and not jk["metadata"].get("deletionTimestamp")
            ]
        ),
        30,
        0.5,
    )


def test_kernel_outlives_a_killed_notebook_server(direct: DirectSetup) -> None:
    path = f"keep-{uuid.uuid4().hex[:6]}.ipynb"
    session = direct.client.start_session(path, KERNEL_NAME)
    kernel_id = str(session["kernel"]["id"])
    with direct.client.channel(kernel_id) as channel:
        assert channel.execute("x = 'kept'", timeout_s=60).status == "ok"
    direct.server.kill9()
    direct.server.start()

    def listed() -> bool:
        return kernel_id in {k["id"] for k in direct.client.kernels()}

    harness.wait_until("the kernel listed again", listed, 30, 0.3)
    sessions = direct.client.request("GET", "/api/sessions")
    assert [s["kernel"]["id"] for s in sessions if s["path"] == path] == [kernel_id]
    with direct.client.channel(kernel_id) as channel:
        result = channel.execute("print(x)", timeout_s=30)
    assert result.status == "ok" and result.stdout.strip() == "kept", result
    # and it is still a working kernel of this server: interrupt and restart reach it
    direct.client.restart(kernel_id)
    with direct.client.channel(kernel_id) as channel:
        assert channel.execute("print(1)", timeout_s=60).stdout.strip() == "1"
    # the restarted kernel's new JupyterKernel carries the notebook session on
    jk = direct.kernel_of(kernel_id)
    assert jk is not None
    stored = json.loads(jk["metadata"]["annotations"][crds.ANNOTATION_NOTEBOOK_SESSION])
    assert stored["path"] == path


def test_a_stopped_server_detaches_instead_of_shutting_kernels_down(direct: DirectSetup) -> None:
    path = f"stop-{uuid.uuid4().hex[:6]}.ipynb"
    kernel_id = str(direct.client.start_session(path, KERNEL_NAME)["kernel"]["id"])
    with direct.client.channel(kernel_id) as channel:
        assert channel.execute("y = 'still here'", timeout_s=60).status == "ok"
    name = (direct.kernel_of(kernel_id) or {})["metadata"]["name"]
    direct.server.stop()  # SIGTERM: jupyter_server's stop shuts every kernel down by default
    jk = direct.kubectl.get("jk", name)
    assert jk is not None and not jk["metadata"].get("deletionTimestamp")
    direct.server.start()
    harness.wait_until(
        "the kernel listed again",
        lambda: kernel_id in {k["id"] for k in direct.client.kernels()},
        30,
        0.3,
    )
    with direct.client.channel(kernel_id) as channel:
        result = channel.execute("print(y)", timeout_s=30)
    assert result.stdout.strip() == "still here", result
