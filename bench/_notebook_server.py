"""A jupyter_server 2 notebook server from the kernel venv, as a benchmark runs it beside the stack.

Shared by the benchmarks that start kernels the way JupyterLab does (``POST /api/sessions``,
the kernel websocket); imports no benchmark script. The server is what a notebook pod runs
(``.venv-kernel``: jupyter_server 2, ipykernel); each gets its own config, data and runtime
directories under the benchmark's work directory, a token, and whatever arguments and
environment the caller adds (``--gateway-url``, a kernel manager class, a kubeconfig...).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from elastic_jupyter.harness import NotebookAPIError, NotebookClient, wait_until
from elastic_jupyter.harness.processes import free_port, stop_process

REPO = Path(__file__).resolve().parents[1]
KERNEL_VENV_BIN = REPO / ".venv-kernel" / "bin"


class NotebookServer:
    """``python -m jupyter_server`` from ``.venv-kernel`` on 127.0.0.1, until closed.

    ``name`` names its directories and log (``<workdir>/<name>.log``); ``env`` is added to a
    minimal environment (PATH with the kernel venv first, HOME, the Jupyter directories), so
    nothing of the benchmark's own environment (KUBECONFIG, EG_*) leaks into it by accident.
    """

    def __init__(
        self,
        workdir: Path,
        name: str,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        start_timeout_s: float = 90.0,
    ) -> None:
        self.workdir = workdir
        self.name = name
        self.args = list(args)
        self.extra_env = dict(env or {})
        self.start_timeout_s = start_timeout_s
        self.token = uuid.uuid4().hex
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def environment(self) -> dict[str, str]:
        home = self.workdir / self.name
        env = {
            "PATH": str(KERNEL_VENV_BIN) + os.pathsep + os.environ.get("PATH", ""),
            "HOME": str(home),
            "JUPYTER_CONFIG_DIR": str(home / "config"),
            "JUPYTER_DATA_DIR": str(home / "data"),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        }
        env.update(self.extra_env)
        return env

    def start(self) -> NotebookServer:
        (self.workdir / self.name).mkdir(parents=True, exist_ok=True)
        command = [
            str(KERNEL_VENV_BIN / "python"), "-m", "jupyter_server", "--no-browser",
            "--ip=127.0.0.1", f"--port={self.port}", f"--IdentityProvider.token={self.token}",
            "--allow-root", *self.args,
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                env=self.environment(),
                cwd=self.workdir / self.name,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        client = self.client(timeout_s=5)
        process = self.process

        def answering() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"notebook server {self.name} exited; see {self.log}")
            return client.request("GET", "/api/status") is not None

        wait_until(
            f"notebook server {self.name} at {self.base}",
            answering,
            self.start_timeout_s,
            0.2,
            ignore=(OSError, NotebookAPIError),
        )
        return self

    def client(self, timeout_s: float = 120.0) -> NotebookClient:
        """A notebook user's client of this server (REST + kernel websocket)."""
        return NotebookClient(self.base, self.token, timeout_s)

    def close(self) -> None:
        if self.process is not None:
            stop_process(self.process)

    def __enter__(self) -> NotebookServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
