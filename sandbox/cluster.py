"""``SandboxCluster``: a sandbox in a subprocess, for tests, benchmarks and the demo.

Used by the shared pytest fixtures (``tests/conftest.py``), benchmarks and
``examples/demo_session.py`` (``make demo``)::

    with SandboxCluster(node_gpus=2) as cluster:
        cluster.kubectl("get", "crd")
        api = cluster.api_client()          # kubernetes.client.ApiClient
        subprocess.run([...], env=cluster.env())

It runs ``python -m elastic_jupyter.sandbox up`` with a fresh state directory, waits for the
``SANDBOX READY`` line, and on :meth:`stop` sends SIGTERM and waits, so every pod process is
gone when it returns. The sandbox also gets SIGTERM if the thread that started it dies
(``die_with_parent``), so a killed test run leaves nothing behind.
The CRDs in the repository's ``crds/`` folder are applied before ready (``apply_crds=True``).

RBAC is on (``rbac=False`` is for debugging only). :attr:`kubeconfig` is the admin's (a
``system:masters`` member): use it for a test's own setup. Components run as themselves with
:meth:`serviceaccount_kubeconfig` (a TokenRequest token of that account), and a test plays a
person with :meth:`user_kubeconfig` (a named user and groups).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from .cli import READY_PREFIX
from .imagemap import repo_root
from .kubeconfig import token_of, write_kubeconfig


def crds_dir() -> Path | None:
    """The repository's CRD folder, when it holds any CRD YAML."""
    path = repo_root() / "crds"
    if path.is_dir() and any(path.glob("*.yaml")):
        return path
    return None


def _die_with_parent() -> None:
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class SandboxError(RuntimeError):
    """The sandbox failed to start, or a kubectl command failed."""


