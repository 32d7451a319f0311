"""The seed article's two examples, applied verbatim, run a first cell in a kernel pod.

A reader of the article that introduced the original project applies its YAML
(``tests/fixtures/seed_article/``, every field as printed there) with kubectl and opens the
notebook. Here that is: the sandbox, the real operator (serving ``default``, the namespace the
article's manifests refer to), the real Enterprise Gateway with our plugin, the real notebook
server (jupyter_server 2 with ``--gateway-url``); the user is the scripted path of
``examples/demo_session.py`` talking to the notebook server as JupyterLab does
(``/api/kernelspecs``, ``POST /api/sessions``, the kernel websocket).

* "Remote kernels": a gateway with only ``cullIdleTimeout``, no JupyterKernelSpec anywhere. It
  serves the built-in ``python_kubernetes`` kernelspec, the notebook's default kernel is that
  one, and the kernel runs in a pod of the operator's default kernel image.
* "Remote kernels with custom configuration": a kernelspec and a template without any image.
  The kernel runs in a pod of the operator's default kernel image too, and the
  JupyterKernelSpec's status says so.

Both run in the one ``default`` namespace, one after the other (each is deleted afterwards: a
kernelspec left in the namespace would replace the first example's built-in one).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from elastic_jupyter import crds, harness
from elastic_jupyter.operator import settings
from elastic_jupyter.sandbox.cluster import SandboxCluster
from tests.e2e import stack
from tests.helpers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.kubectl]

ARTICLE = stack.ROOT / "tests" / "fixtures" / "seed_article"
NAMESPACE = "default"  # the article's notebook and kernelspec name it
DEFAULT_IMAGE = settings.DEFAULT_KERNEL_IMAGE


@pytest.fixture(scope="module")
def full_stack() -> None:
    missing = stack.missing_parts()
    if missing:
        pytest.skip("the full stack is not built yet: missing " + "; ".join(missing))


@pytest.fixture(scope="module")
def operator_log(
    sandbox: SandboxCluster, full_stack: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    log = tmp_path_factory.mktemp("seed-article") / "operator.log"
    with harness.operator_process(sandbox.env(), log, "--namespace", NAMESPACE, *harness.NO_PORTS):
        yield log


@pytest.fixture
def user(
    sandbox: SandboxCluster, full_stack: None, operator_log: Path
) -> Iterator[harness.UserPath]:
    """The user's path in ``default``; afterwards every object the example made is deleted."""
    kubectl = harness.Kubectl(str(sandbox.kubeconfig), NAMESPACE)
    assert not kubectl.items("jupyterkernelspecs"), "default must start without kernelspecs"
    path = harness.UserPath(kubectl, say=print, timeout_s=90)
    applied: list[Path] = []
    path.applied = applied
    try:
        yield path
    except Exception:
        print(path.diagnose())
        raise
    finally:
        if path.channel is not None:
            path.channel.close()
        print("operator log (tail):\n" + operator_log.read_text(errors="replace")[-4000:])
        for directory in applied:
            kubectl.run("delete", "-f", str(directory), "--wait=false", check=False)
        kubectl.run("delete", "jupyterkernels", "--all", "--wait=false", check=False)

        kinds = "jupyternotebooks,jupytergateways,jupyterkernelspecs,jupyterkernels"
        kernel_pods = ("pods", "-l", f"{crds.LABEL_COMPONENT}={crds.COMPONENT_KERNEL}")

        def left() -> list[str]:
            objects = kubectl.items(kinds) + kubectl.items(*kernel_pods)
            return [f"{o['kind']}/{o['metadata']['name']}" for o in objects]

        try:
            wait_for(lambda: not left(), 60, 0.5, "the example's objects and pods to be gone")
        except AssertionError as error:
            raise AssertionError(f"{error}: left {left()}") from None
        # The notebook and gateway pods may still be terminating: nothing depends on them.


