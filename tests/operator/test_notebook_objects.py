"""JupyterNotebook → manifests: the pure builders of `notebook_objects`."""

from __future__ import annotations

from typing import Any

from elastic_jupyter import crds
from elastic_jupyter.operator import notebook_objects as no


def notebook(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": crds.API_VERSION,
        "kind": "JupyterNotebook",
        "metadata": {"name": "nb", "namespace": "team", "uid": "uid-9", "generation": 1},
        "spec": spec,
    }


def gateway(namespace: str = "team", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "gw", "namespace": namespace, "uid": "g"}, "spec": spec}


def first_container(dep: dict[str, Any]) -> dict[str, Any]:
    return dict(dep["spec"]["template"]["spec"]["containers"][0])


def env_of(dep: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in first_container(dep)["env"]}


def test_default_notebook_without_gateway() -> None:
    dep = no.deployment(notebook(), None)
    c = first_container(dep)
    assert c["name"] == "notebook"
    assert c["image"] == no.DEFAULT_IMAGE
    assert c["command"] == ["jupyter", "lab"]
    assert "--ServerApp.ip=$(POD_IP)" in c["args"]
    assert "--ServerApp.port=8888" in c["args"]
    assert not any(a.startswith("--gateway-url") for a in c["args"])
    assert not any("allow_root" in a for a in c["args"])
    env = env_of(dep)
    assert env["POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert env["KERNEL_USERNAME"] == "nb"
    assert env["JUPYTER_TOKEN"] == {"secretKeyRef": {"name": "nb-token", "key": "token"}}
    assert dep["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 1000
    assert dep["spec"]["selector"]["matchLabels"] == no.labels("nb")


def test_gateway_url_defaults_to_the_notebooks_namespace() -> None:
    dep = no.deployment(notebook(gateway={"name": "gw"}), gateway())
    assert "--gateway-url=http://gw.team.svc:8888" in first_container(dep)["args"]
    assert env_of(dep)["JUPYTER_GATEWAY_AUTH_TOKEN"] == {
        "secretKeyRef": {"name": "gw-auth", "key": "token"}
    }


def test_gateway_in_another_namespace_uses_the_copied_token() -> None:
    dep = no.deployment(notebook(gateway={"name": "gw", "namespace": "infra"}), gateway("infra"))
    assert "--gateway-url=http://gw.infra.svc:8888" in first_container(dep)["args"]
    assert env_of(dep)["JUPYTER_GATEWAY_AUTH_TOKEN"] == {
        "secretKeyRef": {"name": "nb-gateway", "key": no.GATEWAY_TOKEN_KEY}
    }


def test_gateway_without_auth_or_missing_gives_no_token() -> None:
    dep = no.deployment(notebook(gateway={"name": "gw"}), gateway(auth={"mode": "disable"}))
    assert "JUPYTER_GATEWAY_AUTH_TOKEN" not in env_of(dep)
    dep = no.deployment(notebook(gateway={"name": "gw"}), None)
    assert "JUPYTER_GATEWAY_AUTH_TOKEN" not in env_of(dep)
    assert "--gateway-url=http://gw.team.svc:8888" in first_container(dep)["args"]


def test_auth_disable_token_and_password() -> None:
    args = first_container(no.deployment(notebook(auth={"mode": "disable"}), None))["args"]
    assert "--IdentityProvider.token=" in args
    assert "--PasswordIdentityProvider.hashed_password=" in args
    assert not no.needs_token_secret({"auth": {"mode": "disable"}})

    dep = no.deployment(notebook(auth={"token": "abc"}), None)
    assert env_of(dep)["JUPYTER_TOKEN"] == "abc"
    assert not no.needs_token_secret({"auth": {"token": "abc"}})

    args = first_container(no.deployment(notebook(auth={"password": "argon2:xyz"}), None))["args"]
    assert "--PasswordIdentityProvider.hashed_password=argon2:xyz" in args
    assert no.needs_token_secret({})


def test_template_labels_annotations_and_container_merged() -> None:
    template = {
        "metadata": {"labels": {"team": "a"}, "annotations": {"note": "x"}, "app": "misplaced"},
        "spec": {
            "containers": [
                {
                    "name": "lab",
                    "image": "jupyter/scipy-notebook:2024",
                    "args": ["--ServerApp.ip=0.0.0.0"],
                    "env": [{"name": "KERNEL_USERNAME", "value": "alice"}],
                },
                {"name": "sidecar", "image": "busybox"},
            ],
            "nodeSelector": {"gpu": "no"},
        },
    }
    dep = no.deployment(notebook(template=template), None)
    pod = dep["spec"]["template"]
    assert pod["metadata"]["labels"]["team"] == "a"
    assert pod["metadata"]["labels"][crds.LABEL_NOTEBOOK] == "nb"
    assert pod["metadata"]["annotations"] == {"note": "x"}
    c = first_container(dep)
    assert c["image"] == "jupyter/scipy-notebook:2024"
    # The user's own flag comes last, so it wins over the operator's.
    assert c["args"][-1] == "--ServerApp.ip=0.0.0.0"
    assert env_of(dep)["KERNEL_USERNAME"] == "alice"
    assert pod["spec"]["containers"][1]["name"] == "sidecar"
    assert pod["spec"]["nodeSelector"] == {"gpu": "no"}
    assert no.misplaced_template_metadata(notebook(template=template)["spec"]) == ["app"]


def test_allow_root_only_when_running_as_root() -> None:
    template = {"spec": {"securityContext": {"runAsUser": 0}, "containers": [{"name": "n"}]}}
    args = first_container(no.deployment(notebook(template=template), None))["args"]
    assert "--ServerApp.allow_root=True" in args


def test_edits_change_the_hash() -> None:
    a = no.deployment(notebook(), None)
    b = no.deployment(notebook(auth={"mode": "disable"}), None)
    assert a["metadata"]["annotations"] != b["metadata"]["annotations"]
    assert a == no.deployment(notebook(), None)


def test_validate() -> None:
    assert no.validate({}) == []
    (problem,) = no.validate({"template": {"spec": {"restartPolicy": "Never"}}})
    assert "restartPolicy" in problem


def test_service_and_status() -> None:
    svc = no.service(notebook(port=9999))
    assert svc["spec"]["ports"][0]["port"] == 9999
    dep = {
        "metadata": {"generation": 1},
        "status": {
            "observedGeneration": 1,
            "replicas": 1,
            "readyReplicas": 1,
            "updatedReplicas": 1,
        },
    }
    st = no.status(notebook(gateway={"name": "gw"}), dep, True, [], "T")
    assert st["phase"] == "Running"
    assert st["gatewayURL"] == "http://gw.team.svc:8888"
    assert st["tokenSecretName"] == "nb-token"
    assert "kubectl port-forward -n team svc/nb 8888:8888" in st["accessHint"]
    assert "kubectl get secret -n team nb-token" in st["accessHint"]
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["GatewayResolved"]["status"] == "True"


def test_missing_gateway_condition_says_what_to_fix() -> None:
    st = no.status(notebook(gateway={"name": "gw"}), None, False, [], "T")
    cond = {c["type"]: c for c in st["conditions"]}["GatewayResolved"]
    assert cond["status"] == "False"
    assert cond["reason"] == crds.REASON_GATEWAY_NOT_FOUND
    assert "kubectl get jgw -n team" in cond["message"]
    assert st["phase"] == "Pending"
