"""A tenant's hostile kernel template, seen by the notebook user: through JupyterLab's own call
(``POST /api/sessions`` on the notebook server, which asks the gateway), the kernel start fails
within seconds with the operator's ``PolicyViolation`` naming the field — no pod, no waiting for
the launch timeout.
"""

from __future__ import annotations

import time

import pytest

from elastic_jupyter import crds, harness

pytestmark = [pytest.mark.slow, pytest.mark.kubectl]

TEMPLATE = """
apiVersion: kubeflow.tkestack.io/v1alpha1
kind: JupyterKernelTemplate
metadata:
  name: host-pid
spec:
  template:
    spec:
      hostPID: true
      containers:
        - name: kernel
---
apiVersion: kubeflow.tkestack.io/v1alpha1
kind: JupyterKernelSpec
metadata:
  name: host-pid
spec:
  image: ghcr.io/elastic-jupyter/kernel-py:0.1.0
  template:
    name: host-pid
"""


def test_policy_violation_reaches_the_notebook_user(elastic_stack: harness.UserPath) -> None:
    path = elastic_stack
    kubectl = path.kubectl
    kubectl.run("apply", "-f", "-", stdin=TEMPLATE)
    try:
        deadline = time.monotonic() + 30
        while "host-pid" not in path.client.kernelspecs()["kernelspecs"]:
            assert time.monotonic() < deadline, "the gateway never served the kernelspec"
            time.sleep(0.2)
        started = time.monotonic()
        with pytest.raises(Exception) as refused:
            path.client.start_session("hostile.ipynb", "host-pid")
        elapsed = time.monotonic() - started
        message = str(getattr(refused.value, "message", refused.value))
        assert crds.REASON_POLICY_VIOLATION in message, message
        assert "spec.template.spec.hostPID" in message, message
        assert elapsed < 15, elapsed
        pods = kubectl.items("pods", "-l", f"{crds.LABEL_KERNELSPEC}=host-pid")
        assert pods == []
    finally:
        kubectl.run("delete", "-f", "-", "--wait=false", stdin=TEMPLATE, check=False)
