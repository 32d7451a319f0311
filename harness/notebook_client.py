"""A notebook user's client of a jupyter_server 2 notebook server, as JupyterLab talks to it.

The REST side (``/api/sessions``, ``/api/kernels``, ``/api/kernelspecs``) and one kernel
websocket (``/api/kernels/<id>/channels``, JSON messages): open a session, execute code, read
iopub until idle, interrupt, restart. The same calls work against Enterprise Gateway directly.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

import websocket


class NotebookAPIError(RuntimeError):
    """A notebook-server request failed; ``status`` and ``message`` are what the server said."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


@dataclass
class ExecutionResult:
    """What one ``execute_request`` produced."""

    status: str  # "ok", "error" or "aborted" (from execute_reply)
    stdout: str = ""
    stderr: str = ""
    ename: str = ""
    evalue: str = ""
    states: list[str] = field(default_factory=list)  # kernel status messages seen


class NotebookClient:
    """The REST side of a jupyter_server 2 notebook server, as JupyterLab uses it."""

    def __init__(self, base_url: str, token: str, timeout_s: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s
        # Without a token (auth.mode: disable) jupyter_server checks XSRF on POST/PATCH/DELETE:
        # send the same value as the _xsrf cookie and the X-XSRFToken header, as JupyterLab does.
        self.xsrf = uuid.uuid4().hex

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """Send one request; return the decoded JSON body (None for an empty one)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        if self.token:
            req.add_header("Authorization", f"token {self.token}")
        else:
            req.add_header("Cookie", f"_xsrf={self.xsrf}")
            req.add_header("X-XSRFToken", self.xsrf)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            text = error.read().decode(errors="replace")
            with contextlib.suppress(ValueError, AttributeError):
                text = json.loads(text).get("message") or text
            raise NotebookAPIError(error.code, text) from None
        return json.loads(raw) if raw.strip() else None

    def kernelspecs(self) -> dict[str, Any]:
        """``GET /api/kernelspecs`` (the gateway's, when the server runs with --gateway-url)."""
        result: dict[str, Any] = self.request("GET", "/api/kernelspecs")
        return result

    def start_session(self, path: str, kernel_name: str) -> dict[str, Any]:
        """Open a notebook document with a new kernel, as JupyterLab does.

        ``POST /api/sessions``.
        """
        body = {"path": path, "name": path, "type": "notebook", "kernel": {"name": kernel_name}}
        result: dict[str, Any] = self.request("POST", "/api/sessions", body)
        return result

    def start_kernel_for(self, session_id: str, kernel_name: str) -> dict[str, Any]:
        """Give an existing session a new kernel (``PATCH /api/sessions/<id>``), as JupyterLab's
        'Start kernel' / 'Change kernel' does after its kernel was culled or failed to start."""
        result: dict[str, Any] = self.request(
            "PATCH", f"/api/sessions/{session_id}", {"kernel": {"name": kernel_name}}
        )
        return result

    def delete_session(self, session_id: str) -> None:
        """Close the notebook and shut its kernel down (``DELETE /api/sessions/<id>``)."""
        self.request("DELETE", f"/api/sessions/{session_id}")

    def kernels(self) -> list[dict[str, Any]]:
        """``GET /api/kernels``."""
        result: list[dict[str, Any]] = self.request("GET", "/api/kernels")
        return result

    def kernel(self, kernel_id: str) -> dict[str, Any] | None:
        """``GET /api/kernels/<id>``, or None when the server no longer knows the kernel."""
        try:
            result: dict[str, Any] = self.request("GET", f"/api/kernels/{kernel_id}")
        except NotebookAPIError as error:
            if error.status == 404:
                return None
            raise
        return result

    def interrupt(self, kernel_id: str) -> None:
        """``POST /api/kernels/<id>/interrupt``."""
        self.request("POST", f"/api/kernels/{kernel_id}/interrupt")

    def restart(self, kernel_id: str) -> dict[str, Any]:
        """``POST /api/kernels/<id>/restart``."""
        result: dict[str, Any] = self.request("POST", f"/api/kernels/{kernel_id}/restart")
        return result

    def channel(self, kernel_id: str) -> KernelChannel:
        """Open the kernel's websocket (JSON messages, as JupyterLab without binary protocol)."""
        return KernelChannel(self, kernel_id)


class KernelChannel:
    """One websocket to ``/api/kernels/<id>/channels``: execute code, watch the kernel's status."""

    def __init__(self, client: NotebookClient, kernel_id: str) -> None:
        self.kernel_id = kernel_id
        self.session = uuid.uuid4().hex
        url = client.base_url.replace("http", "ws", 1)
        url += f"/api/kernels/{kernel_id}/channels?session_id={self.session}"
        self.ws = websocket.create_connection(
            url, header=[f"Authorization: token {client.token}"], timeout=client.timeout_s
        )
        self.states: list[str] = []

    def close(self) -> None:
        """Close the websocket (the kernel keeps running, as when a browser tab closes)."""
        self.ws.close()

    def __enter__(self) -> KernelChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _message(self, msg_type: str, content: dict[str, Any], channel: str) -> dict[str, Any]:
        return {
            "header": {
                "msg_id": uuid.uuid4().hex,
                "msg_type": msg_type,
                "username": "demo",
                "session": self.session,
                "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "version": "5.3",
            },
            "parent_header": {},
            "metadata": {},
            "content": content,
            "channel": channel,
            "buffers": [],
        }

    def receive(self, timeout_s: float) -> dict[str, Any] | None:
        """The next message (status messages are also recorded in ``states``), or None."""
        self.ws.settimeout(max(timeout_s, 0.05))
        try:
            raw = self.ws.recv()
        except websocket.WebSocketTimeoutException:
            return None
        if not isinstance(raw, str) or not raw:
            return {}
        message: dict[str, Any] = json.loads(raw)
        if (
            message.get("msg_type") == "status"
            or message.get("header", {}).get("msg_type") == "status"
        ):
            self.states.append(str(message.get("content", {}).get("execution_state")))
        return message

    def send_execute(self, code: str) -> str:
        """Send an ``execute_request`` and return its msg_id (see :meth:`wait_reply`)."""
        message = self._message(
            "execute_request",
            {
                "code": code,
                "silent": False,
                "store_history": True,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": True,
            },
            "shell",
        )
        self.ws.send(json.dumps(message))
        return str(message["header"]["msg_id"])

    def wait_reply(self, msg_id: str, timeout_s: float) -> ExecutionResult:
        """Collect output of ``msg_id`` until its execute_reply and the kernel's idle status."""
        result = ExecutionResult(status="")
        deadline = time.monotonic() + timeout_s
        idle = False
        while not (result.status and idle):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no reply to execute_request within {timeout_s:g} s")
            message = self.receive(left)
            if not message or message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = message.get("msg_type") or message.get("header", {}).get("msg_type")
            content = message.get("content", {})
            if kind == "stream":
                if content.get("name") == "stderr":
                    result.stderr += content.get("text", "")
                else:
                    result.stdout += content.get("text", "")
            elif kind == "error":
                result.ename, result.evalue = content.get("ename", ""), content.get("evalue", "")
            elif kind == "status":
                result.states.append(content.get("execution_state", ""))
                idle = content.get("execution_state") == "idle"
            elif kind == "execute_reply":
                result.status = content.get("status", "")
                if result.status == "error" and not result.ename:
                    result.ename = content.get("ename", "")
        return result

    def kernel_info(self, timeout_s: float = 60.0) -> dict[str, Any]:
        """Ask the kernel who it is, as JupyterLab does first on a new websocket; the reply's
        content (``language_info``, ``implementation``...)."""
        message = self._message("kernel_info_request", {}, "shell")
        self.ws.send(json.dumps(message))
        msg_id = message["header"]["msg_id"]
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            reply = self.receive(left)
            if not reply or reply.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if (reply.get("msg_type") or reply["header"]["msg_type"]) == "kernel_info_reply":
                content: dict[str, Any] = reply.get("content", {})
                return content
        raise TimeoutError(f"no kernel_info_reply within {timeout_s:g} s")

    def execute(self, code: str, timeout_s: float = 60.0) -> ExecutionResult:
        """Run ``code`` and wait for its result."""
        return self.wait_reply(self.send_execute(code), timeout_s)

    def wait_for_state(self, wanted: str, timeout_s: float) -> bool:
        """Wait until the kernel broadcasts status ``wanted`` (e.g. "restarting")."""
        if wanted in self.states:
            return True
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.receive(deadline - time.monotonic())
            if wanted in self.states:
                return True
        return False
