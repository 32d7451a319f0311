"""kopf 1.45 against the sandbox: handlers run, status and finalizers work, children are GC'd."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner
from kubernetes import client

from tests.sandbox.test_api_support import WIDGET_CRD, ServerThread, api, server, write_kubeconfig

__all__ = ["api", "server"]

HANDLERS = textwrap.dedent(
    """
    import os

    import kopf
    import kubernetes

    # the client library fixed its default kubeconfig path when it was first imported
    @kopf.on.login()
    def login(**kwargs):
        return kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.startup()
    def configure(settings: kopf.OperatorSettings, **_):
        settings.posting.enabled = False
        settings.watching.connect_timeout = 5
        settings.watching.server_timeout = 10

    @kopf.on.create("example.com", "v1", "widgets")
    def create_fn(body, spec, name, namespace, **_):
        kubernetes.config.load_kube_config(config_file=os.environ["KUBECONFIG"])
        child = {"metadata": {"name": f"{name}-child"}, "data": {"color": spec["color"]}}
        kopf.adopt(child, owner=body)
        kubernetes.client.CoreV1Api().create_namespaced_config_map(namespace, child)
        return {"child": child["metadata"]["name"]}

    @kopf.on.delete("example.com", "v1", "widgets")
    def delete_fn(name, **_):
        print(f"deleted {name}")
    """
)


def _until(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


@pytest.mark.slow
def test_kopf_operator_round_trip(
    api: client.ApiClient, server: ServerThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kubeconfig", server)))
    handler_file = tmp_path / "handlers.py"
    handler_file.write_text(HANDLERS, encoding="utf-8")
    client.ApiextensionsV1Api(api).create_custom_resource_definition(WIDGET_CRD)
    co = client.CustomObjectsApi(api)
    core = client.CoreV1Api(api)
    args = ("example.com", "v1", "default", "widgets")

    def widget() -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] = co.get_namespaced_custom_object(*args, "w1")
        except client.ApiException as exc:
            assert exc.status == 404
            return None
        return obj

    def child_gone() -> bool:
        try:
            core.read_namespaced_config_map("w1-child", "default")
        except client.ApiException as exc:
            return exc.status == 404
        return False

    with KopfRunner(["run", "--standalone", "-A", "--verbose", str(handler_file)]) as runner:
        co.create_namespaced_custom_object(
            *args,
            {
                "apiVersion": "example.com/v1",
                "kind": "Widget",
                "metadata": {"name": "w1"},
                "spec": {"color": "blue"},
            },
        )
        done = _until(lambda: (widget() or {}).get("status", {}).get("create_fn"))
        assert done == {"child": "w1-child"}
        obj = widget()
        assert obj is not None and obj["metadata"].get("finalizers")
        child = core.read_namespaced_config_map("w1-child", "default")
        assert child.metadata.owner_references[0].uid == obj["metadata"]["uid"]
        co.delete_namespaced_custom_object(*args, "w1")
        _until(lambda: widget() is None)
        _until(child_gone)
    assert runner.exit_code == 0, runner.output
    assert runner.exception is None
    assert "deleted w1" in runner.output
