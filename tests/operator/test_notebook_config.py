"""The notebook server's jupyter_server configuration file (`notebook_config`).

The file runs inside the notebook server (jupyter_server 2), so its behaviour is checked with
the kernel venv's Python against a stand-in gateway: a tornado websocket server whose handshake
takes a while, as Enterprise Gateway's does while it waits for the kernel's ``kernel_info``.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from elastic_jupyter.operator import notebook_config

ROOT = Path(__file__).resolve().parents[2]
KERNEL_PYTHON = ROOT / ".venv-kernel" / "bin" / "python"

needs_kernel_venv = pytest.mark.skipif(
    not KERNEL_PYTHON.exists(), reason=f"{KERNEL_PYTHON} is missing (make venv builds it)"
)

#: Loads the rendered file as jupyter_server would (``c`` is the file's Config), then drives its
#: connection class against a slow stand-in gateway; prints what the gateway saw as JSON.
PROBE = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from tornado import web, websocket
    from traitlets.config import Config, Configurable
    from jupyter_server.gateway.gateway_client import GatewayClient

    config = Config()
    with open(sys.argv[1]) as f:
        exec(compile(f.read(), sys.argv[1], "exec"), {"c": config, "get_config": lambda: config})
    cls = config.ServerApp.kernel_websocket_connection_class
    events, live = [], {}

    class Channels(websocket.WebSocketHandler):
        async def get(self, kernel_id):
            await asyncio.sleep(0.3)  # EG's handshake waits for the kernel's kernel_info
            await super().get(kernel_id)

        def open(self, kernel_id):
            key = self.get_argument("session_id")
            live[key] = self
            events.append(["open", key])

        def on_close(self):
            events.append(["close", self.get_argument("session_id")])

    class Kernel(Configurable):
        kernel_id = "k1"

    def connection(session_id):
        conn = cls(parent=Kernel())
        conn.session.session = session_id
        return conn

    async def wait_for(predicate):
        deadline = time.monotonic() + 5
        while not predicate() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def main():
        server = web.Application([(r"/api/kernels/([^/]+)/channels", Channels)]).listen(
            0, "127.0.0.1"
        )
        port = next(iter(server._sockets.values())).getsockname()[1]
        GatewayClient.instance(url=f"http://127.0.0.1:{port}", gateway_retry_interval=0.01)
        left = connection("s1")  # the browser fails its handshake and leaves at once
        await left.connect()
        left.disconnect()
        stays = connection("s1")  # ... and reconnects with the same session id
        await stays.connect()
        await wait_for(lambda: len(events) >= 3)
        first_key = stays._gateway_session_key
        live[first_key].close()  # the gateway drops it: the connection retries by itself
        await wait_for(lambda: len(events) >= 5)
        stays.disconnect()
        await wait_for(lambda: len(events) >= 6)
        keys = {"left": left._gateway_session_key, "stays": stays._gateway_session_key}
        names = [k.__name__ for k in cls.__mro__[:2]]
        print(json.dumps({"classes": names, "events": events, **keys}))

    asyncio.run(main())
    """
)


