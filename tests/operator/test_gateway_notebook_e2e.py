"""End to end on the sandbox with the real operator: ``examples/elastic`` → a running Enterprise
Gateway 3.3 and a jupyter_server 2 notebook pointed at it.

Checked: the gateway serves the namespace's kernelspecs and refuses requests without its token;
the notebook (another sandbox pod, reaching the gateway by its Service DNS name with the token
the operator gave it) proxies ``/api/kernelspecs``; adding, editing and deleting a
JupyterKernelSpec reaches the running gateway in under 5 s with the same pod; editing
``cullIdleTimeout`` rolls out a new gateway pod; bad specs give conditions and Events.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from elastic_jupyter import crds
from elastic_jupyter.sandbox.cluster import SandboxCluster
from tests.examples import support
from tests.helpers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.kubectl]

EXAMPLE = support.REPO / "examples" / "elastic"
GATEWAY = "jupytergateway-elastic"
NOTEBOOK = "jupyternotebook-elastic"
HOT_RELOAD_LIMIT = 5.0


@pytest.fixture(scope="module")
def operator(sandbox: SandboxCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    with support.running_operator(sandbox, "ejgw-*", log):
        yield log


@pytest.fixture(scope="module")
def elastic(sandbox: SandboxCluster, operator: Path) -> Iterator[str]:
    """``examples/elastic`` applied in a fresh namespace, gateway and notebook Running."""
    namespace = support.new_namespace(sandbox, "ejgw")
    sandbox.kubectl("apply", "-n", namespace, "-f", str(EXAMPLE))

    def running(plural: str, name: str) -> bool:
        obj = support.custom(sandbox, plural, namespace, name)
        return (obj.get("status") or {}).get("phase") == crds.PHASE_RUNNING

    try:
        wait_for(lambda: running("jupytergateways", GATEWAY), 40, 0.2, "gateway Running")
        wait_for(lambda: running("jupyternotebooks", NOTEBOOK), 40, 0.2, "notebook Running")
    except AssertionError as error:
        raise AssertionError(f"{error}\noperator log:\n{support.tail(operator)}") from None
    yield namespace
    sandbox.delete_namespace(namespace)


def gateway_token(sandbox: SandboxCluster, namespace: str) -> str:
    return support.secret_value(sandbox, namespace, crds.gateway_auth_secret_name(GATEWAY))


def kernelspecs(sandbox: SandboxCluster, namespace: str) -> dict[str, Any]:
    url = support.service_url(sandbox, namespace, GATEWAY) + "/api/kernelspecs"
    status, body = support.http_get(url, gateway_token(sandbox, namespace))
    assert status == 200, body
    specs: dict[str, Any] = body["kernelspecs"]
    return specs


def test_components_authenticate_as_their_service_accounts(
    sandbox: SandboxCluster, elastic: str
) -> None:
    """The gateway pod uses the token the kubelet mounted for its ServiceAccount, the operator
    its own: no request of theirs comes as anyone else (the sandbox logs the user)."""
    wait_for(lambda: kernelspecs(sandbox, elastic), 30, 0.2, "the gateway serving")
    rows = sandbox.request("GET", "/sandbox/requests?limit=100000")["items"]
    gateway = {r["user"] for r in rows if r["userAgent"] == "elastic-jupyter-gateway"
               and r["namespace"] == elastic}  # fmt: skip
    assert gateway == {f"system:serviceaccount:{elastic}:{GATEWAY}"}
    operator = {r["user"] for r in rows if r["userAgent"] in ("kopf", "elastic-jupyter-operator")
                and r["namespace"] == elastic}  # fmt: skip
    assert operator == {"system:serviceaccount:elastic-jupyter-system:elastic-jupyter-operator"}


def test_gateway_status_and_objects(sandbox: SandboxCluster, elastic: str) -> None:
    gw = support.custom(sandbox, "jupytergateways", elastic, GATEWAY)
    status = gw["status"]
    assert status["readyReplicas"] == 1
    assert status["url"] == f"http://{GATEWAY}.{elastic}.svc:8888"
    assert status["kernelSpecs"] == ["python-kubernetes"]
    assert status["authSecretName"] == f"{GATEWAY}-auth"
    assert support.condition(gw, "Ready")["status"] == "True"
    assert support.condition(gw, "KernelSpecsResolved")["status"] == "True"
    role = support.core(
        sandbox, f"/apis/rbac.authorization.k8s.io/v1/namespaces/{elastic}/roles/{GATEWAY}"
    )
    assert not any(
        "pods" in rule["resources"] and "create" in rule["verbs"] for rule in role["rules"]
    )
    svc = support.core(sandbox, f"/api/v1/namespaces/{elastic}/services/{GATEWAY}")
    assert sorted(p["port"] for p in svc["spec"]["ports"]) == [8877, 8888]


def test_gateway_requires_its_token(sandbox: SandboxCluster, elastic: str) -> None:
    base = support.service_url(sandbox, elastic, GATEWAY)
    status, _ = support.http_get(base + "/api/kernelspecs")
    assert status in (401, 403)
    status, _ = support.http_get(base + "/api/kernelspecs", token="wrong")
    assert status in (401, 403)
    specs = kernelspecs(sandbox, elastic)
    assert set(specs) == {"python-kubernetes"}
    spec = specs["python-kubernetes"]["spec"]
    assert spec["display_name"] == "Elastic Python Kernel on Kubernetes"
    # No spec.defaultKernel: the gateway's default follows what it serves.
    token = gateway_token(sandbox, elastic)
    wait_for(
        lambda: (
            support.http_get(base + "/api/kernelspecs", token)[1]["default"] == "python-kubernetes"
        ),
        5,
        0.1,
        "the default kernel to be the served one",
    )


def test_gateway_is_reachable_by_service_name(sandbox: SandboxCluster, elastic: str) -> None:
    url = f"http://{GATEWAY}.{elastic}.svc:8888/api"
    status, body = support.http_get(url, gateway_token(sandbox, elastic))
    assert status == 200
    assert body["gateway_version"].startswith("3.3")


def test_notebook_server_uses_the_gateway(sandbox: SandboxCluster, elastic: str) -> None:
    nb = support.custom(sandbox, "jupyternotebooks", elastic, NOTEBOOK)
    assert nb["status"]["gatewayURL"] == f"http://{GATEWAY}.{elastic}.svc:8888"
    assert support.condition(nb, "GatewayResolved")["status"] == "True"
    assert "kubectl port-forward" in nb["status"]["accessHint"]
    token = support.secret_value(sandbox, elastic, nb["status"]["tokenSecretName"])
    base = support.service_url(sandbox, elastic, NOTEBOOK)
    # Without the notebook's token: refused.
    status, _ = support.http_get(base + "/api/kernelspecs")
    assert status in (401, 403)
    # With it: jupyter_server 2 asks the gateway (with the gateway's token) and relays.
    status, body = support.http_get(base + "/api/status", token)
    assert status == 200, body
    status, body = support.http_get(base + "/api/kernelspecs", token)
    assert status == 200, body
    assert "python-kubernetes" in body["kernelspecs"]


def test_kernelspec_hot_reload_without_restart(sandbox: SandboxCluster, elastic: str) -> None:
    (pod,) = support.gateway_pods(sandbox, elastic, GATEWAY)
    uid = pod["metadata"]["uid"]
    manifest = {
        "apiVersion": crds.API_VERSION,
        "kind": "JupyterKernelSpec",
        "metadata": {"name": "python-extra", "namespace": elastic},
        "spec": {
            "language": "python",
            "displayName": "Extra",
            "template": {"name": "jupyterkerneltemplate-elastic"},
        },
    }

    def apply(obj: dict[str, Any]) -> float:
        before = time.monotonic()  # the clock runs from before kubectl is called
        sandbox.kubectl("apply", "-f", "-", input=json.dumps(obj))
        return before

    started = apply(manifest)
    wait_for(lambda: "python-extra" in kernelspecs(sandbox, elastic), HOT_RELOAD_LIMIT, 0.1)
    added = time.monotonic() - started

    manifest["spec"]["displayName"] = "Extra, edited"
    started = apply(manifest)
    wait_for(
        lambda: (
            kernelspecs(sandbox, elastic)["python-extra"]["spec"]["display_name"] == "Extra, edited"
        ),
        HOT_RELOAD_LIMIT,
        0.1,
    )
    edited = time.monotonic() - started

    # Editing the gateway's kernels list is live too (no rollout).
    def patch_kernels(kernels: list[str] | None) -> float:
        patch = json.dumps({"spec": {"kernels": kernels}})
        before = time.monotonic()
        sandbox.kubectl("patch", "jgw", GATEWAY, "-n", elastic, "--type=merge", "-p", patch)
        return before

    started = patch_kernels(["python-kubernetes"])
    wait_for(lambda: set(kernelspecs(sandbox, elastic)) == {"python-kubernetes"}, 5, 0.1)
    narrowed = time.monotonic() - started
    started = patch_kernels(None)
    wait_for(lambda: "python-extra" in kernelspecs(sandbox, elastic), HOT_RELOAD_LIMIT, 0.1)
    widened = time.monotonic() - started

    started = time.monotonic()
    sandbox.kubectl("delete", "jks", "python-extra", "-n", elastic)
    wait_for(lambda: "python-extra" not in kernelspecs(sandbox, elastic), HOT_RELOAD_LIMIT, 0.1)
    deleted = time.monotonic() - started

    timings = {
        "add": added,
        "edit": edited,
        "narrow": narrowed,
        "widen": widened,
        "delete": deleted,
    }
    print("hot reload seconds:", {k: round(v, 2) for k, v in timings.items()})
    assert max(timings.values()) < HOT_RELOAD_LIMIT
    (same,) = support.gateway_pods(sandbox, elastic, GATEWAY)
    assert same["metadata"]["uid"] == uid
    assert (same["status"]["containerStatuses"][0].get("restartCount") or 0) == 0
    gw = wait_for(
        lambda: (
            gw
            if (gw := support.custom(sandbox, "jupytergateways", elastic, GATEWAY))["status"][
                "kernelSpecs"
            ]
            == ["python-kubernetes"]
            else None
        ),
        10,
        0.2,
    )
    assert gw


def test_editing_the_gateway_rolls_out(sandbox: SandboxCluster, elastic: str) -> None:
    dep_path = f"/apis/apps/v1/namespaces/{elastic}/deployments/{GATEWAY}"
    before = support.core(sandbox, dep_path)
    (old_pod,) = support.gateway_pods(sandbox, elastic, GATEWAY)

    # A label edit reaches the handler but changes nothing rendered: no write.
    sandbox.kubectl("label", "jgw", GATEWAY, "-n", elastic, "touched=yes")
    time.sleep(1.0)
    assert (
        support.core(sandbox, dep_path)["metadata"]["generation"]
        == before["metadata"]["generation"]
    )

    sandbox.kubectl(
        "patch", "jgw", GATEWAY, "-n", elastic, "--type=merge", "-p",
        '{"spec": {"cullIdleTimeout": 120}}',
    )  # fmt: skip

    def rolled() -> dict[str, Any] | None:
        pods = support.gateway_pods(sandbox, elastic, GATEWAY)
        new = [p for p in pods if p["metadata"]["uid"] != old_pod["metadata"]["uid"]]
        return new[0] if new and len(pods) == 1 else None

    new_pod = wait_for(rolled, 40, 0.2, "a new gateway pod replacing the old one")
    args = new_pod["spec"]["containers"][0]["args"]
    assert "--RemoteMappingKernelManager.cull_idle_timeout=120" in args

    def ready_again() -> bool:
        gw = support.custom(sandbox, "jupytergateways", elastic, GATEWAY)
        return (
            gw["status"].get("phase") == "Running"
            and gw["status"]["observedGeneration"] == (gw["metadata"]["generation"])
        )

    wait_for(ready_again, 30, 0.2, "the gateway Running with the new spec")
    assert "python-kubernetes" in kernelspecs(sandbox, elastic)


def test_bad_specs_give_conditions_and_events(
    sandbox: SandboxCluster, operator: Path, elastic: str
) -> None:
    namespace = support.new_namespace(sandbox, "ejgw")
    try:
        bad_gateway = {
            "apiVersion": crds.API_VERSION,
            "kind": "JupyterGateway",
            "metadata": {"name": "gw-bad", "namespace": namespace},
            "spec": {"kernels": ["does-not-exist"]},
        }
        orphan_notebook = {
            "apiVersion": crds.API_VERSION,
            "kind": "JupyterNotebook",
            "metadata": {"name": "nb-orphan", "namespace": namespace},
            "spec": {"gateway": {"name": "no-such-gateway"}},
        }
        for obj in (bad_gateway, orphan_notebook):
            sandbox.kubectl("apply", "-f", "-", input=json.dumps(obj))

        gw = wait_for(
            lambda: (
                g
                if support.condition(
                    g := support.custom(sandbox, "jupytergateways", namespace, "gw-bad"),
                    "KernelSpecsResolved",
                ).get("status")
                == "False"
                else None
            ),
            15,
            0.2,
            "KernelSpecsResolved=False",
        )
        cond = support.condition(gw, "KernelSpecsResolved")
        assert cond["reason"] == crds.REASON_KERNELSPEC_NOT_FOUND
        assert "does-not-exist" in cond["message"]

        nb = wait_for(
            lambda: (
                n
                if support.condition(
                    n := support.custom(sandbox, "jupyternotebooks", namespace, "nb-orphan"),
                    "GatewayResolved",
                ).get("status")
                == "False"
                else None
            ),
            15,
            0.2,
            "GatewayResolved=False",
        )
        assert support.condition(nb, "GatewayResolved")["reason"] == crds.REASON_GATEWAY_NOT_FOUND

        def warned(reason: str, name: str) -> bool:
            return any(
                e.get("type") == "Warning"
                and e.get("reason") == reason
                and e["involvedObject"]["name"] == name
                and "kubectl get" in e.get("message", "")
                for e in support.events(sandbox, namespace)
            )

        wait_for(lambda: warned(crds.REASON_KERNELSPEC_NOT_FOUND, "gw-bad"), 10, 0.2)
        wait_for(lambda: warned(crds.REASON_GATEWAY_NOT_FOUND, "nb-orphan"), 10, 0.2)

        # Creating the missing gateway resolves the notebook, which now gets its token.
        late_gateway = dict(
            bad_gateway, metadata={"name": "no-such-gateway", "namespace": namespace}
        )
        late_gateway["spec"] = {}
        sandbox.kubectl("apply", "-f", "-", input=json.dumps(late_gateway))

        def resolved_with_token() -> bool:
            nb = support.custom(sandbox, "jupyternotebooks", namespace, "nb-orphan")
            path = f"/apis/apps/v1/namespaces/{namespace}/deployments/nb-orphan"
            env = support.core(sandbox, path)["spec"]["template"]["spec"]["containers"][0]["env"]
            return support.condition(nb, "GatewayResolved").get("status") == "True" and any(
                e["name"] == "JUPYTER_GATEWAY_AUTH_TOKEN" for e in env
            )

        wait_for(resolved_with_token, 15, 0.2, "GatewayResolved=True and the token passed")

        # Creating the missing kernelspec resolves the gateway's condition.
        kernelspec = {
            "apiVersion": crds.API_VERSION,
            "kind": "JupyterKernelSpec",
            "metadata": {"name": "does-not-exist", "namespace": namespace},
            "spec": {"template": {"name": "any"}},
        }
        sandbox.kubectl("apply", "-f", "-", input=json.dumps(kernelspec))
        wait_for(
            lambda: (
                support.condition(
                    support.custom(sandbox, "jupytergateways", namespace, "gw-bad"),
                    "KernelSpecsResolved",
                ).get("status")
                == "True"
            ),
            15,
            0.2,
            "KernelSpecsResolved=True once the kernelspec exists",
        )

        # A bad log level is refused by the schema (or, failing that, reported as invalid).
        bad_level = dict(bad_gateway, metadata={"name": "gw-level", "namespace": namespace})
        bad_level["spec"] = {"logLevel": "LOUD"}
        result = sandbox.kubectl("apply", "-f", "-", input=json.dumps(bad_level), check=False)
        if result.returncode != 0:
            assert "logLevel" in result.stderr
        else:
            wait_for(
                lambda: (
                    support.condition(
                        support.custom(sandbox, "jupytergateways", namespace, "gw-level"), "Valid"
                    ).get("status")
                    == "False"
                ),
                15,
                0.2,
            )
    finally:
        sandbox.delete_namespace(namespace)


def test_a_kernel_starts_through_the_notebook(sandbox: SandboxCluster, elastic: str) -> None:
    """The whole path: notebook → gateway (token) → JupyterKernel → operator → kernel pod."""
    nb = support.custom(sandbox, "jupyternotebooks", elastic, NOTEBOOK)
    token = support.secret_value(sandbox, elastic, nb["status"]["tokenSecretName"])
    base = support.service_url(sandbox, elastic, NOTEBOOK)
    status, kernel = support.http_post(
        base + "/api/kernels", {"name": "python-kubernetes"}, token, timeout=60
    )
    assert status == 201, kernel
    kernels = support.core(
        sandbox, f"/apis/{crds.GROUP}/{crds.VERSION}/namespaces/{elastic}/jupyterkernels"
    )["items"]
    assert any(k["metadata"]["labels"].get(crds.LABEL_KERNEL_ID) == kernel["id"] for k in kernels)
    status, _ = support.http_delete(base + f"/api/kernels/{kernel['id']}", token)
    assert status == 204


def _has_secret(sandbox: SandboxCluster, namespace: str, name: str) -> bool:
    try:
        support.core(sandbox, f"/api/v1/namespaces/{namespace}/secrets/{name}")
    except Exception:
        return False
    return True


def test_notebook_in_another_namespace_gets_its_own_token_once_granted(
    sandbox: SandboxCluster, elastic: str
) -> None:
    namespace = support.new_namespace(sandbox, "ejgw")
    grant = json.dumps({"spec": {"notebookNamespaces": [namespace]}})
    sandbox.kubectl("patch", "jgw", GATEWAY, "-n", elastic, "--type=merge", "-p", grant)
    try:
        notebook = {
            "apiVersion": crds.API_VERSION,
            "kind": "JupyterNotebook",
            "metadata": {"name": "nb-remote", "namespace": namespace},
            "spec": {"gateway": {"name": GATEWAY, "namespace": elastic}},
        }
        sandbox.kubectl("apply", "-f", "-", input=json.dumps(notebook))
        wait_for(
            lambda: (
                support.custom(sandbox, "jupyternotebooks", namespace, "nb-remote")["status"][
                    "phase"
                ]
                == "Running"
            ),
            30,
            0.2,
            "the remote notebook Running",
        )
        wait_for(lambda: _has_secret(sandbox, namespace, "nb-remote-gateway"), 10, 0.2, "its token")
        own = support.secret_value(sandbox, namespace, "nb-remote-gateway", "client-token")
        assert own != gateway_token(sandbox, elastic)
        token = support.secret_value(sandbox, namespace, "nb-remote-token")
        base = support.service_url(sandbox, namespace, "nb-remote")
        _status, body = wait_for(
            lambda: (
                r if (r := support.http_get(base + "/api/kernelspecs", token))[0] == 200 else None
            ),
            10,
            0.2,
        )
        assert "python-kubernetes" in body["kernelspecs"]

        # Editing the notebook rolls it out: template labels reach the new pod.
        sandbox.kubectl(
            "patch", "jnb", "nb-remote", "-n", namespace, "--type=merge", "-p",
            '{"spec": {"template": {"metadata": {"labels": {"team": "a"}}}}}',
        )  # fmt: skip
        selector = f"{crds.LABEL_NOTEBOOK}=nb-remote"

        def relabelled() -> bool:
            path = f"/api/v1/namespaces/{namespace}/pods?labelSelector={selector}"
            pods = [
                p for p in support.core(sandbox, path)["items"]
                if not p["metadata"].get("deletionTimestamp")
            ]  # fmt: skip
            return len(pods) == 1 and pods[0]["metadata"]["labels"].get("team") == "a"

        wait_for(relabelled, 20, 0.2, "the notebook pod replaced with the new labels")
    finally:
        sandbox.delete_namespace(namespace)


def test_rbac_outside_the_namespace_follows_the_gateway(
    sandbox: SandboxCluster, operator: Path
) -> None:
    """kernelNamespace / kernelNamespaces RBAC: a Role + RoleBinding per namespace, created,
    removed when the namespace leaves the spec, and removed with the gateway (no owner
    reference can do that). Nothing cluster-wide, and an earlier release's ClusterRole and
    ClusterRoleBinding are deleted."""
    home = support.new_namespace(sandbox, "ejgw")
    kernels = support.new_namespace(sandbox, "ejgw")
    extra = support.new_namespace(sandbox, "ejgw")
    rbac = "/apis/rbac.authorization.k8s.io/v1"

    def role(namespace: str) -> str:
        return f"{rbac}/namespaces/{namespace}/roles/{home}.gw"

    def binding(namespace: str) -> str:
        return f"{rbac}/namespaces/{namespace}/rolebindings/{home}.gw"

    legacy_name = f"elastic-jupyter-gateway:{home}:gw"
    legacy = [f"{rbac}/clusterroles/{legacy_name}", f"{rbac}/clusterrolebindings/{legacy_name}"]

    def exists(path: str) -> bool:
        try:
            support.core(sandbox, path)
        except Exception:
            return False
        return True

    def patch(spec: dict[str, Any]) -> None:
        body = json.dumps({"spec": spec})
        sandbox.kubectl("patch", "jgw", "gw", "-n", home, "--type=merge", "-p", body)

    def env() -> dict[str, str]:
        path = f"/apis/apps/v1/namespaces/{home}/deployments/gw"
        container = support.core(sandbox, path)["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: e.get("value") for e in container["env"]}

    try:
        # What an earlier release wrote for allowKernelNamespace.
        sandbox.kubectl(
            "apply",
            "-f",
            "-",
            input=json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "List",
                    "items": [
                        {
                            "apiVersion": "rbac.authorization.k8s.io/v1",
                            "kind": "ClusterRole",
                            "metadata": {"name": legacy_name},
                            "rules": [],
                        },
                        {
                            "apiVersion": "rbac.authorization.k8s.io/v1",
                            "kind": "ClusterRoleBinding",
                            "metadata": {"name": legacy_name},
                            "roleRef": {
                                "apiGroup": "rbac.authorization.k8s.io",
                                "kind": "ClusterRole",
                                "name": legacy_name,
                            },
                            "subjects": [
                                {"kind": "ServiceAccount", "name": "gw", "namespace": home}
                            ],
                        },
                    ],
                }
            ),
        )
        assert all(exists(path) for path in legacy)
        # Both kernel namespaces accept kernels from the gateway's (docs/security.md).
        for namespace in (kernels, extra):
            accept = f"{crds.ANNOTATION_ACCEPT_KERNELS_FROM}={home}"
            sandbox.kubectl("annotate", "namespace", namespace, accept)
        gateway = {
            "apiVersion": crds.API_VERSION,
            "kind": "JupyterGateway",
            "metadata": {"name": "gw", "namespace": home},
            "spec": {
                "kernelNamespace": kernels,
                "allowKernelNamespace": True,
                "kernelNamespaces": [extra, home],
                "auth": {"mode": "disable"},
            },
        }
        sandbox.kubectl("apply", "-f", "-", input=json.dumps(gateway))
        wait_for(
            lambda: all(exists(p) for p in (role(kernels), binding(kernels), role(extra))),
            15,
            0.2,
            "a Role in the kernel namespace and in each listed one",
        )
        wait_for(lambda: not any(exists(p) for p in legacy), 15, 0.2, "the old grant deleted")
        assert not exists(role(home))  # the gateway's own namespace has its Role <name>
        bound = support.core(sandbox, binding(extra))
        assert bound["subjects"] == [{"kind": "ServiceAccount", "name": "gw", "namespace": home}]
        assert bound["roleRef"]["kind"] == "Role"
        assert env()["EJ_KERNEL_NAMESPACES"] == f"{extra},{home}"
        # The gateway's own Role: no pods, no events.
        own = support.core(sandbox, f"{rbac}/namespaces/{home}/roles/gw")
        assert not any({"pods", "events"} & set(rule["resources"]) for rule in own["rules"])

        patch({"kernelNamespaces": [home]})
        wait_for(
            lambda: not exists(role(extra)) and not exists(binding(extra)),
            15,
            0.2,
            "the Role of the namespace that left the list removed",
        )
        assert exists(role(kernels))
        patch({"kernelNamespaces": None, "kernelNamespace": None})
        wait_for(lambda: not exists(role(kernels)), 15, 0.2, "cleanup")
        patch({"kernelNamespace": kernels})
        wait_for(lambda: exists(role(kernels)), 15, 0.2, "the Role again")
        sandbox.kubectl("delete", "jgw", "gw", "-n", home, "--wait=false")
        wait_for(lambda: not exists(role(kernels)), 15, 0.2, "the Role removed with the gateway")
        wait_for(
            lambda: not exists(f"/apis/{crds.API_VERSION}/namespaces/{home}/jupytergateways/gw"),
            15,
            0.2,
            "the gateway gone (finalizer released)",
        )
    finally:
        for kind in ("clusterrolebinding", "clusterrole"):
            sandbox.kubectl("delete", kind, legacy_name, "--ignore-not-found", check=False)
        sandbox.delete_namespace(home)
        sandbox.delete_namespace(kernels)
        sandbox.delete_namespace(extra)


LAUNCHER_ARGV = [
    "kubeflow-launcher",
    "--RemoteProcessProxy.kernel-id",
    "{kernel_id}",
    "--RemoteProcessProxy.port-range",
    "{port_range}",
    "--RemoteProcessProxy.response-address",
    "{response_address}",
]


def _template_less_kernelspec(namespace: str, name: str, image: str) -> dict[str, Any]:
    """A JupyterKernelSpec with an image and a command but no template (the original allowed
    it)."""
    return {
        "apiVersion": crds.API_VERSION,
        "kind": "JupyterKernelSpec",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "language": "python",
            "displayName": name,
            "image": image,
            "command": LAUNCHER_ARGV,
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}},
        },
    }


def _notebook(sandbox: SandboxCluster, namespace: str) -> tuple[str, str]:
    nb = support.custom(sandbox, "jupyternotebooks", namespace, NOTEBOOK)
    token = support.secret_value(sandbox, namespace, nb["status"]["tokenSecretName"])
    return support.service_url(sandbox, namespace, NOTEBOOK), token


def _served_by_the_notebook(base: str, token: str, name: str) -> None:
    wait_for(
        lambda: (
            name
            in (support.http_get(base + "/api/kernelspecs", token)[1] or {}).get("kernelspecs", {})
        ),
        HOT_RELOAD_LIMIT,
        0.1,
        f"kernelspec {name} served through the notebook",
    )


def test_a_template_less_kernelspec_runs_in_the_default_kernel_pod(
    sandbox: SandboxCluster, elastic: str
) -> None:
    """No template: one container named kernel with the kernelspec's image and resources, and
    the operator's secure pod defaults."""
    name, image = "python-plain", "registry.example/team/kernel-py:2.0"
    sandbox.kubectl(
        "apply", "-f", "-", input=json.dumps(_template_less_kernelspec(elastic, name, image))
    )
    base, token = _notebook(sandbox, elastic)
    try:
        _served_by_the_notebook(base, token, name)
        jks = wait_for(
            lambda: (
                k
                if (k := support.custom(sandbox, "jupyterkernelspecs", elastic, name))
                .get("status", {})
                .get("image")
                else None
            ),
            10,
            0.2,
            "the kernelspec's status",
        )
        assert jks["status"]["valid"] is True
        assert jks["status"]["image"] == image
        status, kernel = support.http_post(base + "/api/kernels", {"name": name}, token, 60)
        assert status == 201, kernel
        path = f"/apis/{crds.GROUP}/{crds.VERSION}/namespaces/{elastic}/jupyterkernels"
        selector = f"?labelSelector={crds.LABEL_KERNEL_ID}={kernel['id']}"
        (jk,) = support.core(sandbox, path + selector)["items"]
        assert jk["status"]["phase"] == crds.PHASE_RUNNING
        pod = support.core(sandbox, f"/api/v1/namespaces/{elastic}/pods/{jk['status']['podName']}")
        (container,) = pod["spec"]["containers"]
        assert (container["name"], container["image"]) == ("kernel", image)
        assert container["resources"]["requests"] == {"cpu": "100m", "memory": "256Mi"}
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        status, _ = support.http_delete(base + f"/api/kernels/{kernel['id']}", token)
        assert status == 204
    finally:
        sandbox.kubectl("delete", "jks", name, "-n", elastic, "--ignore-not-found")


