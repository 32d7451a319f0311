"""Direct mode end to end: a JupyterNotebook with ``spec.kernels``, no JupyterGateway.

Real components on the sandbox with RBAC on: the operator (its own ServiceAccount), the
notebook server (jupyter_server 2 in the notebook pod, under the ServiceAccount the operator
gave it, with the provisioner's kernel manager and the live kernelspec manager), kernel pods
running ipykernel through ``kubeflow-kernel-launcher``. The user's side is JupyterLab's:
``POST /api/sessions``, the kernel websocket, execute, iopub until idle.

The tenant applies (``kubectl apply``) the seed's custom-kernels JupyterKernelSpec and template
(``examples/custom-kernels``: the original's argv and class name) and a minimal direct-mode
JupyterNotebook. Checked in order: a cell runs in a kernel pod; interrupt; restart; a failure
reason within seconds; a kernelspec added while the server runs; the notebook pod deleted →
the Deployment's new pod adopts the kernel with its variable; shutdown; culling by
``spec.kernels.cullIdleTimeout``; the JupyterNotebook deleted → nothing left.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from elastic_jupyter import crds
from elastic_jupyter.harness import NotebookAPIError, NotebookClient
from elastic_jupyter.sandbox.cluster import SandboxCluster
from tests.examples import support
from tests.helpers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.kubectl]

SEED = support.REPO / "examples" / "custom-kernels"
NOTEBOOK = "direct"
KERNEL_NAME = "python-kubernetes"  # the seed's JupyterKernelSpec
#: The user reads why a kernel cannot start well before a launch timeout (60 s).
REASON_WITHIN_S = 20.0


@dataclass
class Direct:
    sandbox: SandboxCluster
    namespace: str
    log: Path

    def client(self) -> NotebookClient:
        token = support.secret_value(
            self.sandbox, self.namespace, crds.notebook_token_secret_name(NOTEBOOK)
        )
        url = support.service_url(self.sandbox, self.namespace, NOTEBOOK)
        return NotebookClient(url, token, timeout_s=90)

    def kernels(self, selector: str = "") -> list[dict[str, Any]]:
        path = f"/apis/{crds.GROUP}/{crds.VERSION}/namespaces/{self.namespace}/jupyterkernels"
        if selector:
            path += "?" + urllib.parse.urlencode({"labelSelector": selector})
        items: list[dict[str, Any]] = self.sandbox.request("GET", path)["items"]
        return items

    def kernel_of(self, kernel_id: str) -> dict[str, Any] | None:
        found = self.kernels(f"{crds.LABEL_KERNEL_ID}={kernel_id}")
        return found[0] if found else None

    def names(self, resource: str) -> set[str]:
        items = self.sandbox.request("GET", f"/api/v1/namespaces/{self.namespace}/{resource}")
        return {i["metadata"]["name"] for i in items["items"]}

    def server_pods(self) -> set[str]:
        selector = (
            f"{crds.LABEL_COMPONENT}={crds.COMPONENT_NOTEBOOK},{crds.LABEL_NOTEBOOK}={NOTEBOOK}"
        )
        path = f"/api/v1/namespaces/{self.namespace}/pods?" + urllib.parse.urlencode(
            {"labelSelector": selector}
        )
        return {p["metadata"]["name"] for p in self.sandbox.request("GET", path)["items"]}

    def apply(self, manifest: dict[str, Any]) -> None:
        self.sandbox.kubectl("apply", "-n", self.namespace, "-f", "-", input=json.dumps(manifest))

    def why(self) -> str:
        server = self.sandbox.kubectl(
            "logs", "-n", self.namespace, f"deployment/{NOTEBOOK}", "--tail=60", check=False
        )
        kernels = self.sandbox.kubectl(
            "logs", "-n", self.namespace, "-l", "component=kernel", "--tail=30", check=False
        )
        return (
            f"\nnotebook server log:\n{server.stdout[-6000:]}{server.stderr[-500:]}"
            f"\nkernel pods' log:\n{kernels.stdout[-4000:]}{kernels.stderr[-500:]}"
            f"\noperator log:\n{support.tail(self.log)}"
        )


def seed_manifests() -> list[dict[str, Any]]:
    """The seed's kernelspec and template, as the article has users apply them."""
    docs = []
    for path in sorted(SEED.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] in ("JupyterKernelSpec", "JupyterKernelTemplate"):
                docs.append(doc)
    return docs


def notebook_manifest(**kernels: Any) -> dict[str, Any]:
    return {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_NOTEBOOK.kind,
        "metadata": {"name": NOTEBOOK},
        "spec": {"kernels": kernels},
    }


