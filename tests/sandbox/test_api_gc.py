"""Deletion: finalizers, ownerReference garbage collection (Background/Foreground/Orphan),
namespace cascade and CRD removal."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client

from tests.sandbox.test_api_support import WIDGET_CRD, api, server

__all__ = ["api", "server"]


def _owned(name: str, owner: Any, **meta: Any) -> dict[str, Any]:
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": owner.metadata.name,
        "uid": owner.metadata.uid,
        "blockOwnerDeletion": True,
    }
    return {"metadata": {"name": name, "ownerReferences": [ref], **meta}}


def _exists(core: client.CoreV1Api, name: str, ns: str = "default") -> bool:
    try:
        core.read_namespaced_config_map(name, ns)
    except client.ApiException as exc:
        assert exc.status == 404
        return False
    return True


def _wait_gone(fn: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            fn()
        except client.ApiException as exc:
            if exc.status == 404:
                return
            raise
        time.sleep(0.02)
    raise AssertionError("object still exists")


def test_finalizers_hold_deletion(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map("default", {"metadata": {"name": "f", "finalizers": ["a/b"]}})
    core.delete_namespaced_config_map("f", "default")
    held = core.read_namespaced_config_map("f", "default")
    assert held.metadata.deletion_timestamp is not None and held.metadata.finalizers == ["a/b"]
    with pytest.raises(client.ApiException) as err:
        core.patch_namespaced_config_map(
            "f", "default", {"metadata": {"finalizers": ["a/b", "c/d"]}}
        )
    assert err.value.status == 422
    core.patch_namespaced_config_map("f", "default", {"metadata": {"finalizers": None}})
    assert not _exists(core, "f")


def test_background_gc_is_recursive_and_respects_other_owners(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    root = core.create_namespaced_config_map("default", {"metadata": {"name": "root"}})
    other = core.create_namespaced_config_map("default", {"metadata": {"name": "other"}})
    child = core.create_namespaced_config_map("default", _owned("child", root))
    core.create_namespaced_config_map("default", _owned("grandchild", child))
    shared = _owned("shared", root)
    shared["metadata"]["ownerReferences"].append(
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "other", "uid": other.metadata.uid}
    )
    core.create_namespaced_config_map("default", shared)
    core.delete_namespaced_config_map("root", "default", propagation_policy="Background")
    assert not _exists(core, "child") and not _exists(core, "grandchild")
    kept = core.read_namespaced_config_map("shared", "default")
    assert [o.name for o in kept.metadata.owner_references] == ["other"]


def test_foreground_waits_for_dependents(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    root = core.create_namespaced_config_map("default", {"metadata": {"name": "root"}})
    core.create_namespaced_config_map("default", _owned("child", root, finalizers=["x/y"]))
    core.delete_namespaced_config_map("root", "default", propagation_policy="Foreground")
    owner = core.read_namespaced_config_map("root", "default")
    assert owner.metadata.deletion_timestamp and "foregroundDeletion" in owner.metadata.finalizers
    assert core.read_namespaced_config_map("child", "default").metadata.deletion_timestamp
    core.patch_namespaced_config_map("child", "default", {"metadata": {"finalizers": None}})
    assert not _exists(core, "child") and not _exists(core, "root")
    # a dependent without blockOwnerDeletion does not hold its owner back
    root = core.create_namespaced_config_map("default", {"metadata": {"name": "root"}})
    loose = _owned("loose", root, finalizers=["x/y"])
    loose["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] = False
    core.create_namespaced_config_map("default", loose)
    core.delete_namespaced_config_map("root", "default", propagation_policy="Foreground")
    assert not _exists(core, "root")
    assert core.read_namespaced_config_map("loose", "default").metadata.deletion_timestamp


def test_orphan_keeps_dependents(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    root = core.create_namespaced_config_map("default", {"metadata": {"name": "root"}})
    core.create_namespaced_config_map("default", _owned("child", root))
    core.delete_namespaced_config_map("root", "default", propagation_policy="Orphan")
    assert not _exists(core, "root")
    assert core.read_namespaced_config_map("child", "default").metadata.owner_references is None


def test_namespace_cascade(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": "doomed"}})
    core.create_namespaced_config_map("doomed", {"metadata": {"name": "a"}})
    core.create_namespaced_config_map(
        "doomed", {"metadata": {"name": "held", "finalizers": ["t/x"]}}
    )
    core.create_namespaced_pod(
        "doomed", {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    )
    core.delete_namespace("doomed")
    deadline = time.monotonic() + 5
    while _exists(core, "a", "doomed") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _exists(core, "a", "doomed")
    assert core.read_namespace("doomed").status.phase == "Terminating"
    with pytest.raises(client.ApiException) as err:
        core.create_namespaced_config_map("doomed", {"metadata": {"name": "late"}})
    assert err.value.status == 403
    core.patch_namespaced_config_map("held", "doomed", {"metadata": {"finalizers": None}})
    _wait_gone(lambda: core.read_namespace("doomed"))
    assert core.list_namespaced_pod("doomed").items == []
    with pytest.raises(client.ApiException) as err:
        core.delete_namespace("default")
    assert err.value.status == 403


def test_crd_delete_removes_resource(api: client.ApiClient) -> None:
    ext = client.ApiextensionsV1Api(api)
    ext.create_custom_resource_definition(WIDGET_CRD)
    co = client.CustomObjectsApi(api)
    args = ("example.com", "v1", "default", "widgets")
    co.create_namespaced_custom_object(*args, {"metadata": {"name": "w"}, "spec": {"color": "red"}})
    # a custom object owning a ConfigMap: kopf.adopt-style owner reference
    owner = co.get_namespaced_custom_object(*args, "w")
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(
        "default",
        {
            "metadata": {
                "name": "kid",
                "ownerReferences": [
                    {
                        "apiVersion": "example.com/v1",
                        "kind": "Widget",
                        "name": "w",
                        "uid": owner["metadata"]["uid"],
                    }
                ],
            }
        },
    )
    co.delete_namespaced_custom_object(*args, "w")
    assert not _exists(core, "kid")
    # removing the CRD removes its objects, and garbage collection follows their owner refs
    owner = co.create_namespaced_custom_object(
        *args, {"metadata": {"name": "w2"}, "spec": {"color": "red"}}
    )
    core.create_namespaced_config_map(
        "default",
        {
            "metadata": {
                "name": "kid2",
                "ownerReferences": [
                    {
                        "apiVersion": "example.com/v1",
                        "kind": "Widget",
                        "name": "w2",
                        "uid": owner["metadata"]["uid"],
                    }
                ],
            }
        },
    )
    ext.delete_custom_resource_definition("widgets.example.com")
    assert not _exists(core, "kid2")
    with pytest.raises(client.ApiException) as err:
        co.list_namespaced_custom_object(*args)
    assert err.value.status == 404
