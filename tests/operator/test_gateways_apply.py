"""How the gateway/notebook handlers write objects: idempotent, and only what changed."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from elastic_jupyter import crds
from elastic_jupyter.operator import apply, gateway_objects, gateway_status, kube


class FakeClient:
    """An in-memory stand-in for :class:`kube.KubeClient` recording every write."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.writes: list[tuple[str, str]] = []

    async def get(self, path: str) -> dict[str, Any]:
        if path not in self.objects:
            raise kube.ApiError(404, "NotFound", path)
        return copy.deepcopy(self.objects[path])

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.writes.append(("POST", path))
        self.objects[f"{path}/{body['metadata']['name']}"] = copy.deepcopy(body)
        return body

    async def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.writes.append(("PATCH", path))
        target = self.objects[path]
        for key, value in body.items():
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                target[key].update(value)
            else:
                target[key] = value
        return target

    async def request(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        self.writes.append((method, path))
        if method == "PUT":
            self.objects[path] = copy.deepcopy(body)
        elif method == "DELETE":
            if path not in self.objects:
                raise kube.ApiError(404, "NotFound", path)
            del self.objects[path]
        return {}


def gateway(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": crds.API_VERSION,
        "kind": "JupyterGateway",
        "metadata": {"name": "gw", "namespace": "team", "uid": "u", "generation": 1},
        "spec": spec,
    }


def apply_all(client: FakeClient, body: dict[str, Any]) -> list[str]:
    async def run() -> list[str]:
        return [
            await apply.ensure(client, obj)  # type: ignore[arg-type]
            for obj in gateway_objects.owned_objects(body)
        ]

    return asyncio.run(run())


def test_paths() -> None:
    dep = gateway_objects.deployment(gateway())
    assert apply.object_path(dep) == "/apis/apps/v1/namespaces/team/deployments/gw"
    svc = gateway_objects.service(gateway())
    assert apply.object_path(svc) == "/api/v1/namespaces/team/services/gw"
    (role, binding) = gateway_objects.legacy_cluster_rbac(gateway(allowKernelNamespace=True))
    assert apply.object_path(role) == (
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/elastic-jupyter-gateway:team:gw"
    )
    assert apply.object_path(binding) == (
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/elastic-jupyter-gateway:team:gw"
    )
    (kernel_role, _) = gateway_objects.kernel_namespace_rbac(gateway(kernelNamespace="k"))
    assert apply.object_path(kernel_role) == (
        "/apis/rbac.authorization.k8s.io/v1/namespaces/k/roles/team.gw"
    )


def test_second_reconcile_writes_nothing_and_an_edit_rolls_out() -> None:
    client = FakeClient()
    assert set(apply_all(client, gateway())) == {"created"}
    client.writes.clear()
    assert set(apply_all(client, gateway())) == {"unchanged"}
    assert client.writes == []

    # The API server keeps the Service's clusterIP: a patch must not drop it.
    svc_path = "/api/v1/namespaces/team/services/gw"
    client.objects[svc_path]["spec"]["clusterIP"] = "10.0.0.7"

    results = apply_all(client, gateway(cullIdleTimeout=10))
    assert results.count("updated") == 1  # only the Deployment
    assert client.writes == [("PUT", "/apis/apps/v1/namespaces/team/deployments/gw")]
    dep = client.objects["/apis/apps/v1/namespaces/team/deployments/gw"]
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--RemoteMappingKernelManager.cull_idle_timeout=10" in args

    client.writes.clear()
    apply_all(client, gateway(cullIdleTimeout=10, auth={"mode": "disable"}))
    assert client.objects[svc_path]["spec"]["clusterIP"] == "10.0.0.7"


def test_secret_is_never_rewritten() -> None:
    client = FakeClient()
    first = gateway_objects.auth_secret(gateway(), "one")
    second = gateway_objects.auth_secret(gateway(), "two")
    asyncio.run(apply.ensure(client, first))  # type: ignore[arg-type]
    assert asyncio.run(apply.ensure(client, second)) == "unchanged"  # type: ignore[arg-type]
    stored = client.objects["/api/v1/namespaces/team/secrets/gw-auth"]
    assert stored["stringData"]["token"] == "one"


def test_transitions_report_new_problems_once() -> None:
    ok = gateway_status.status(gateway(kernels=["a"]), None, ["a"], 0, [], "T")
    bad = gateway_status.status(gateway(kernels=["a", "b"]), None, ["a"], 0, [], "T")
    types = [t for t, _ in apply.transitions(ok, bad)]
    assert crds.CONDITION_KERNELSPECS_RESOLVED in types
    assert crds.CONDITION_KERNELSPECS_RESOLVED not in [t for t, _ in apply.transitions(bad, bad)]


def test_deleting_external_objects_tolerates_absence() -> None:
    client = FakeClient()
    objs = gateway_objects.external_objects(gateway(kernelNamespace="k"))
    asyncio.run(apply.delete_objects(client, objs))  # type: ignore[arg-type]
    # Objects in other namespaces are read first (only ours are deleted): absent, no DELETE.
    assert client.writes == []
    for obj in objs:
        client.objects[apply.object_path(obj)] = copy.deepcopy(obj)
    asyncio.run(apply.delete_objects(client, objs))  # type: ignore[arg-type]
    assert [m for m, _ in client.writes] == ["DELETE", "DELETE"]


def test_leftover_cluster_grant_is_deleted_binding_first() -> None:
    client = FakeClient()
    legacy = gateway_objects.legacy_cluster_rbac(gateway(allowKernelNamespace=True))
    for obj in legacy:
        client.objects[apply.object_path(obj)] = obj
    asyncio.run(apply.delete_objects(client, legacy))  # type: ignore[arg-type]
    assert client.writes == [
        ("DELETE", apply.object_path(legacy[1])),
        ("DELETE", apply.object_path(legacy[0])),
    ]
    assert client.objects == {}
    # Gone already (the usual case): nothing to do, no error.
    asyncio.run(apply.delete_objects(client, legacy))  # type: ignore[arg-type]


def test_a_namespace_leaving_the_list_loses_its_role() -> None:
    client = FakeClient()
    two = gateway(allowKernelNamespace=True, kernelNamespaces=["a", "b"])
    assert set(apply_all(client, two)) == {"created"}
    rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces"
    paths = [
        f"{rbac}/{ns}/{kind}/team.gw" for ns in ("a", "b") for kind in ("roles", "rolebindings")
    ]
    assert all(path in client.objects for path in paths)
    one = gateway(allowKernelNamespace=True, kernelNamespaces=["a"])
    stale = gateway_objects.stale_external_objects(two, one)
    assert [(o["kind"], o["metadata"]["namespace"]) for o in stale] == [
        ("Role", "b"),
        ("RoleBinding", "b"),
    ]
    asyncio.run(apply.delete_objects(client, stale))  # type: ignore[arg-type]
    assert f"{rbac}/a/roles/team.gw" in client.objects
    assert f"{rbac}/b/roles/team.gw" not in client.objects
    assert f"{rbac}/b/rolebindings/team.gw" not in client.objects
