"""Direct mode by hand, as ``docs/direct-mode.md`` says: the sandbox, the real operator, and a
plain ``jupyter server`` from ``.venv-kernel`` started with a kubeconfig and a kernelspec
directory holding the seed's argv with ``metadata.kernel_provisioner``.

The server's kubeconfig is a named user holding exactly the Role the docs list (the
provisioner's API calls), in its context's namespace: the by-hand defaults (kernel namespace =
the context's) are what is exercised.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from elastic_jupyter import crds, harness
from tests.e2e import stack

KERNEL_NAME = "python-direct"
ROOT = Path(__file__).resolve().parents[2]
#: The notebook server's virtualenv (another one checks other jupyter_client versions, e.g. 7).
SERVER_VENV = Path(os.environ.get("EJ_TEST_NOTEBOOK_VENV") or ROOT / ".venv-kernel")

#: The notebook server's Role: every API call of the provisioner (provisioner/__init__.py).
ROLE_RULES = [
    {
        "apiGroups": [crds.GROUP],
        "resources": ["jupyterkernels"],
        "verbs": ["create", "get", "list", "watch", "patch", "delete"],
    },
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create", "get", "patch"]},
    {"apiGroups": [crds.GROUP], "resources": ["jupyterkerneltemplates"], "verbs": ["get"]},
]


def kernelspec(
    template: str | None = None, image: str | None = None, resources: Any = None
) -> dict[str, Any]:
    """The seed's argv with the provisioner stanza (what the docs show)."""
    config: dict[str, Any] = {"resources": resources} if resources else {}
    if template:
        config["kernel_template_name"] = template
    if image:
        config["image_name"] = image
    return {
        "argv": [
            "kubeflow-launcher",
            "--RemoteProcessProxy.kernel-id",
            "{kernel_id}",
            "--RemoteProcessProxy.port-range",
            "{port_range}",
            "--RemoteProcessProxy.response-address",
            "{response_address}",
        ],
        "display_name": "Python (kernel pod, direct)",
        "language": "python",
        "metadata": {
            "kernel_provisioner": {"provisioner_name": "kubeflow-provisioner", "config": config}
        },
    }


@dataclass
class NotebookServer:
    """One ``jupyter server`` process of the by-hand set-up (restartable)."""

    command: list[str]
    env: dict[str, str]
    log: Path
    port: int
    token: str
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    client: harness.NotebookClient = field(init=False)

    def __post_init__(self) -> None:
        self.client = harness.NotebookClient(f"http://127.0.0.1:{self.port}", self.token, 120)

    def start(self) -> None:
        self.starts += 1
        out = self.log.with_suffix(f".{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            self.command, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )

        def up() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter server exited:\n{self.log_text()}")
            with contextlib.suppress(Exception):
                self.client.request("GET", "/api/status")
                return True
            return False

        harness.wait_until("the notebook server serving", up, 60, 0.2)

    def log_text(self) -> str:
        return self.log.with_suffix(f".{self.starts}.log").read_text(errors="replace")[-8000:]

    def kill9(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            harness.stop_process(self.process, 20)


@dataclass
class DirectSetup:
    namespace: str
    kubectl: harness.Kubectl
    server: NotebookServer
    kernelspecs: Path

    @property
    def client(self) -> harness.NotebookClient:
        return self.server.client

    def add_kernelspec(self, name: str, spec: dict[str, Any]) -> None:
        directory = self.kernelspecs / "kernels" / name
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "kernel.json").write_text(json.dumps(spec))

    def kernels(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.kubectl.items("jk")
        return items

    def kernel_of(self, kernel_id: str) -> dict[str, Any] | None:
        for jk in self.kernels():  # a restart's old one may still be terminating
            meta = jk["metadata"]
            if meta["labels"].get(crds.LABEL_KERNEL_ID) == kernel_id and not meta.get(
                "deletionTimestamp"
            ):
                return jk
        return None

    def pods_of(self, kernel_id: str) -> list[dict[str, Any]]:
        pods: list[dict[str, Any]] = self.kubectl.items(
            "pods", "-l", f"{crds.LABEL_KERNEL_ID}={kernel_id}"
        )
        return pods


def server_command(port: int, token: str, root: Path, *extra: str) -> list[str]:
    jupyter = SERVER_VENV / "bin" / "jupyter-server"
    return [
        str(jupyter),
        "--no-browser",
        "--allow-root",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.kernel_manager_class="
        "elastic_jupyter.provisioner.server.DirectMappingKernelManager",
        *extra,
    ]


@pytest.fixture(scope="module")
def direct(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DirectSetup]:
    """The by-hand set-up, serving until the module's tests are done."""
    stack.skip_unless_built()
    if not (SERVER_VENV / "bin" / "jupyter-server").exists():
        pytest.skip(f"no jupyter-server in {SERVER_VENV} (make venv)")
    sandbox = request.getfixturevalue("sandbox")
    namespace = f"dp-{uuid.uuid4().hex[:6]}"
    tmp = tmp_path_factory.mktemp("direct")
    extra: tuple[str, ...] = getattr(request.module, "SERVER_ARGS", ())
    with stack.operator_serving(sandbox, namespace, tmp / "operator.log") as kubectl:
        user = f"notebook-{namespace}"
        role = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "direct-notebook", "namespace": namespace},
            "rules": ROLE_RULES,
        }
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "direct-notebook", "namespace": namespace},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "direct-notebook",
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        }
        items = {"apiVersion": "v1", "kind": "List", "items": [role, binding]}
        kubectl.run("apply", "-f", "-", stdin=json.dumps(items))
        kubeconfig = sandbox.user_kubeconfig(user, namespace=namespace)
        root = tmp / "notebooks"
        root.mkdir()
        specs = tmp / "jupyter"
        port = harness.free_port()
        token = uuid.uuid4().hex
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("EJ_", "EG_", "KERNEL_", "JUPYTER"))
        }
        env.update(
            KUBECONFIG=str(kubeconfig),
            JUPYTER_PATH=str(specs),
            JUPYTER_CONFIG_DIR=str(tmp / "config"),
            JUPYTER_DATA_DIR=str(tmp / "data"),
            JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
            EJ_RESPONSE_PORT=str(harness.free_port()),
            EG_KERNEL_LAUNCH_TIMEOUT="60",
            EJ_UNSCHEDULABLE_GRACE_SECONDS="2",
            KERNEL_USERNAME="jovyan",
            PATH=f"{ROOT / '.venv-kernel' / 'bin'}:{env.get('PATH', '')}",
        )
        server = NotebookServer(
            server_command(port, token, root, *extra), env, tmp / "server", port, token
        )
        setup = DirectSetup(namespace, kubectl, server, specs)
        setup.add_kernelspec(KERNEL_NAME, kernelspec())
        server.start()
        try:
            yield setup
        except BaseException:
            raise
        finally:
            if request.session.testsfailed:
                print("notebook server log (tail):\n" + server.log_text())
            server.stop()
            kubectl.run("delete", "jupyterkernels", "--all", "--wait=false", check=False)
