"""The kernel session as stored on the JupyterKernel: what is public, what is secret, and the
per-kernel Secret's create-or-merge (no cluster: a recording fake API)."""

from __future__ import annotations

import base64
import json
from typing import Any

from elastic_jupyter import crds
from elastic_jupyter.gateway_plugin.kernel_secret import (
    kernel_secret_manifest,
    put_kernel_secret,
    read_kernel_secret,
)
from elastic_jupyter.gateway_plugin.kube import ApiError, KubeApi
from elastic_jupyter.gateway_plugin.session_store import (
    session_annotation,
    session_from_parts,
    session_secret_data,
)

KEY = b"4f1c8a6e-secret-hmac-key"
SESSION: dict[str, Any] = {
    "kernel_id": "k-1",
    "username": "alice",
    "kernel_name": "python-kubernetes",
    "connection_info": {
        "transport": "tcp",
        "ip": "10.0.0.7",
        "shell_port": 5001,
        "iopub_port": 5002,
        "stdin_port": 5003,
        "hb_port": 5004,
        "control_port": 5005,
        "signature_scheme": "hmac-sha256",
        "key": KEY,
    },
    "launch_args": {"env": {"KERNEL_USERNAME": "alice", "KERNEL_TOKEN": "t0p"}},
    "process_info": {"kernel_resource": {"namespace": "ns", "name": "alice-k-1-abcde"}},
}


def test_the_annotation_holds_no_secret_and_the_session_round_trips() -> None:
    annotation = session_annotation(SESSION)
    assert KEY.decode() not in annotation  # the HMAC key never lands on the JupyterKernel
    assert "t0p" not in annotation  # nor the client's env (launch arguments)
    secret = session_secret_data(SESSION)
    assert secret[crds.SESSION_SECRET_CONNECTION_KEY] == KEY.decode()
    assert json.loads(secret[crds.SESSION_SECRET_LAUNCH_ARGS]) == SESSION["launch_args"]
    assert session_from_parts(annotation, secret) == SESSION


def test_a_broken_session_is_refused() -> None:
    secret = session_secret_data(SESSION)
    assert session_from_parts("{not json", secret) is None
    assert session_from_parts(session_annotation(SESSION), {}) is None  # no key: unusable


class Recorder(KubeApi):
    """Answers like an API server holding one Secret with ``existing`` data (or none)."""

    def __init__(self, existing: dict[str, str] | None) -> None:
        super().__init__("http://127.0.0.1:1")
        self.data = dict(existing) if existing is not None else None
        self.calls: list[tuple[str, str, Any]] = []

    def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        body = kwargs.get("body")
        self.calls.append((method, path, body))
        if method == "POST":
            if self.data is not None:
                raise ApiError(409, "AlreadyExists", path)
            self.data = dict(body["data"])
            return body  # type: ignore[no-any-return]
        if method == "PATCH":
            assert kwargs.get("content_type") == "application/merge-patch+json"
            if self.data is None:
                raise ApiError(404, "NotFound", path)
            self.data.update(body["data"])
            return {}
        if method == "GET":
            if self.data is None:
                raise ApiError(404, "NotFound", path)
            return {"data": self.data}
        raise AssertionError(method)


def test_the_secret_is_owned_by_its_jupyterkernel() -> None:
    manifest = kernel_secret_manifest("ns", "alice-k-1-abcde", "uid-1", {"connection-key": "k"})
    assert manifest["metadata"]["name"] == "alice-k-1-abcde"
    (owner,) = manifest["metadata"]["ownerReferences"]
    assert owner["kind"] == crds.JUPYTER_KERNEL.kind and owner["uid"] == "uid-1"
    assert owner["controller"] is True
    assert base64.b64decode(manifest["data"]["connection-key"]) == b"k"


def test_writing_keeps_keys_other_writers_put_there() -> None:
    other = base64.b64encode(b"from-another-feature").decode()
    api = Recorder({"launch-token": other})
    put_kernel_secret(api, "ns", "jk", "uid", {"connection-key": "k1"})
    assert [c[0] for c in api.calls] == ["POST", "PATCH"]
    read = read_kernel_secret(api, "ns", "jk")
    assert read == {"launch-token": "from-another-feature", "connection-key": "k1"}


def test_a_session_store_write_merges_first_and_creates_only_when_missing() -> None:
    """The session stores write after the launch created the Secret: one PATCH, no refused
    POST; a Secret that is gone after all is created."""
    token = base64.b64encode(b"launch-token").decode()
    api = Recorder({"launch-token": token})
    put_kernel_secret(api, "ns", "jk", "uid", {"connection-key": "k1"}, exists=True)
    assert [c[0] for c in api.calls] == ["PATCH"]
    assert read_kernel_secret(api, "ns", "jk") == {
        "launch-token": "launch-token",
        "connection-key": "k1",
    }
    gone = Recorder(None)
    put_kernel_secret(gone, "ns", "jk", "uid", {"connection-key": "k1"}, exists=True)
    assert [c[0] for c in gone.calls] == ["PATCH", "POST"]
    assert read_kernel_secret(gone, "ns", "jk") == {"connection-key": "k1"}


def test_a_new_secret_is_created_once_and_a_missing_one_reads_as_none() -> None:
    api = Recorder(None)
    assert read_kernel_secret(api, "ns", "jk") is None
    put_kernel_secret(api, "ns", "jk", "uid", {"connection-key": "k1"})
    assert [c[0] for c in api.calls] == ["GET", "POST"]
    assert read_kernel_secret(api, "ns", "jk") == {"connection-key": "k1"}