def server_ready(direct: Direct) -> bool:
    try:
        return bool(direct.client().kernelspecs().get("kernelspecs"))
    except Exception:
        return False


@pytest.fixture(scope="module")
def direct(sandbox: SandboxCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Direct]:
    log = tmp_path_factory.mktemp("direct") / "operator.log"
    with support.running_operator(sandbox, "ejdm-*", log):
        namespace = support.new_namespace(sandbox, "ejdm")
        state = Direct(sandbox, namespace, log)
        for doc in seed_manifests():
            state.apply(doc)
        state.apply(notebook_manifest())
        try:
            wait_for(
                lambda: (
                    (support.custom(sandbox, "jupyternotebooks", namespace, NOTEBOOK).get("status")
                     or {}).get("phase") == crds.PHASE_RUNNING
                ),
                120, 0.5, "the direct-mode notebook Running",
            )  # fmt: skip
            wait_for(lambda: server_ready(state), 60, 0.5, "the notebook server answering")
        except AssertionError as error:
            raise AssertionError(f"{error}{state.why()}") from None
        yield state
        sandbox.delete_namespace(namespace)


def test_a_cell_runs_in_a_kernel_pod(direct: Direct) -> None:
    client = direct.client()
    specs = client.kernelspecs()["kernelspecs"]
    assert KERNEL_NAME in specs, specs
    provisioner = specs[KERNEL_NAME]["spec"]["metadata"]["kernel_provisioner"]
    assert provisioner["provisioner_name"] == "kubeflow-provisioner"
    session = client.start_session("cell.ipynb", KERNEL_NAME)
    kernel_id = session["kernel"]["id"]
    kernel = direct.kernel_of(kernel_id)
    assert kernel is not None, direct.why()
    assert kernel["metadata"]["labels"][crds.LABEL_NOTEBOOK] == NOTEBOOK
    assert crds.LABEL_GATEWAY not in kernel["metadata"]["labels"]
    with client.channel(kernel_id) as channel:
        result = channel.execute("import os; print(os.environ['POD_NAME'])")
    assert result.status == "ok", result
    pod_name = result.stdout.strip()
    assert pod_name == (direct.kernel_of(kernel_id) or {})["status"]["podName"]
    assert pod_name in direct.names("pods")
    client.delete_session(session["id"])


def test_interrupt_and_restart(direct: Direct) -> None:
    client = direct.client()
    session = client.start_session("ops.ipynb", KERNEL_NAME)
    kernel_id = session["kernel"]["id"]
    with client.channel(kernel_id) as channel:
        assert channel.execute("x = 41").status == "ok"
        channel.states.clear()  # the "busy" to wait for is this cell's, not the last one's
        msg_id = channel.send_execute("import time; time.sleep(120)")
        assert channel.wait_for_state("busy", 30)
        # ipykernel ignores SIGINT between cells: interrupt once the cell is inside sleep()
        time.sleep(0.5)
        client.interrupt(kernel_id)
        try:
            result = channel.wait_reply(msg_id, 30)
        except TimeoutError as err:
            raise AssertionError(f"the interrupted cell never ended{direct.why()}") from err
        assert result.ename == "KeyboardInterrupt", result
        assert channel.execute("print(x + 1)").stdout.strip() == "42"
    before = (direct.kernel_of(kernel_id) or {})["metadata"]["name"]
    client.restart(kernel_id)
    with client.channel(kernel_id) as channel:
        result = channel.execute("print('x' in globals())")
        assert result.stdout.strip() == "False", result
    after = (direct.kernel_of(kernel_id) or {})["metadata"]["name"]
    assert after != before
    client.delete_session(session["id"])


def test_a_failure_reason_reaches_the_user_within_seconds(direct: Direct) -> None:
    spec = next(d for d in seed_manifests() if d["kind"] == "JupyterKernelSpec")
    broken = json.loads(json.dumps(spec))
    broken["metadata"]["name"] = "broken"
    broken["spec"]["template"] = {"name": "no-such-template"}
    direct.apply(broken)
    client = direct.client()
    wait_for(lambda: "broken" in client.kernelspecs()["kernelspecs"], 20, 0.2, "broken listed")
    start = time.monotonic()
    with pytest.raises(NotebookAPIError) as error:
        client.start_session("broken.ipynb", "broken")
    elapsed = time.monotonic() - start
    assert "no-such-template" in error.value.message, error.value.message
    assert elapsed < REASON_WITHIN_S, elapsed
    wait_for(lambda: not direct.kernels("kubeflow.tkestack.io/kernelspec=broken"), 20, 0.2,
             "the failed kernel's JupyterKernel deleted")  # fmt: skip


