"""What a notebook user of elastic-jupyter sees and waits for (the base of the user's path).

Printing a step as a user reads it, kubectl as a user types it, the notebook server reached
through a JupyterNotebook's status, and waits for JupyterKernels, gateways and notebooks to be
Running. The steps themselves are in :mod:`elastic_jupyter.harness.user_path`.
"""

from __future__ import annotations

import base64
import json
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from elastic_jupyter import crds
from elastic_jupyter.harness.kubectl import Kubectl, StepFailedError
from elastic_jupyter.harness.notebook_client import KernelChannel, NotebookAPIError, NotebookClient
from elastic_jupyter.harness.processes import wait_until

#: The source checkout (the examples are not installed with the package).
ROOT = Path(__file__).resolve().parents[1]
ELASTIC_EXAMPLE = ROOT / "examples" / "elastic"
GPU_EXAMPLE = ROOT / "examples" / "gpu"

#: Code a user runs to see where the kernel lives: the pod's name and IP from the downward API
#: (the operator gives every kernel container POD_NAME/POD_IP, see operator/kernel_pod.py).
WHERE_AM_I = (
    "import os, socket\n"
    'print(os.environ.get("POD_NAME") or os.environ.get("HOSTNAME") or socket.gethostname(),'
    ' os.environ.get("POD_IP", "-"))'
)
GPU_REASON_WORDS = ("nvidia.com/gpu",)


def _b64(text: str) -> str:
    return base64.b64decode(text).decode()


