"""A warm-pool kernel through the whole product, as JupyterLab uses it.

The example's gateway and notebook run as pods in the sandbox; the test adds a
JupyterKernelSpec with ``warmPool.size: 1`` (same image and template as the example's). The
operator renders its kernel.json and keeps one kernel ``Pooled``; the gateway picks the
kernelspec up without a restart. The user opens a notebook with it (``POST /api/sessions`` on
the notebook server): the cell runs in the pool's kernel, with the same ``KERNEL_USERNAME``
the notebook server sends for a cold kernel, and the pool refills.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from elastic_jupyter import harness
from elastic_jupyter.crds import warm_pool

pytestmark = pytest.mark.slow

SPEC = "python-warm"
CODE = "import os, json; print(json.dumps([os.environ.get('KERNEL_USERNAME'), os.getcwd()]))"


def _pooled(path: Any) -> list[str]:
    return [
        o["metadata"]["name"]
        for o in path.kubectl.items(
            "jk", "-l", f"{warm_pool.LABEL_POOL}={SPEC},{warm_pool.LABEL_POOL_STATE}=pooled"
        )
        if (o.get("status") or {}).get("phase") == "Pooled"
    ]


def _run(path: Any, kernel_name: str, notebook: str) -> tuple[dict[str, Any], list[Any]]:
    session: dict[str, Any] = path.client.start_session(notebook, kernel_name)
    with path.client.channel(str(session["kernel"]["id"])) as channel:
        result = channel.execute(CODE, timeout_s=60)
    assert result.status == "ok", result
    return session, json.loads(result.stdout)


def test_notebook_session_claims_a_pooled_kernel_and_the_pool_refills(elastic_stack: Any) -> None:
    path = elastic_stack
    example = path.kubectl.json("get", "jks", "python-kubernetes")["spec"]
    manifest = {
        "apiVersion": "kubeflow.tkestack.io/v1alpha1",
        "kind": "JupyterKernelSpec",
        "metadata": {"name": SPEC},
        "spec": {
            "language": "python",
            "image": example["image"],
            "template": example["template"],
            "warmPool": {"size": 1},
        },
    }
    path.kubectl.run("apply", "-f", "-", stdin=json.dumps(manifest))
    waiting = harness.wait_until("one Pooled kernel", lambda: _pooled(path) or None, 90)
    path._wait_kernelspec(path.client, [SPEC])
    assert "Pooled" in path.kubectl.run("get", "jk")

    cold_session, cold = _run(path, path.kernel_name, "cold.ipynb")
    path.client.delete_session(str(cold_session["id"]))
    session, warm = _run(path, SPEC, "warm.ipynb")

    claimed = path.kernel_objects(str(session["kernel"]["id"]))
    assert [o["metadata"]["name"] for o in claimed] == waiting  # the pool's kernel ran it
    assert claimed[0]["metadata"]["labels"][warm_pool.LABEL_POOL_STATE] == "claimed"
    assert warm[0] == cold[0] and warm[0]  # the user's KERNEL_USERNAME reached it
    path.client.delete_session(str(session["id"]))
    refilled = harness.wait_until(
        "the pool refilled", lambda: [n for n in _pooled(path) if n not in waiting] or None, 90
    )
    assert refilled
    path.kubectl.run("delete", "jks", SPEC, "--wait=false")
