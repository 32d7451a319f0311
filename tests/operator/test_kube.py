"""Credentials loading and the operator's small API client."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from elastic_jupyter.operator import kube
from elastic_jupyter.sandbox.cluster import SandboxCluster
from tests.operator.conftest import new_namespace


def test_kubeconfig_from_the_environment_becomes_kopf_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443"}}],
        "users": [{"name": "u", "user": {"token": "secret-token"}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "ctx",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KUBECONFIG", str(path))
    info = kube.connection_info(kube.load_configuration())
    assert info.server == "https://10.0.0.1:6443"
    assert info.scheme == "Bearer"
    assert info.token == "secret-token"


def test_client_create_get_patch_and_errors(
    sandbox: SandboxCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(sandbox.kubeconfig))
    namespace = new_namespace(sandbox, prefix="opkube-")

    async def scenario() -> None:
        client = kube.KubeClient(kube.load_configuration())
        try:
            body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
            created = await client.create(kube.configmaps_path(namespace), body)
            assert created["metadata"]["uid"]
            with pytest.raises(kube.ApiError) as conflict:
                await client.create(kube.configmaps_path(namespace), body)
            assert conflict.value.status == 409
            assert conflict.value.reason == "AlreadyExists"
            assert not conflict.value.retryable
            patched = await client.merge_patch(
                kube.configmaps_path(namespace, "c"), {"data": {"k": "v"}}
            )
            assert patched["data"] == {"k": "v"}
            assert (await client.get(kube.configmaps_path(namespace, "c")))["data"] == {"k": "v"}
            with pytest.raises(kube.ApiError) as missing:
                await client.get(kube.configmaps_path(namespace, "nope"))
            assert missing.value.status == 404
        finally:
            await client.close()

    try:
        asyncio.run(scenario())
    finally:
        sandbox.delete_namespace(namespace)