def _shown(path: Path) -> str:
    """A path relative to the repository when it is inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def kind_names(directory: Path) -> dict[str, list[str]]:
    """Kinds and names of the objects in an example directory's YAML files."""
    found: dict[str, list[str]] = {}
    for path in sorted(directory.glob("*.y*ml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(doc, dict) and doc.get("kind"):
                found.setdefault(doc["kind"], []).append(doc["metadata"]["name"])
    return found


def condition_text(obj: Mapping[str, Any]) -> str:
    status = obj.get("status") or {}
    parts = [f"phase={status.get('phase', '?')}"]
    if status.get("reason"):
        parts.append(f"reason={status['reason']}")
    if status.get("message"):
        parts.append(f"message={status['message']!r}")
    return " ".join(parts)


@dataclass
class Pod:
    """Where a cell said it ran."""

    name: str
    ip: str


class UserView:
    """What a notebook user sees and waits for: printed steps, kubectl, the notebook server.

    The base of :class:`~elastic_jupyter.harness.user_path.UserPath`, whose methods are the
    steps; these are what the steps look at. A wait that ends without what was promised raises
    :class:`StepFailedError` (an AssertionError) with what was seen instead.
    """

    def __init__(
        self,
        kubectl: Kubectl,
        say: Callable[[str], None] = print,
        timeout_s: float = 60.0,
        notebook_url: Callable[[dict[str, Any]], str] | None = None,
    ) -> None:
        self.kubectl = kubectl
        self.say = say
        self.timeout_s = timeout_s
        self.notebook_url = notebook_url
        self.notebook: NotebookClient | None = None
        self.notebook_name = ""
        self.gateway_name = ""
        self.kernel_name = ""
        self.gpu_kernel_name = ""
        self.lab_url = ""
        self.session: dict[str, Any] = {}
        self.channel: KernelChannel | None = None
        self.pod: Pod | None = None
        self._step = 0

    # -- printing
    def title(self, text: str) -> None:
        """Print the heading of the next step."""
        self._step += 1
        self.say(f"\n==> {self._step}. {text}")

    def note(self, text: str) -> None:
        """Print a line of a step's detail."""
        for line in text.rstrip("\n").splitlines() or [""]:
            self.say(f"    {line}")

    def show(self, *args: str) -> str:
        """Run kubectl, print the command and its output as a user would see them."""
        self.note("$ " + shlex.join(["kubectl", *args]))
        out = self.kubectl.run(*args)
        self.note(out)
        return out

    def diagnose(self) -> str:
        """What a user would look at when a step fails: pods, and logs of unhealthy ones."""
        lines = [self.kubectl.run("get", "jupyter,pods", "-o", "wide", check=False)]
        for pod in self.kubectl.items("pods"):
            statuses = (pod.get("status") or {}).get("containerStatuses") or []
            if statuses and all(c.get("ready") for c in statuses):
                continue
            name = pod["metadata"]["name"]
            logs = self.kubectl.run("logs", name, "--tail=25", check=False)
            lines.append(f"--- kubectl logs {name} --tail=25\n{logs}")
        return "\n".join(lines)

    # -- helpers
    @property
    def client(self) -> NotebookClient:
        if self.notebook is None:
            raise StepFailedError("the notebook server is not known yet: apply the example first")
        return self.notebook

    @property
    def kernel_id(self) -> str:
        return str(self.session["kernel"]["id"])

    def kernel_objects(self, kernel_id: str) -> list[dict[str, Any]]:
        """The JupyterKernels of one Enterprise Gateway kernel id (label ``kernel_id``)."""
        return self.kubectl.items("jk", "-l", f"{crds.LABEL_KERNEL_ID}={kernel_id}")

    def kernel_pods(self, kernel_id: str) -> list[dict[str, Any]]:
        """The pods of one kernel id."""
        return self.kubectl.items("pods", "-l", f"{crds.LABEL_KERNEL_ID}={kernel_id}")

    def where_am_i(self, channel: KernelChannel) -> Pod:
        """Run WHERE_AM_I in the kernel and return what it printed."""
        result = channel.execute(WHERE_AM_I, self.timeout_s)
        if result.status != "ok":
            raise StepFailedError(
                f"the cell failed: {result.ename} {result.evalue} {result.stderr}"
            )
        name, _, ip = result.stdout.strip().partition(" ")
        return Pod(name=name, ip=ip)

    def where_am_i_quick(self, channel: KernelChannel, timeout_s: float = 5.0) -> Pod:
        """:meth:`where_am_i` with a short timeout, for polling a kernel that may be gone."""
        result = channel.execute(WHERE_AM_I, timeout_s)
        name, _, ip = result.stdout.strip().partition(" ")
        if result.status != "ok" or not name:
            raise TimeoutError(f"the cell did not run: {result.status} {result.ename}")
        return Pod(name=name, ip=ip)

    def running_kernel(self, kernel_id: str) -> dict[str, Any]:
        """Wait for the Running JupyterKernel of ``kernel_id`` and return it."""

        def check() -> dict[str, Any] | None:
            for jk in self.kernel_objects(kernel_id):
                if (jk.get("status") or {}).get("phase") == crds.PHASE_RUNNING:
                    return jk
            return None

        found: dict[str, Any] = wait_until(f"JupyterKernel of {kernel_id} Running", check, 30)
        return found

    def wait_ready(self, kind: str, name: str) -> dict[str, Any]:
        """Wait until a JupyterGateway/JupyterNotebook reports phase Running for its spec."""

        def check() -> dict[str, Any] | None:
            obj = self.kubectl.get(kind, name)
            if not obj:
                return None
            status = obj.get("status") or {}
            current = status.get("observedGeneration", 0) >= obj["metadata"].get("generation", 0)
            return obj if current and status.get("phase") == "Running" else None

        try:
            ready: dict[str, Any] = wait_until(f"{kind} {name} Running", check, self.timeout_s)
        except TimeoutError:
            obj = self.kubectl.get(kind, name) or {}
            raise StepFailedError(
                f"{kind} {name} is not Running: {json.dumps(obj.get('status'))}"
            ) from None
        return ready

    def _notebook_base_url(self, notebook: dict[str, Any], token: str) -> str:
        """The notebook server's URL: its Service URL from the status, as a user reaches it
        (inside the cluster, or through ``kubectl port-forward svc/<name>``)."""
        if self.notebook_url is not None:
            return self.notebook_url(notebook)
        url = str((notebook.get("status") or {}).get("url") or "")
        if not url:
            raise StepFailedError("the JupyterNotebook's status has no url")
        try:
            NotebookClient(url, token, timeout_s=5).request("GET", "/api/status")
        except NotebookAPIError as error:
            raise StepFailedError(f"{url} answers HTTP {error.status} {error.message}") from None
        except OSError as error:
            raise StepFailedError(f"{url} does not answer: {error}") from None
        return url

    def _wait_kernelspec(self, client: NotebookClient, names: list[str]) -> str:
        def check() -> str | None:
            try:
                specs = client.kernelspecs().get("kernelspecs", {})
            except (NotebookAPIError, OSError):
                return None
            return next((n for n in names if n in specs), None)

        found: str = wait_until(f"kernelspec {names} served by the gateway", check, 30)
        return found

    # -- the steps
    def connect_notebook(self, gateway_name: str, notebook_name: str) -> tuple[NotebookClient, str]:
        """Wait for a gateway and its notebook server; return a client and the JupyterLab URL."""
        gateway = self.wait_ready(crds.JUPYTER_GATEWAY.plural, gateway_name)
        self.note(f"gateway {gateway_name} Running at {gateway['status'].get('url')}")
        notebook = self.wait_ready(crds.JUPYTER_NOTEBOOK.plural, notebook_name)
        secret_name = (notebook.get("status") or {}).get("tokenSecretName")
        token = ""
        if secret_name:
            secret = self.kubectl.get("secret", secret_name) or {}
            token = _b64((secret.get("data") or {}).get("token", ""))
            # a real API server turns stringData into data; accept either
            token = token or str((secret.get("stringData") or {}).get("token", ""))
        base = self._notebook_base_url(notebook, token)
        lab_url = f"{base}/lab?token={token}" if token else f"{base}/lab"
        self.note(f"notebook {notebook_name} Running; JupyterLab: {lab_url}")
        return NotebookClient(base, token, timeout_s=self.timeout_s), lab_url

    def apply_example(self, directory: Path = ELASTIC_EXAMPLE) -> None:
        """Apply the elastic example and wait for the gateway and the notebook server."""
        self.title(f"Apply the elastic example ({_shown(directory)})")
        self.show("apply", "-f", str(directory))
        names = kind_names(directory)
        if not names.get(crds.JUPYTER_GATEWAY.kind) or not names.get(crds.JUPYTER_NOTEBOOK.kind):
            raise StepFailedError(f"{directory} must hold a JupyterGateway and a JupyterNotebook")
        self.gateway_name = names[crds.JUPYTER_GATEWAY.kind][0]
        self.notebook_name = names[crds.JUPYTER_NOTEBOOK.kind][0]
        self.notebook, self.lab_url = self.connect_notebook(self.gateway_name, self.notebook_name)
        specs = names.get(crds.JUPYTER_KERNEL_SPEC.kind, [])
        self.kernel_name = self._wait_kernelspec(self.client, specs)
        self.note(f"the notebook server lists kernel {self.kernel_name!r} from the gateway")
        self.show("get", "jupyter")