class SandboxCluster:
    """One sandbox subprocess; see the module docstring. Not thread-safe."""

    def __init__(
        self,
        *,
        apply_crds: bool = True,
        apply: list[Path] | tuple[Path, ...] = (),
        node_cpu: str = "8",
        node_memory: str = "32Gi",
        node_gpus: int = 2,
        image_map: Path | None = None,
        kubelet: bool = True,
        dns: bool = True,
        extra_args: list[str] | tuple[str, ...] = (),
        state_dir: Path | None = None,
        python: str = sys.executable,
        startup_timeout: float = 60.0,
        die_with_parent: bool = True,
        rbac: bool = True,
    ) -> None:
        self._apply = list(apply)
        if apply_crds:
            crds = crds_dir()
            if crds is not None:
                # the CRDs, and the operator's ServiceAccount and ClusterRoles (crds/rbac/)
                rbac_dir = crds / "rbac"
                self._apply[:0] = [crds, rbac_dir] if rbac_dir.is_dir() else [crds]
        self._args = [
            "--node-cpu", node_cpu,
            "--node-memory", node_memory,
            "--node-gpus", str(node_gpus),
        ]  # fmt: skip
        if image_map is not None:
            self._args += ["--image-map", str(image_map)]
        if not kubelet:
            self._args.append("--no-kubelet")
        if not dns:
            self._args.append("--no-dns")
        if not rbac:
            self._args.append("--no-rbac")
        self._args += list(extra_args)
        self._own_state_dir = state_dir is None
        self.state_dir = state_dir or Path(tempfile.mkdtemp(prefix="ej-sandbox-"))
        self._python = python
        self._timeout = startup_timeout
        # PR_SET_PDEATHSIG follows the *thread* that started the sandbox: turn it off when
        # starting from a short-lived thread.
        self._die_with_parent = die_with_parent
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""  # plain HTTP (the sandbox's raw requests); kubeconfigs name secure_url
        self.secure_url = ""
        self.kubeconfig = self.state_dir / "kubeconfig"
        self._token = ""
        self._identities = 0

    # -- lifecycle --

    @property
    def log_path(self) -> Path:
        """The sandbox's own log (stderr): look here when something misbehaves."""
        return self.state_dir / "sandbox.log"

    def start(self) -> SandboxCluster:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o755)  # pods running as other users traverse it
        stdout_path = self.state_dir / "stdout.log"
        command = [
            self._python, "-m", "elastic_jupyter.sandbox", "up",
            "--state-dir", str(self.state_dir),
            "--kubeconfig", str(self.kubeconfig),
            *self._args,
        ]  # fmt: skip
        for path in self._apply:
            command += ["--apply", str(path)]
        with stdout_path.open("wb") as out, self.log_path.open("wb") as err:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                preexec_fn=_die_with_parent if self._die_with_parent else None,
            )
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            for line in stdout_path.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith(READY_PREFIX):
                    fields = dict(p.split("=", 1) for p in line.split()[2:] if "=" in p)
                    self.url = fields["url"]
                    self.secure_url = fields.get("secure_url", "")
                    self.kubeconfig = Path(fields["kubeconfig"])
                    self._token = token_of(self.kubeconfig)
                    return self
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        log_tail = self.log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
        self.stop()
        raise SandboxError(f"the sandbox did not become ready; its log ends with:\n{log_tail}")

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the sandbox and wait: it stops every pod process before exiting."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if self._own_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> SandboxCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- using it --

    def env(self, **extra: str) -> dict[str, str]:
        """``os.environ`` with ``KUBECONFIG`` pointing at this sandbox (plus ``extra``)."""
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env.update(extra)
        return env

    @property
    def admin_kubeconfig(self) -> Path:
        """The admin's kubeconfig (same as :attr:`kubeconfig`): for a test's own setup."""
        return self.kubeconfig

    def user_kubeconfig(
        self, user: str, groups: tuple[str, ...] | list[str] = (), namespace: str = "default"
    ) -> Path:
        """A kubeconfig for a named user (``system:authenticated`` plus ``groups``)."""
        answer = self.request("POST", "/sandbox/tokens", {"user": user, "groups": list(groups)})
        return self._write_identity(answer["token"], user, namespace)

    def serviceaccount_kubeconfig(self, namespace: str, name: str) -> Path:
        """A kubeconfig carrying a token of ServiceAccount ``namespace/name`` (which must exist):
        what a component running under that account uses."""
        answer = self.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
        )
        user = f"system:serviceaccount:{namespace}:{name}"
        return self._write_identity(answer["status"]["token"], user, namespace)

    def _write_identity(self, token: str, user: str, namespace: str) -> Path:
        self._identities += 1
        safe = "".join(ch if ch.isalnum() else "-" for ch in user)
        path = self.state_dir / "identities" / f"{self._identities:04d}-{safe}.kubeconfig"
        # readable by pods running as other users (the operator, gateways in tests)
        ca = (self.state_dir / "pki" / "ca.crt").read_bytes()
        return write_kubeconfig(
            path, self.secure_url, token, namespace=namespace, user=user, mode=0o644, ca_pem=ca
        )

    def kubectl(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 60.0,
        input: str | None = None,
        kubeconfig: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this sandbox (as the admin unless ``kubeconfig`` says otherwise);
        ``check`` raises :class:`SandboxError` on failure."""
        exe = shutil.which("kubectl")
        if exe is None:
            raise SandboxError("kubectl is not on PATH")
        result = subprocess.run(
            [exe, "--kubeconfig", str(kubeconfig or self.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            env=self.env(),
        )
        if check and result.returncode != 0:
            raise SandboxError(
                f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}"
            )
        return result

    def api_client(self, kubeconfig: Path | None = None) -> Any:
        """A ``kubernetes.client.ApiClient`` for this sandbox (needs the ``kubernetes`` package),
        as the admin unless ``kubeconfig`` names another identity."""
        from kubernetes import config

        return config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig or self.kubeconfig)
        )

    @property
    def auth_headers(self) -> dict[str, str]:
        """The admin's ``Authorization`` header, for raw HTTP requests of a test's own."""
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """A raw JSON request to the API server as the admin (for what no client covers)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers=self.auth_headers
        )
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def stats(self) -> dict[str, Any]:
        """The API server's request counters (``GET /sandbox/stats``)."""
        result: dict[str, Any] = self.request("GET", "/sandbox/stats")
        return result

    def reset_stats(self) -> None:
        """Zero the request counters (``POST /sandbox/stats/reset``)."""
        self.request("POST", "/sandbox/stats/reset")

    def create_namespace(self, name: str) -> None:
        self.request(
            "POST",
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        )

    def delete_namespace(self, name: str) -> None:
        with contextlib.suppress(urllib.error.HTTPError):
            self.request("DELETE", f"/api/v1/namespaces/{name}")