def apply_verbatim(path: harness.UserPath, directory: Path) -> None:
    """``kubectl apply -f <folder>`` as the article does, no namespace flag beyond the default."""
    path.title(f"Apply the article's YAML ({directory.relative_to(stack.ROOT)})")
    path.applied.append(directory)
    path.show("apply", "-f", str(directory))


def first_cell(
    path: harness.UserPath, gateway: str, notebook: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Open the notebook with the notebook server's default kernel and run a cell; return the
    served kernelspecs and the kernel pod (checked to be the JupyterKernel's)."""
    path.notebook, path.lab_url = path.connect_notebook(gateway, notebook)

    answers: list[dict[str, Any]] = []

    def served() -> dict[str, Any] | None:
        specs: dict[str, Any] = path.client.kernelspecs()
        answers.append(specs)
        return specs if specs.get("kernelspecs") else None

    specs = wait_for(served, 30, 0.3, "a served kernelspec")
    # Every answer, the fresh server's very first included, names a default JupyterLab can
    # start: one the gateway serves (jupyter_server's own default, python3, is not).
    unserved = [a for a in answers if a.get("kernelspecs") and a["default"] not in a["kernelspecs"]]
    assert not unserved, f"the notebook server's default is not served: {unserved}"
    path.kernel_name = specs["default"]
    path.open_notebook("article.ipynb")
    where = path.run_in_kernel_pod()
    pod = path.kubectl.get("pod", where.name)
    assert pod is not None, f"{where.name} is no pod"
    return specs, pod


def assert_default_kernel_pod(pod: dict[str, Any]) -> None:
    """The operator's default kernel image, in the kernel container, non-root."""
    (container,) = pod["spec"]["containers"]
    assert container["name"] == "kernel"
    assert container["image"] == DEFAULT_IMAGE
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["metadata"]["labels"][crds.LABEL_COMPONENT] == crds.COMPONENT_KERNEL


def test_remote_kernels_example_runs_a_cell_in_a_kernel_pod(user: harness.UserPath) -> None:
    apply_verbatim(user, ARTICLE / "remote-kernels")
    specs, pod = first_cell(user, "jupytergateway-elastic", "jupyternotebook-elastic")
    assert list(specs["kernelspecs"]) == [crds.BUILTIN_KERNELSPEC]
    assert specs["default"] == crds.BUILTIN_KERNELSPEC
    spec = specs["kernelspecs"][crds.BUILTIN_KERNELSPEC]["spec"]
    assert spec["display_name"] == crds.BUILTIN_KERNELSPEC_DISPLAY_NAME
    assert_default_kernel_pod(pod)
    # A notebook opened without naming a kernel gets the gateway's default too.
    body = {"path": "unnamed.ipynb", "name": "unnamed.ipynb", "type": "notebook", "kernel": {}}
    session = user.client.request("POST", "/api/sessions", body)
    assert session["kernel"]["name"] == crds.BUILTIN_KERNELSPEC
    gateway = user.kubectl.get("jupytergateway", "jupytergateway-elastic")
    assert gateway["status"]["kernelSpecs"] == [crds.BUILTIN_KERNELSPEC]


def test_custom_configuration_example_runs_a_cell_in_a_kernel_pod(user: harness.UserPath) -> None:
    apply_verbatim(user, ARTICLE / "custom-kernels")
    specs, pod = first_cell(
        user,
        "jupytergateway-elastic-with-custom-kernels",
        "jupyternotebook-elastic-with-custom-kernels",
    )
    assert list(specs["kernelspecs"]) == ["python-kubernetes"]
    spec = specs["kernelspecs"]["python-kubernetes"]["spec"]
    assert spec["display_name"] == "Python on Kubernetes as a JupyterKernelSpec"
    assert_default_kernel_pod(pod)
    kernelspec = user.kubectl.get("jupyterkernelspec", "python-kubernetes")
    assert kernelspec["status"]["valid"] is True
    assert kernelspec["status"]["image"] == DEFAULT_IMAGE