def run_probe(tmp_path: Path) -> dict[str, Any]:
    config = tmp_path / notebook_config.FILE_NAME
    config.write_text(notebook_config.server_config(uses_gateway=True), encoding="utf-8")
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE, encoding="utf-8")
    done = subprocess.run(
        [str(KERNEL_PYTHON), str(probe), str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@needs_kernel_venv
def test_gateway_websockets_get_their_own_keys_and_orphans_are_closed(tmp_path: Path) -> None:
    result = run_probe(tmp_path)
    assert result["classes"] == [notebook_config.CONNECTION_CLASS, "GatewayWebSocketConnection"]
    left, stays = str(result["left"]), str(result["stays"])
    # Two browser websockets with one session id: two keys at the gateway, both derived from it.
    assert left != stays
    assert left.startswith("s1-") and stays.startswith("s1-") and len(left) == len("s1-") + 8
    # The websocket whose browser left during the handshake is closed once open (the stand-in
    # gateway never closes it itself), not leaked.
    assert [what for what, key in result["events"] if key == left] == ["open", "close"]
    # The gateway dropped the live one; its own retry kept the key (so EG replays its buffer),
    # and disconnect() of an open connection still closes it.
    assert [what for what, key in result["events"] if key == stays] == [
        "open",
        "close",
        "open",
        "close",
    ]


def test_without_a_gateway_the_file_configures_nothing() -> None:
    text = notebook_config.server_config(uses_gateway=False)
    assert "kernel_websocket_connection_class" not in text
    config: dict[str, Any] = {}
    exec(compile(text, notebook_config.FILE_NAME, "exec"), {"c": config})
    assert config == {}


def test_the_file_does_nothing_on_a_server_without_the_gateway_connection_module() -> None:
    # This venv has Enterprise Gateway's jupyter_server 1.24: no gateway.connections module.
    if importlib.util.find_spec("jupyter_server.gateway.connections") is not None:
        pytest.skip("this venv has jupyter_server 2")
    assigned: list[str] = []

    class Recorder:
        def __getattr__(self, name: str) -> Recorder:
            assigned.append(name)
            return self

    text = notebook_config.server_config(uses_gateway=True)
    exec(compile(text, notebook_config.FILE_NAME, "exec"), {"c": Recorder()})
    assert assigned == []


def test_the_digest_follows_the_text() -> None:
    with_gateway = notebook_config.server_config(uses_gateway=True)
    without = notebook_config.server_config(uses_gateway=False)
    assert notebook_config.config_hash(with_gateway) == notebook_config.config_hash(with_gateway)
    assert notebook_config.config_hash(with_gateway) != notebook_config.config_hash(without)


#: Loads the rendered file, then calls jupyter_server 2's ``gateway_request`` against a stand-in
#: gateway that answers as Enterprise Gateway does when a kernel cannot start, and against a
#: closed port; prints what the notebook server would tell its client.
ERROR_PROBE = textwrap.dedent(
    """
    import asyncio, json, socket, sys
    from tornado import web
    from traitlets.config import Config
    from jupyter_server.gateway import gateway_client, managers

    config = Config()
    with open(sys.argv[1]) as f:
        exec(compile(f.read(), sys.argv[1], "exec"), {"c": config, "get_config": lambda: config})
    REASON = "Kernel k1 could not start: ErrImagePull: image 'registry.invalid/nope:1' (50%)"

    class Kernels(web.RequestHandler):
        def post(self):
            self.set_status(500)
            self.finish({"reason": "Internal Server Error", "message": REASON})

    def outcome(error):
        return {"type": type(error).__name__, "status": error.status_code,
                "log_message": error.log_message, "args": list(error.args), "str": str(error)}

    async def main():
        server = web.Application([(r"/api/kernels", Kernels)]).listen(0, "127.0.0.1")
        port = next(iter(server._sockets.values())).getsockname()[1]
        gateway_client.GatewayClient.instance(url=f"http://127.0.0.1:{port}")
        result = {"same": managers.gateway_request is gateway_client.gateway_request}
        try:
            await managers.gateway_request(f"http://127.0.0.1:{port}/api/kernels",
                                           method="POST", body="{}")
        except web.HTTPError as error:
            result["answer"] = outcome(error)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            closed = sock.getsockname()[1]
        try:
            await managers.gateway_request(f"http://127.0.0.1:{closed}/api/kernels",
                                           method="POST", body="{}")
        except Exception as error:
            result["refused"] = {"type": type(error).__name__, "str": str(error)}
        print(json.dumps(result))

    asyncio.run(main())
    """
)


@needs_kernel_venv
def test_the_gateways_reason_is_the_readable_message(tmp_path: Path) -> None:
    """An error answer of the gateway: /api/kernels shows the error's ``log_message`` as its
    JSON message, /api/sessions wraps ``str(error)``; both must be the gateway's own text, not
    jupyter_server's template with "Ensure gateway url is valid..."."""
    config = tmp_path / notebook_config.FILE_NAME
    config.write_text(notebook_config.server_config(uses_gateway=True), encoding="utf-8")
    probe = tmp_path / "error_probe.py"
    probe.write_text(ERROR_PROBE, encoding="utf-8")
    done = subprocess.run(
        [str(KERNEL_PYTHON), str(probe), str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    reason = "Kernel k1 could not start: ErrImagePull: image 'registry.invalid/nope:1' (50%)"
    assert result["same"] is True  # managers imported it by name: patched there too
    answer = result["answer"]
    assert answer["str"] == reason
    assert (answer["log_message"], answer["args"]) == (reason, [])
    assert answer["status"] == 500
    assert answer["type"] == notebook_config.ERROR_CLASS
    # No answer from the gateway at all: jupyter_server's own text stays.
    assert "Check to be sure the Gateway instance is running" in result["refused"]["str"]
