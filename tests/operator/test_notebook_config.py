"""The notebook server's jupyter_server configuration file (`notebook_config`).

The file runs inside the notebook server (jupyter_server 2), so its behaviour is checked with
the kernel venv's Python against a stand-in gateway: a tornado websocket server whose handshake
takes a while, as Enterprise Gateway's does while it waits for the kernel's ``kernel_info``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import subprocess
import textwrap
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from elastic_jupyter.operator import notebook_config
from tests.helpers import free_port, wait_for

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


def run_probe(tmp_path: Path, source: str = PROBE) -> dict[str, Any]:
    """Run a probe script in the kernel venv with the rendered notebook config; its last line."""
    config = tmp_path / notebook_config.FILE_NAME
    config.write_text(notebook_config.server_config(uses_gateway=True), encoding="utf-8")
    probe = tmp_path / "probe.py"
    probe.write_text(source, encoding="utf-8")
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
@pytest.mark.slow  # starts a server process
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
        def get(self):  # the notebook server's /api/status lists the gateway's kernels
            self.finish(json.dumps([]))

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
        async def hang_up(reader, writer):  # a gateway killed while handling the request
            await reader.read(1)
            writer.close()

        dropper = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        dropping = dropper.sockets[0].getsockname()[1]
        gateway_client.GatewayClient.instance().url = f"http://127.0.0.1:{dropping}"
        try:
            await managers.gateway_request(f"http://127.0.0.1:{dropping}/api/kernels",
                                           method="POST", body="{}")
        except web.HTTPError as error:
            result["dropped"] = outcome(error)
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
@pytest.mark.slow  # starts a server process
def test_the_gateways_reason_is_the_readable_message(tmp_path: Path) -> None:
    """An error answer of the gateway: /api/kernels shows the error's ``log_message`` as its
    JSON message, /api/sessions wraps ``str(error)``; both must be the gateway's own text, not
    jupyter_server's template with "Ensure gateway url is valid..."."""
    result = run_probe(tmp_path, ERROR_PROBE)
    reason = "Kernel k1 could not start: ErrImagePull: image 'registry.invalid/nope:1' (50%)"
    assert result["same"] is True  # managers imported it by name: patched there too
    answer = result["answer"]
    assert answer["str"] == reason
    assert (answer["log_message"], answer["args"]) == (reason, [])
    assert answer["status"] == 500
    assert answer["type"] == notebook_config.ERROR_CLASS
    # Connected, then the gateway went away mid-request (killed, rolled out): not "ensure the
    # gateway url is valid" but what happened, and that running kernels are kept.
    dropped = result["dropped"]
    assert dropped["type"] == notebook_config.ERROR_CLASS and dropped["status"] == 503
    assert "stopped answering during the request" in dropped["str"]
    assert "Ensure gateway url is valid" not in dropped["str"]
    # No connection to the gateway at all: jupyter_server's own text stays.
    assert "Check to be sure the Gateway instance is running" in result["refused"]["str"]


#: A stand-in gateway serving only ``python_kubernetes`` (its default), as the article's bare
#: JupyterGateway does; it records every request (and the kernel name asked for) at /seen.
KERNELSPEC_GATEWAY = textwrap.dedent(
    """
    import asyncio, json
    from tornado import web

    SPEC = {"name": "python_kubernetes", "resources": {},
            "spec": {"display_name": "Python on Kubernetes", "language": "python",
                     "argv": ["python"], "env": {}, "metadata": {}}}
    seen = []

    class Specs(web.RequestHandler):
        def get(self):
            seen.append("GET /api/kernelspecs")
            self.finish({"default": "python_kubernetes",
                         "kernelspecs": {"python_kubernetes": SPEC}})

    class Kernels(web.RequestHandler):
        def get(self):  # the notebook server's /api/status lists the gateway's kernels
            self.finish(json.dumps([]))

        def post(self):
            name = json.loads(self.request.body).get("name")
            seen.append(f"POST /api/kernels {name}")
            self.set_status(201)
            self.finish({"id": f"k{len(seen)}", "name": name,
                         "last_activity": "2026-01-01T00:00:00.000000Z",
                         "execution_state": "starting", "connections": 0})

    class Seen(web.RequestHandler):
        def get(self):
            self.finish({"seen": seen})

    async def main():
        app = web.Application([(r"/api/kernelspecs", Specs), (r"/api/kernels", Kernels),
                               (r"/seen", Seen)])
        server = app.listen(0, "127.0.0.1")
        print(next(iter(server._sockets.values())).getsockname()[1], flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
    """
)
SERVER_TOKEN = "probe-token"