def test_a_kernelspec_added_while_the_server_runs_is_offered(direct: Direct) -> None:
    spec = next(d for d in seed_manifests() if d["kind"] == "JupyterKernelSpec")
    late = json.loads(json.dumps(spec))
    late["metadata"]["name"] = "late-python"
    late["spec"]["displayName"] = "Added later"
    direct.apply(late)
    client = direct.client()
    wait_for(lambda: "late-python" in client.kernelspecs()["kernelspecs"], 10, 0.1, "late listed")
    assert client.kernelspecs()["kernelspecs"]["late-python"]["spec"]["display_name"] == (
        "Added later"
    )


def test_a_new_notebook_pod_adopts_the_kernel(direct: Direct) -> None:
    client = direct.client()
    session = client.start_session("keep.ipynb", KERNEL_NAME)
    kernel_id = session["kernel"]["id"]
    with client.channel(kernel_id) as channel:
        assert channel.execute("kept = 'still here'").status == "ok"
    old_pods = direct.server_pods()
    direct.sandbox.kubectl(
        "delete", "pod", "-n", direct.namespace, "-l", f"{crds.LABEL_NOTEBOOK}={NOTEBOOK},"
        f"{crds.LABEL_COMPONENT}={crds.COMPONENT_NOTEBOOK}", "--wait=false",
    )  # fmt: skip

    def adopted() -> bool:
        if not direct.server_pods() - old_pods or not server_ready(direct):
            return False
        return any(k["id"] == kernel_id for k in direct.client().kernels())

    try:
        wait_for(adopted, 120, 0.5, "the new notebook pod listing the kernel")
    except AssertionError as error:
        raise AssertionError(f"{error}{direct.why()}") from None
    with direct.client().channel(kernel_id) as channel:
        assert channel.execute("print(kept)").stdout.strip() == "still here"
    direct.client().delete_session(session["id"])
    wait_for(lambda: direct.kernel_of(kernel_id) is None, 20, 0.2, "shut down: CR deleted")
    wait_for(
        lambda: all(k["id"] != kernel_id for k in direct.client().kernels()),
        20,
        0.2,
        "the adopted kernel shut down and forgotten by the server",
    )


def test_idle_kernels_are_culled(direct: Direct) -> None:
    old_pods = direct.server_pods()
    # a shorter cullIdleTimeout rolls the server out with jupyter_server's culler set
    direct.apply(notebook_manifest(cullIdleTimeout=5, cullInterval=1))
    wait_for(
        lambda: direct.server_pods() and not direct.server_pods() & old_pods,
        120,
        0.5,
        "the notebook server rolled out",
    )
    wait_for(lambda: server_ready(direct), 60, 0.5, "the server answering")
    client = direct.client()
    session = client.start_session("idle.ipynb", KERNEL_NAME)
    kernel_id = session["kernel"]["id"]
    assert direct.kernel_of(kernel_id) is not None
    wait_for(lambda: direct.kernel_of(kernel_id) is None, 60, 0.5, "the idle kernel culled")
    try:
        wait_for(
            lambda: all(k["id"] != kernel_id for k in direct.client().kernels()),
            30,
            0.5,
            "the culled kernel gone from /api/kernels",
        )
    except AssertionError as error:
        raise AssertionError(f"{error}{direct.why()}") from None


def test_deleting_the_notebook_leaves_nothing(direct: Direct) -> None:
    old_pods = direct.server_pods()
    direct.apply(notebook_manifest())  # no culling during this test
    wait_for(
        lambda: direct.server_pods() and not direct.server_pods() & old_pods,
        120,
        0.5,
        "the notebook server rolled out",
    )
    wait_for(lambda: server_ready(direct), 120, 0.5, "the server answering")
    client = direct.client()
    session = client.start_session("left.ipynb", KERNEL_NAME)
    kernel = direct.kernel_of(session["kernel"]["id"])
    assert kernel is not None
    name = kernel["metadata"]["name"]
    direct.sandbox.kubectl("delete", "-n", direct.namespace, "jupyternotebook", NOTEBOOK)
    roles = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{direct.namespace}/roles"

    def nothing_left() -> bool:
        role_names = {r["metadata"]["name"] for r in direct.sandbox.request("GET", roles)["items"]}
        return (
            not direct.kernels()
            and not {p for p in direct.names("pods") if p == name or p.startswith(NOTEBOOK)}
            and name not in direct.names("secrets")
            and not {s for s in direct.names("secrets") if s.startswith(NOTEBOOK)}
            and f"{NOTEBOOK}-notebook" not in role_names
        )

    wait_for(nothing_left, 60, 0.5, "no kernel, pod, Secret or Role left")
