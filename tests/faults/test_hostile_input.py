"""Hostile input: the reliability table's rows at their small size, and the crashes they found.

``bench/faults_hostile.py --size small`` fuzzes a real kernel's comm port, the real gateway's
response address and every field of the five CRDs (as a tenant, and with kubectl), then checks
every component still serves a real kernel. The other tests pin what the fuzzing found:

* Enterprise Gateway read its response address one connection at a time, with no limit: one
  idle connection from any neighbour stalled every kernel start until the launch timeout
  (``gateway_plugin/response_reader.py`` now reads each connection in its own task, bounded).
* The sandbox took a JSON integer beyond int64 as an ``integer`` (kube-apiserver decodes it as a
  float and refuses it), so such a value reached the operator.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from elastic_jupyter import crds
from elastic_jupyter.kernel_launcher import payload
from elastic_jupyter.sandbox.cluster import SandboxCluster
from tests.kernel_launcher.conftest import (
    LAUNCHER,
    ResponseServer,
    kill_group,
    requires_kernel_venv,
)

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "faults_hostile.py"
pytestmark = pytest.mark.timeout(900)  # the first test also runs the small fuzzing (minutes)


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    if not LAUNCHER.exists():
        pytest.skip(f"{LAUNCHER} missing: run `make venv` first")
    out = tmp_path_factory.mktemp("hostile")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--size", "small", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=ROOT,
    )
    found = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert set(found) == {"hostile-comm-port", "hostile-response-address", "hostile-crds"}, (
        result.stderr[-3000:]
    )
    return found


def _no_orphans(row: dict[str, Any]) -> None:
    assert row["orphans"] == {"jupyterkernels": 0, "pods": 0, "secrets": 0, "roles": 0}, row


@pytest.mark.slow
@requires_kernel_venv
def test_comm_port_fuzzing_breaks_nothing(rows: dict[str, dict[str, Any]]) -> None:
    row = rows["hostile-comm-port"]
    assert row["lost"] == 0 and row["met"], row["notes"]
    assert row["requested"] > 200  # every kind of case, and the burst of held connections
    assert row["usable_after"] == 1  # the kernel kept x, and the gateway's interrupt still works
    _no_orphans(row)


@pytest.mark.slow
@requires_kernel_venv
def test_response_address_fuzzing_breaks_nothing(rows: dict[str, dict[str, Any]]) -> None:
    row = rows["hostile-response-address"]
    assert row["lost"] == 0 and row["met"], row["notes"]
    # the kernel started while idle connections were held open, one after, and the first one
    assert row["started"] == 3 and row["usable_after"] == 3, row["notes"]
    _no_orphans(row)


@pytest.mark.slow
@requires_kernel_venv
def test_every_bad_crd_field_is_named(rows: dict[str, dict[str, Any]]) -> None:
    row = rows["hostile-crds"]
    assert row["lost"] == 0, row["notes"]
    assert row["x_misses"] == [], row["notes"]
    assert row["x_outcomes"].get("refused-named", 0) > 50
    assert all(k["refused"] and k["named"] for k in row["x_kubectl"]), row["x_kubectl"]
    assert row["usable_after"] == 2 and row["met"], row["notes"]
    _no_orphans(row)


# --- what the fuzzing found ---------------------------------------------------------------------


@pytest.fixture
def guarded_gateway(tmp_path: Path) -> Iterator[tuple[ResponseServer, Path]]:
    """EG's real ResponseManager with the gateway plugin installed, as the gateway boots it."""
    log = tmp_path / "gateway.log"
    with log.open("w") as stderr:
        server = ResponseServer(env={"EJ_GUARD_RESPONSES": "1"}, stderr=stderr)
    yield server, log
    server.close()


@requires_kernel_venv
@pytest.mark.slow
def test_idle_connections_do_not_stall_kernel_starts(
    guarded_gateway: tuple[ResponseServer, Path], tmp_path: Path
) -> None:
    server, log = guarded_gateway
    address = payload.parse_response_address(server.response_address)
    # A neighbour opens connections to the response address and sends nothing, or too much.
    idle = [socket.create_connection(address, timeout=5) for _ in range(20)]
    flood = socket.create_connection(address, timeout=5)
    flood.sendall(b"A" * 200_000)
    kernel_id = str(uuid.uuid4())
    token = secrets.token_urlsafe(32)
    server.register(kernel_id, launch_token=token)
    token_file = tmp_path / "launch-token"
    token_file.write_text(token)
    env = {
        **os.environ,
        "KERNEL_ID": kernel_id,
        "RESPONSE_ADDRESS": server.response_address,
        "PUBLIC_KEY": server.public_key,
        "KERNEL_LAUNCH_TOKEN_FILE": str(token_file),
        "KERNEL_ARGV": '["sleep", "60", "{connection_file}"]',
    }
    proc = subprocess.Popen(
        [str(LAUNCHER)], env=env, cwd=tmp_path, start_new_session=True, stderr=subprocess.DEVNULL
    )
    try:
        # EG's own reader waited for the first idle connection's EOF forever: no answer here.
        assert server.wait_info(kernel_id, timeout=20) is not None, log.read_text()[-2000:]
    finally:
        kill_group(proc.pid)
        proc.wait(10)
        for sock in [*idle, flood]:
            sock.close()
    assert "more than 65536 bytes" in log.read_text()


def test_integer_beyond_int64_is_refused_naming_the_field(sandbox: SandboxCluster) -> None:
    namespace = f"int64-{uuid.uuid4().hex[:6]}"
    sandbox.create_namespace(namespace)
    body = {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_GATEWAY.kind,
        "metadata": {"name": "huge"},
        "spec": {"cullInterval": 2**64 + 7},
    }
    path = f"/apis/{crds.GROUP}/{crds.VERSION}/namespaces/{namespace}/jupytergateways"
    import urllib.error

    with pytest.raises(urllib.error.HTTPError) as refused:
        sandbox.request("POST", path, body)
    assert refused.value.code == 422
    message = json.loads(refused.value.read())["message"]
    assert "spec.cullInterval" in message and "must be of type integer" in message, message
