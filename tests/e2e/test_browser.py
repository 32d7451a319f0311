"""A real browser: headless Debian Chromium opens JupyterLab, creates a notebook, runs a cell.

First against a plain JupyterLab from ``.venv-kernel`` (proves the browser path itself), then
against the JupyterLab served by a JupyterNotebook in the sandbox, whose kernels run in kernel
pods through the JupyterGateway: the cell's output names the kernel pod.

Needs ``scripts/install-browser.sh`` (``make`` runs it); skips with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from elastic_jupyter import harness
from tests.e2e import browser

ROOT = Path(__file__).resolve().parents[2]
KERNEL_VENV = ROOT / ".venv-kernel"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(browser.missing_reason() is not None, reason=str(browser.missing_reason())),
]

#: The cell every browser test runs: the pod's name from the downward API (set by the operator
#: on kernel pods, see operator/kernel_pod.py), else the host name.
WHERE_AM_I = 'import os; print(os.environ.get("POD_NAME") or os.environ.get("HOSTNAME"))'


def _wait_http(url: str, timeout_s: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {process.returncode} before serving")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout_s} s")


@pytest.fixture(scope="module")
def local_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A plain JupyterLab (jupyter_server 2, local ipykernel); yields its URL with the token."""
    if not (KERNEL_VENV / "bin" / "jupyter-lab").exists():
        pytest.skip(f"{KERNEL_VENV}/bin/jupyter-lab is missing (make venv builds it)")
    root = tmp_path_factory.mktemp("lab")
    port, token = harness.free_port(), secrets.token_hex(16)
    log = (root / "jupyterlab.log").open("wb")
    env = dict(os.environ, PATH=f"{KERNEL_VENV / 'bin'}:{os.environ.get('PATH', '')}")
    env["JUPYTER_CONFIG_DIR"] = str(root / ".jupyter")  # no user config leaks in
    process = subprocess.Popen(
        [
            str(KERNEL_VENV / "bin" / "jupyter-lab"),
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--ServerApp.token={token}",
            f"--ServerApp.root_dir={root}",
            "--allow-root",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=root,
        start_new_session=True,
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/api/status?token={token}", 60, process)
        yield f"http://127.0.0.1:{port}/lab?token={token}"
    finally:
        harness.stop_process(process, grace_s=15)
        log.close()


def _run_in_browser(
    lab_url: str, code: str, name: str, kernel: str | None = None, timeout_s: float = 60.0
) -> str:
    with browser.chromium() as context:
        page = context.new_page()
        try:
            return browser.run_cell_in_new_notebook(page, lab_url, code, kernel, timeout_s)
        except Exception:
            shot = browser.screenshot(page, name)
            print(f"screenshot of the failure: {shot}")
            raise


def test_plain_jupyterlab_runs_a_cell_in_chromium(local_lab: str) -> None:
    output = _run_in_browser(local_lab, "import sys; print(sys.prefix, 6 * 7)", "plain-lab")
    assert output == f"{KERNEL_VENV} 42"  # a local kernel from the kernel venv ran the cell


# Regression test of the kernel stuck at "Unknown": JupyterLab 4 asks for the v1 websocket
# subprotocol, the gateway-backed notebook server answers without one, Chromium fails that
# handshake and reconnects at once with the same session_id - which Enterprise Gateway 3.3 took
# for a stale copy of an orphaned websocket. The notebook's jupyter_server configuration from the
# operator fixes it (operator/notebook_config.py explains the mechanism).
def test_jupyterlab_on_the_sandbox_runs_the_cell_in_a_kernel_pod(
    elastic_stack: harness.UserPath,
) -> None:
    path = elastic_stack
    spec = path.client.kernelspecs()["kernelspecs"][path.kernel_name]
    display_name = spec["spec"]["display_name"]
    before = {s["id"] for s in path.client.request("GET", "/api/sessions")}
    try:
        output = _run_in_browser(path.lab_url, WHERE_AM_I, "sandbox-lab", display_name, 40)
        pod_name = output.split()[0]
        kernels = path.kubectl.items("jk")
        running = {
            (jk.get("status") or {}).get("podName"): jk
            for jk in kernels
            if (jk.get("status") or {}).get("phase") == "Running"
        }
        assert pod_name in running, f"{output!r} names no running kernel pod: {list(running)}"
        pod = path.kubectl.get("pod", pod_name)
        assert pod is not None
        assert pod["metadata"]["labels"]["component"] == "kernel"
    finally:
        for session in path.client.request("GET", "/api/sessions"):
            if session["id"] not in before:
                path.client.delete_session(session["id"])


def test_jupyterlab_shows_why_a_kernel_cannot_start(elastic_stack: harness.UserPath) -> None:
    """A kernelspec whose image cannot be pulled: JupyterLab's error dialog carries the
    gateway's reason (ErrImagePull and the image name), not jupyter_server's "Ensure gateway
    url is valid" advice. The screenshot of the dialog is kept (its path is printed)."""
    path = elastic_stack
    name, image = "python-broken-image", "registry.invalid/no-such-kernel:1"
    kernelspec = {
        "apiVersion": "kubeflow.tkestack.io/v1alpha1",
        "kind": "JupyterKernelSpec",
        "metadata": {"name": name},
        "spec": {
            "language": "python",
            "displayName": "Broken image kernel",
            "image": image,
            "template": {"name": "jupyterkerneltemplate-elastic"},
        },
    }
    path.kubectl.run("apply", "-f", "-", stdin=json.dumps(kernelspec))
    before = {s["id"] for s in path.client.request("GET", "/api/sessions")}
    try:
        deadline = time.monotonic() + 15
        while name not in path.client.kernelspecs()["kernelspecs"]:
            assert time.monotonic() < deadline, f"{name} never served by the notebook server"
            time.sleep(0.2)
        with browser.chromium() as context:
            page = context.new_page()
            try:
                text = browser.error_dialog_of_new_notebook(
                    page, path.lab_url, "Broken image kernel", 60
                )
            finally:
                shot = browser.screenshot(page, "kernel-start-error")
                print(f"screenshot of JupyterLab's error dialog: {shot}")
        print("dialog text:", text)
        assert "ErrImagePull" in text or "ImagePullBackOff" in text, text
        assert image in text
        assert "Ensure gateway url" not in text
    finally:
        for session in path.client.request("GET", "/api/sessions"):
            if session["id"] not in before:
                path.client.delete_session(session["id"])
        path.kubectl.run("delete", "jks", name, "--ignore-not-found", check=False)