def _call(url: str, method: str = "GET", token: str = SERVER_TOKEN) -> Any:
    request = urllib.request.Request(url, data=b"" if method == "POST" else None, method=method)
    if token:
        request.add_header("Authorization", f"token {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def _process(args: list[str], **kwargs: Any) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(args, text=True, **kwargs)
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextlib.contextmanager
def fresh_notebook_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A stand-in gateway and a freshly started jupyter_server 2 with ``--gateway-url`` to it
    and the rendered file in ``JUPYTER_CONFIG_PATH``: yields (server URL, gateway URL)."""
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    text = notebook_config.server_config(uses_gateway=True)
    (config_dir / notebook_config.FILE_NAME).write_text(text, encoding="utf-8")
    (tmp_path / "gateway.py").write_text(KERNELSPEC_GATEWAY, encoding="utf-8")
    env = {
        "PATH": str(KERNEL_PYTHON.parent),
        "HOME": str(tmp_path),
        "JUPYTER_CONFIG_PATH": str(config_dir),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "user-config"),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
    }
    gateway_args = [str(KERNEL_PYTHON), str(tmp_path / "gateway.py")]
    with _process(gateway_args, stdout=subprocess.PIPE) as gateway:
        assert gateway.stdout is not None
        gateway_url = f"http://127.0.0.1:{gateway.stdout.readline().strip()}"
        port = free_port()
        server_args = [
            str(KERNEL_PYTHON), "-m", "jupyter_server", "--no-browser", "--ip=127.0.0.1",
            f"--port={port}", f"--IdentityProvider.token={SERVER_TOKEN}",
            f"--gateway-url={gateway_url}", "--allow-root",  # the test may run as root
        ]  # fmt: skip
        log = (tmp_path / "server.log").open("w")
        with log, _process(server_args, env=env, cwd=tmp_path, stdout=log, stderr=log):
            base = f"http://127.0.0.1:{port}"
            wait_for(lambda: _call(f"{base}/api/status"), 30, 0.2, "the notebook server")
            yield base, gateway_url


@needs_kernel_venv
@pytest.mark.slow  # starts a server process
def test_the_first_kernelspec_listing_names_the_gateways_default(tmp_path: Path) -> None:
    """The very first ``GET /api/kernelspecs`` of a freshly started notebook server (what
    JupyterLab asks to pick its kernel) names the gateway's default, not jupyter_server's own
    ``python3`` that the gateway does not serve. A request without the server's token gets
    nothing and sends nothing to the gateway."""
    with fresh_notebook_server(tmp_path) as (base, gateway_url):
        with pytest.raises(urllib.error.HTTPError) as refused:
            _call(f"{base}/api/kernelspecs", token="")
        assert refused.value.code == 403
        assert _call(f"{gateway_url}/seen") == {"seen": []}

        first = _call(f"{base}/api/kernelspecs")
        assert list(first["kernelspecs"]) == ["python_kubernetes"]
        assert first["default"] == "python_kubernetes"


@needs_kernel_venv
@pytest.mark.slow  # starts a server process
def test_a_first_kernel_without_a_name_is_the_gateways_default(tmp_path: Path) -> None:
    """``POST /api/kernels`` without a name, before anything listed the kernelspecs, asks the
    gateway for its default kernel."""
    with fresh_notebook_server(tmp_path) as (base, gateway_url):
        kernel = _call(f"{base}/api/kernels", method="POST")
        assert kernel["name"] == "python_kubernetes"
        assert "POST /api/kernels python_kubernetes" in _call(f"{gateway_url}/seen")["seen"]
