"""API semantics through the official kubernetes client v37: discovery, CRUD, patch, selectors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from tests.sandbox.test_api_support import WIDGET_CRD, ServerThread, api, raw, server

__all__ = ["api", "server"]


def _status(exc: client.ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    return body


def _get(server: ServerThread, path: str) -> Any:
    code, data, _ = raw(server.url, "GET", path)
    assert code == 200, data
    return data


def _pod(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["true"]}]},
    }


def test_discovery(api: client.ApiClient, server: ServerThread) -> None:
    core = _get(server, "/api/v1")
    assert core["groupVersion"] == "v1"
    names = {r["name"]: r for r in core["resources"]}
    assert {"pods", "pods/status", "pods/binding", "pods/log", "namespaces", "nodes"} <= set(names)
    assert names["pods"]["shortNames"] == ["po"] and "watch" in names["pods"]["verbs"]
    assert _get(server, "/api")["versions"] == ["v1"]
    groups = {g["name"] for g in _get(server, "/apis")["groups"]}
    assert {"apps", "apiextensions.k8s.io", "coordination.k8s.io", "events.k8s.io"} <= groups
    assert "rbac.authorization.k8s.io" in groups and "kopf.dev" not in groups
    apps = {r["name"] for r in _get(server, "/apis/apps/v1")["resources"]}
    assert {"deployments", "deployments/status", "deployments/scale", "replicasets"} <= apps
    assert client.VersionApi(api).get_code().minor == "32"


def test_crud_semantics(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    cm = core.create_namespaced_config_map(
        "default", {"metadata": {"name": "c1"}, "data": {"a": "1"}}
    )
    assert cm.metadata.uid and cm.metadata.creation_timestamp and cm.metadata.namespace == "default"
    rv = int(cm.metadata.resource_version)
    with pytest.raises(client.ApiException) as err:
        core.create_namespaced_config_map("default", {"metadata": {"name": "c1"}})
    assert err.value.status == 409 and _status(err.value)["reason"] == "AlreadyExists"
    # no-op patch: same resourceVersion
    same = core.patch_namespaced_config_map("c1", "default", {"data": {"a": "1"}})
    assert int(same.metadata.resource_version) == rv
    changed = core.patch_namespaced_config_map("c1", "default", {"data": {"b": "2"}})
    assert int(changed.metadata.resource_version) > rv and changed.data == {"a": "1", "b": "2"}
    # PUT with a stale resourceVersion
    cm.data = {"x": "y"}
    with pytest.raises(client.ApiException) as err:
        core.replace_namespaced_config_map("c1", "default", cm)
    assert err.value.status == 409 and _status(err.value)["reason"] == "Conflict"
    gen = core.create_namespaced_config_map("default", {"metadata": {"generateName": "gen-"}})
    assert gen.metadata.name.startswith("gen-") and len(gen.metadata.name) == 9
    with pytest.raises(client.ApiException) as err:
        core.read_namespaced_config_map("nope", "default")
    status = _status(err.value)
    assert err.value.status == 404 and status["reason"] == "NotFound"
    assert status["kind"] == "Status" and status["message"] == 'configmaps "nope" not found'
    with pytest.raises(client.ApiException) as err:
        core.create_namespaced_config_map("missing-ns", {"metadata": {"name": "c"}})
    assert err.value.status == 404
    with pytest.raises(client.ApiException) as err:
        core.create_namespaced_config_map("default", {"metadata": {"name": "Bad_Name"}})
    assert err.value.status == 422
    assert "a lowercase RFC 1123 subdomain" in _status(err.value)["message"]
    core.delete_namespaced_config_map("c1", "default")
    with pytest.raises(client.ApiException):
        core.read_namespaced_config_map("c1", "default")


def test_patch_types(api: client.ApiClient, server: ServerThread) -> None:
    core = client.CoreV1Api(api)
    cm = core.create_namespaced_config_map(
        "default", {"metadata": {"name": "p"}, "data": {"a": "1"}}
    )
    rv = cm.metadata.resource_version
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "add", "path": "/metadata/finalizers", "value": ["x/y"]},
    ]
    patched = core.patch_namespaced_config_map("p", "default", ops)
    assert patched.metadata.finalizers == ["x/y"]
    with pytest.raises(client.ApiException) as err:  # the same test again is stale now
        core.patch_namespaced_config_map("p", "default", ops)
    assert err.value.status == 409 and _status(err.value)["reason"] == "Conflict"
    code, status, _ = raw(
        server.url, "PATCH", "/api/v1/namespaces/default/configmaps/p", {"data": {}}, "text/plain"
    )
    assert code == 415 and status["reason"] == "UnsupportedMediaType"
    # strategic merge: containers merge by name instead of being replaced
    core.create_namespaced_pod("default", _pod("sm"))
    pod = core.patch_namespaced_pod(
        "sm", "default", {"spec": {"containers": [{"name": "main", "image": "busybox:2"}]}}
    )
    assert (
        pod.spec.containers[0].command == ["true"] and pod.spec.containers[0].image == "busybox:2"
    )


def test_status_subresource_and_generation(api: client.ApiClient) -> None:
    client.ApiextensionsV1Api(api).create_custom_resource_definition(WIDGET_CRD)
    co = client.CustomObjectsApi(api)
    args = ("example.com", "v1", "default", "widgets")
    obj = co.create_namespaced_custom_object(
        *args,
        {
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"color": "red"},
            "status": {"phase": "ignored"},
        },
    )
    assert "status" not in obj and obj["metadata"]["generation"] == 1
    obj = co.patch_namespaced_custom_object_status(
        *args, "w", {"status": {"phase": "Ready"}, "spec": {"color": "blue"}}
    )
    assert obj["status"] == {"phase": "Ready"} and obj["spec"]["color"] == "red"
    assert obj["metadata"]["generation"] == 1
    obj = co.patch_namespaced_custom_object(*args, "w", {"spec": {"color": "blue"}, "status": {}})
    assert obj["status"] == {"phase": "Ready"} and obj["metadata"]["generation"] == 2
    obj = co.patch_namespaced_custom_object(*args, "w", {"metadata": {"labels": {"a": "b"}}})
    assert obj["metadata"]["generation"] == 2
    obj["spec"]["color"] = "red"
    replaced = co.replace_namespaced_custom_object(*args, "w", obj)
    assert replaced["metadata"]["generation"] == 3


def test_selectors_and_lists(api: client.ApiClient, server: ServerThread) -> None:
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": "other"}})
    core.create_namespaced_pod("default", _pod("a", {"kernel_id": "k1", "component": "kernel"}))
    core.create_namespaced_pod("default", _pod("b", {"kernel_id": "k2", "component": "kernel"}))
    core.create_namespaced_pod("other", _pod("c", {"app": "x"}))

    def names(**kw: Any) -> list[str]:
        return sorted(p.metadata.name for p in core.list_pod_for_all_namespaces(**kw).items)

    assert names(label_selector="kernel_id=k1,component=kernel") == ["a"]
    assert names(label_selector="kernel_id==k2") == ["b"]
    assert names(label_selector="kernel_id!=k1") == ["b", "c"]
    assert names(label_selector="kernel_id in (k1, k2)") == ["a", "b"]
    assert names(label_selector="kernel_id notin (k1)") == ["b", "c"]
    assert names(label_selector="app") == ["c"]
    assert names(label_selector="!app") == ["a", "b"]
    assert names(field_selector="metadata.namespace=other") == ["c"]
    assert names(field_selector="metadata.name!=a,status.phase=Pending") == ["b", "c"]
    with pytest.raises(client.ApiException) as err:
        names(label_selector="a in (")
    assert err.value.status == 400
    raw = _get(server, "/api/v1/namespaces/default/pods")
    assert raw["kind"] == "PodList" and raw["apiVersion"] == "v1"
    assert int(raw["metadata"]["resourceVersion"]) > 0
    page = core.list_pod_for_all_namespaces(limit=2)
    assert len(page.items) == 2 and page.metadata._continue
    rest = core.list_pod_for_all_namespaces(limit=2, _continue=page.metadata._continue)
    assert [p.metadata.name for p in page.items + rest.items] == ["a", "b", "c"]
    assert not rest.metadata._continue


def test_binding_and_pod_rules(api: client.ApiClient, server: ServerThread) -> None:
    core = client.CoreV1Api(api)
    pod = core.create_namespaced_pod("default", _pod("bind-me"))
    assert pod.status.phase == "Pending" and pod.status.qos_class == "BestEffort"
    code, _, _ = raw(
        server.url,
        "POST",
        "/api/v1/namespaces/default/pods/bind-me/binding",
        {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": "bind-me"},
            "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"},
        },
    )
    assert code == 201
    code, status, _ = raw(
        server.url,
        "POST",
        "/api/v1/namespaces/default/pods/bind-me/binding",
        {"target": {"name": "node-2"}},
    )
    assert code == 409 and "already assigned" in status["message"]
    assert core.read_namespaced_pod("bind-me", "default").spec.node_name == "node-1"
    with pytest.raises(client.ApiException) as err:
        core.create_namespaced_pod(
            "default", {"metadata": {"name": "x"}, "spec": {"containers": [{"name": "c"}]}}
        )
    assert err.value.status == 422
    assert "spec.containers[0].image: Required value" in _status(err.value)["message"]
    with pytest.raises(client.ApiException) as err:
        core.patch_namespaced_pod("bind-me", "default", {"spec": {"restartPolicy": "Never"}})
    assert err.value.status == 422 and "pod updates may not change fields" in err.value.body
    # status writes go through /status only
    core.patch_namespaced_pod_status(
        "bind-me", "default", {"status": {"phase": "Running", "podIP": "127.64.0.9"}}
    )
    core.patch_namespaced_pod("bind-me", "default", {"status": {"phase": "Failed"}})
    assert core.read_namespaced_pod("bind-me", "default").status.phase == "Running"


def test_unknown_resources_and_services(api: client.ApiClient, server: ServerThread) -> None:
    code, status, _ = raw(server.url, "GET", "/apis/example.com/v1/namespaces/default/widgets")
    assert code == 404 and status["reason"] == "NotFound"
    assert raw(server.url, "GET", "/apis/kopf.dev/v1")[0] == 404
    core = client.CoreV1Api(api)
    svc = core.create_namespaced_service(
        "default", {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}
    )
    assert svc.spec.cluster_ip.startswith("127.96.") and svc.spec.ports[0].target_port == 80
    ev = client.EventsV1Api(api).create_namespaced_event(
        "default",
        {
            "metadata": {"generateName": "e-"},
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "reason": "Test",
            "action": "Tested",
            "reportingController": "t",
            "reportingInstance": "t",
            "type": "Normal",
            "note": "hello",
        },
    )
    assert ev.metadata.name.startswith("e-")
    core.create_namespaced_event(
        "default",
        {
            "metadata": {"name": "e1"},
            "involvedObject": {"kind": "Pod", "name": "x"},
            "reason": "Test",
            "message": "m",
        },
    )
    assert [e.metadata.name for e in core.list_namespaced_event("default").items] == ["e1"]


def test_scale_subresource(api: client.ApiClient, server: ServerThread) -> None:
    apps = client.AppsV1Api(api)
    labels = {"app": "d"}
    apps.create_namespaced_deployment(
        "default",
        {
            "metadata": {"name": "d"},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "c", "image": "i"}]},
                },
            },
        },
    )
    assert apps.read_namespaced_deployment_scale("d", "default").spec.replicas == 1
    apps.patch_namespaced_deployment_scale("d", "default", {"spec": {"replicas": 3}})
    assert apps.read_namespaced_deployment("d", "default").spec.replicas == 3
    with pytest.raises(client.ApiException) as err:
        apps.create_namespaced_deployment(
            "default",
            {
                "metadata": {"name": "bad"},
                "spec": {
                    "selector": {"matchLabels": {"app": "x"}},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {"containers": [{"name": "c", "image": "i"}]},
                    },
                },
            },
        )
    assert err.value.status == 422 and "selector` does not match" in err.value.body


def test_metadata_rules(api: client.ApiClient, server: ServerThread) -> None:
    core = client.CoreV1Api(api)
    code, status, _ = raw(
        server.url,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        {
            "metadata": {
                "name": "o",
                "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "x"}],
            }
        },
    )
    assert code == 422 and "metadata.ownerReferences.uid" in status["message"]
    code, status, _ = raw(
        server.url,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        {"metadata": {"name": "o", "resourceVersion": "5"}},
    )
    assert code == 400 and "resourceVersion should not be set" in status["message"]
    code, status, _ = raw(
        server.url,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        {"metadata": {"name": "o", "labels": {"bad": "a b"}}},
    )
    assert code == 422 and "a valid label must be an empty string" in status["message"]
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "frozen"}, "data": {"a": "1"}, "immutable": True}
    )
    with pytest.raises(client.ApiException) as err:
        core.patch_namespaced_config_map("frozen", "default", {"data": {"a": "2"}})
    assert err.value.status == 422 and "immutable" in err.value.body
    code, _, _ = raw(
        server.url,
        "DELETE",
        "/api/v1/namespaces/default/configmaps/frozen",
        {"preconditions": {"uid": "not-the-uid"}},
    )
    assert code == 409


def test_delete_responses_and_methods(api: client.ApiClient, server: ServerThread) -> None:
    core = client.CoreV1Api(api)
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "gone"}})
    code, body, _ = raw(server.url, "DELETE", "/api/v1/namespaces/default/configmaps/gone")
    assert code == 200 and body["kind"] == "Status" and body["status"] == "Success"
    assert body["details"]["uid"] == cm.metadata.uid
    core.create_namespaced_pod("default", _pod("pod-gone"))
    code, body, _ = raw(server.url, "DELETE", "/api/v1/namespaces/default/pods/pod-gone")
    assert code == 200 and body["kind"] == "Pod"
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "held", "finalizers": ["a/b"]}}
    )
    code, body, _ = raw(server.url, "DELETE", "/api/v1/namespaces/default/configmaps/held")
    assert code == 200 and body["metadata"]["deletionTimestamp"]
    code, body, _ = raw(server.url, "GET", "/api/v1/namespaces/default/pods/x/binding")
    assert code == 405 and body["reason"] == "MethodNotAllowed"
    code, body, _ = raw(server.url, "POST", "/api/v1/namespaces/default/configmaps", b"{not json")
    assert code == 400 and body["reason"] == "BadRequest"
    code, body, _ = raw(server.url, "GET", "/api/v1/nonsense")
    assert code == 404 and body["kind"] == "Status"
    code, body, _ = raw(
        server.url, "GET", "/api/v1/namespaces/default/configmaps?labelSelector=a%20in%20("
    )
    assert code == 400 and "unable to parse requirement" in body["message"]


def test_builtin_unknown_fields_and_secrets(api: client.ApiClient, server: ServerThread) -> None:
    body = _pod("typo")
    body["spec"]["containers"][0]["comand"] = ["x"]
    body["spec"]["bogus"] = 1
    code, pod, headers = raw(server.url, "POST", "/api/v1/namespaces/default/pods", body)
    assert code == 201 and "comand" not in pod["spec"]["containers"][0]
    assert 'unknown field \\"spec.containers[0].comand\\"' in headers["Warning"]
    code, status, _ = raw(
        server.url, "POST", "/api/v1/namespaces/default/pods?fieldValidation=Strict", body
    )
    assert code == 400 and 'unknown field "spec.bogus"' in status["message"]
    secret = client.CoreV1Api(api).create_namespaced_secret(
        "default", {"metadata": {"name": "s"}, "stringData": {"token": "abc"}}
    )
    assert secret.data == {"token": "YWJj"} and secret.string_data is None


def test_status_patch_prunes_and_warns_like_a_full_write(server: ServerThread) -> None:
    """A status-only merge patch prunes just the status; one touching more prunes everything."""
    base = "/api/v1/namespaces/default/pods"
    code, _, _ = raw(server.url, "POST", base, _pod("status-prune"))
    assert code == 201
    path = f"{base}/status-prune/status"
    merge = "application/merge-patch+json"
    patch = {"status": {"phase": "Running", "bogus": 1, "conditions": [{"type": "X", "z": 2}]}}
    code, pod, headers = raw(server.url, "PATCH", path, patch, merge)
    assert code == 200 and pod["status"]["phase"] == "Running"
    assert "bogus" not in pod["status"] and "z" not in pod["status"]["conditions"][0]
    assert 'unknown field \\"status.bogus\\"' in headers["Warning"]
    assert 'unknown field \\"status.conditions[0].z\\"' in headers["Warning"]
    patch = {"spec": {"nope": 1}, "status": {"phase": "Running"}}
    code, pod, headers = raw(server.url, "PATCH", path, patch, merge)
    assert code == 200 and "nope" not in pod["spec"]
    assert 'unknown field \\"spec.nope\\"' in headers["Warning"]
    code, status, _ = raw(server.url, "PATCH", path + "?fieldValidation=Strict", patch, merge)
    assert code == 400 and 'unknown field "spec.nope"' in status["message"]
