"""Talking to one Enterprise Gateway from a benchmark: HTTP, kernelspecs, kernel messages, logs.

Shared by the gateway benchmarks (``gateway_start``, ``concurrency``, ``api_load``,
``gateway_recovery``, ``_stack``); imports no benchmark script.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from elastic_jupyter import crds

REPO = Path(__file__).resolve().parents[1]
GATEWAY_AGENT = "elastic-jupyter-gateway"  # the gateway plugin's User-Agent at the API server
# Local kernels run the kernel venv's interpreter and ipykernel, as the pods do, so the ratio
# measures the remote path (JupyterKernel, pod, launcher), not two ipykernel versions.
KERNEL_PYTHON = REPO / ".venv-kernel" / "bin" / "python"
_LOG_TIME = r"\[I (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) \S+\] "
ACCEPTED = re.compile(_LOG_TIME + r"KubeflowProcessProxy: kernel (\S+) is running")
CREATED_AT = re.compile(
    _LOG_TIME + r"KubeflowProcessProxy: created JupyterKernel \S+ for kernel (\S+) in"
)


def http(url: str, method: str = "GET", body: Any = None, timeout: float = 60) -> tuple[int, Any]:
    """One JSON request: (status, decoded body), or (status, error text) for an HTTP error."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def kernelspecs(root: Path) -> None:
    """Write the ``remote`` (our process proxy) and ``local`` (EG's) kernelspecs under root."""
    remote = {
        "display_name": "remote (KubeflowProcessProxy)",
        "language": "python",
        "argv": ["kubeflow-launcher", *crds.KERNELSPEC_LAUNCHER_ARGS],
        "metadata": {
            "process_proxy": {
                "class_name": crds.DEFAULT_PROCESS_PROXY_CLASS,
                "config": {"image_name": "elastic-jupyter/kernel-py:dev"},
            }
        },
    }
    local = {
        "display_name": "local (LocalProcessProxy)",
        "language": "python",
        "argv": [str(KERNEL_PYTHON), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
    }
    for name, spec in (("remote", remote), ("local", local)):
        folder = root / "kernels" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")


def execute_request(msg_id: str) -> str:
    """The JSON text of a shell-channel ``execute_request`` running ``1``."""
    header = {"msg_id": msg_id, "msg_type": "execute_request", "username": "jovyan"}
    header.update({"session": uuid.uuid4().hex, "version": "5.3", "date": ""})
    content = {"code": "1", "silent": False, "store_history": False, "user_expressions": {}}
    content.update({"allow_stdin": False, "stop_on_error": True})
    message = {"header": header, "parent_header": {}, "metadata": {}, "content": content}
    message.update({"channel": "shell", "buffers": []})
    return json.dumps(message)


def is_execute_reply(raw: str | bytes, msg_id: str) -> bool:
    """Whether a websocket message is the ``execute_reply`` to ``msg_id``."""
    msg = json.loads(raw)
    return bool(
        msg["header"]["msg_type"] == "execute_reply"
        and msg["parent_header"].get("msg_id") == msg_id
    )


def logged_at(pattern: re.Pattern[str], log_text: str, kernel_id: str) -> float | None:
    """Wall time of the first gateway log line matching ``pattern`` for ``kernel_id``."""
    for match in pattern.finditer(log_text):
        if match.group(2) == kernel_id:
            stamp = time.strptime(match.group(1)[:19], "%Y-%m-%d %H:%M:%S")
            return time.mktime(stamp) + float(match.group(1)[19:])
    return None


def accepted_at(log_text: str, kernel_id: str) -> float | None:
    """Wall time at which the proxy accepted the kernel's connection info (gateway log)."""
    return logged_at(ACCEPTED, log_text, kernel_id)


def created_at(log_text: str, kernel_id: str) -> float | None:
    """Wall time at which the proxy logged the JupyterKernel created (gateway log)."""
    return logged_at(CREATED_AT, log_text, kernel_id)
