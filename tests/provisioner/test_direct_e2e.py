"""Direct mode end to end, by hand: a plain jupyter_server 2 with the kubeflow provisioner.

The user's side, as JupyterLab calls the server: ``POST /api/sessions``, the kernel websocket,
execute, iopub until idle; the on-call engineer's side: kill -9 of the notebook server.
"""

from __future__ import annotations

import uuid

import pytest

from elastic_jupyter import crds
from tests.provisioner.conftest import KERNEL_NAME, DirectSetup

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
    assert labels[crds.LABEL_NOTEBOOK] == "jupyter-root" or labels[crds.LABEL_NOTEBOOK]
    annotations = jk["metadata"]["annotations"]
    assert annotations[crds.ANNOTATION_NOTEBOOK_NAMESPACE] == direct.namespace
    pods = direct.pods_of(kernel_id)
    assert [p["status"]["phase"] for p in pods] == ["Running"]