def test_the_gateways_reason_reaches_the_notebook_user(
    sandbox: SandboxCluster, elastic: str
) -> None:
    """A kernel that cannot start (its image cannot be pulled): ``POST /api/kernels`` and
    ``POST /api/sessions`` (JupyterLab's call) through the notebook server both answer with
    the gateway's reason as their message, without jupyter_server's "Ensure gateway url is
    valid" advice (the gateway did answer)."""
    name, image = "python-broken", "registry.invalid/no-such-kernel:1"
    broken = _template_less_kernelspec(elastic, name, image)
    broken["spec"]["template"] = {"name": "jupyterkerneltemplate-elastic"}
    sandbox.kubectl("apply", "-f", "-", input=json.dumps(broken))
    base, token = _notebook(sandbox, elastic)
    try:
        _served_by_the_notebook(base, token, name)
        status, body = support.http_post(base + "/api/kernels", {"name": name}, token, 60)
        assert status >= 400
        kernels_message = json.loads(body)["message"]
        session = {"path": "x.ipynb", "type": "notebook", "kernel": {"name": name}}
        status, body = support.http_post(base + "/api/sessions", session, token, 60)
        assert status >= 400
        sessions_message = json.loads(body)["message"]
        print("POST /api/kernels:", kernels_message)
        print("POST /api/sessions:", sessions_message)
        for message in (kernels_message, sessions_message):
            assert "ErrImagePull" in message or "ImagePullBackOff" in message, message
            assert image in message
            assert "Ensure gateway url" not in message and "%s" not in message
            assert not message.startswith("HTTP ")
    finally:
        sandbox.kubectl("delete", "jks", name, "-n", elastic, "--ignore-not-found")
