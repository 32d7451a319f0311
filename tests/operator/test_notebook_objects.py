"""JupyterNotebook → manifests: the pure builders of `notebook_objects`."""

from __future__ import annotations

from typing import Any

from elastic_jupyter import crds
from elastic_jupyter.operator import notebook_config
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
    # The notebook's own credential, never the gateway's admin token (<gateway>-auth).
    assert env_of(dep)["JUPYTER_GATEWAY_AUTH_TOKEN"] == {
        "secretKeyRef": {"name": "nb-gateway", "key": no.GATEWAY_TOKEN_KEY}
    }


def test_gateway_in_another_namespace_needs_its_grant() -> None:
    nb = notebook(gateway={"name": "gw", "namespace": "infra"})
    dep = no.deployment(nb, gateway("infra"))
    assert "--gateway-url=http://gw.infra.svc:8888" in first_container(dep)["args"]
    assert "JUPYTER_GATEWAY_AUTH_TOKEN" not in env_of(dep)
    assert not no.gateway_granted(nb, gateway("infra", notebookNamespaces=["other"]))
    status = no.status(nb, None, True, [], "now", granted=False)
    resolved = {c["type"]: c for c in status["conditions"]}[crds.CONDITION_GATEWAY_RESOLVED]
    assert resolved["status"] == "False"
    assert resolved["reason"] == crds.REASON_GATEWAY_NOT_GRANTED
    assert "add 'team' to its spec.notebookNamespaces" in resolved["message"]

    granted = gateway("infra", notebookNamespaces=["team"])
    assert no.gateway_granted(nb, granted)
    assert env_of(no.deployment(nb, granted))["JUPYTER_GATEWAY_AUTH_TOKEN"] == {
        "secretKeyRef": {"name": "nb-gateway", "key": no.GATEWAY_TOKEN_KEY}
    }
    assert no.gateway_client_key(nb) == "team.nb"
    clients = no.gateway_clients_secret(granted)
    assert clients["metadata"]["name"] == "gw-clients"
    assert clients["metadata"]["namespace"] == "infra"
    assert clients["metadata"]["ownerReferences"][0]["kind"] == "JupyterGateway"


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
    assert pod["metadata"]["annotations"]["note"] == "x"
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


def test_remote_access_is_allowed_but_login_still_required() -> None:
    # Reached as <nb>.<ns>.svc or through a port-forward: jupyter_server answers 403 "non-local
    # Host" to a host name unless remote access is allowed. That flag does not turn auth off.
    dep = no.deployment(notebook(gateway={"name": "gw"}), gateway())
    args = first_container(dep)["args"]
    assert "--ServerApp.allow_remote_access=True" in args
    assert not any(a.startswith("--IdentityProvider.token") for a in args)
    assert env_of(dep)["JUPYTER_TOKEN"] == {"secretKeyRef": {"name": "nb-token", "key": "token"}}


def test_server_config_map_holds_the_gateway_websocket_fix() -> None:
    nb = notebook(gateway={"name": "gw"})
    cm = no.config_map(nb)
    assert cm["kind"] == "ConfigMap"
    assert cm["metadata"]["name"] == "nb-config"
    assert cm["metadata"]["namespace"] == "team"
    assert cm["metadata"]["ownerReferences"][0]["uid"] == "uid-9"
    text = cm["data"][notebook_config.FILE_NAME]
    assert text == notebook_config.server_config(uses_gateway=True)
    assert "c.ServerApp.kernel_websocket_connection_class" in text
    # Local kernels need the stock connection class: nothing is configured without a gateway.
    local = no.config_map(notebook())["data"][notebook_config.FILE_NAME]
    assert "kernel_websocket_connection_class" not in local


def test_pod_mounts_the_config_and_names_it_in_jupyter_config_path() -> None:
    dep = no.deployment(notebook(gateway={"name": "gw"}), gateway())
    pod = dep["spec"]["template"]
    (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == no.CONFIG_VOLUME]
    assert volume["configMap"]["name"] == "nb-config"
    (mount,) = [m for m in first_container(dep)["volumeMounts"] if m["name"] == no.CONFIG_VOLUME]
    assert mount == {"name": no.CONFIG_VOLUME, "mountPath": no.CONFIG_MOUNT_PATH, "readOnly": True}
    assert env_of(dep)["JUPYTER_CONFIG_PATH"] == no.CONFIG_MOUNT_PATH
    digest = notebook_config.config_hash(notebook_config.server_config(uses_gateway=True))
    assert pod["metadata"]["annotations"][no.ANNOTATION_CONFIG_HASH] == digest


def test_template_config_path_volumes_and_mounts_are_kept() -> None:
    template = {
        "spec": {
            "containers": [
                {
                    "name": "lab",
                    "env": [{"name": "JUPYTER_CONFIG_PATH", "value": "/opt/conf"}],
                    "volumeMounts": [{"name": "work", "mountPath": "/home/jovyan/work"}],
                }
            ],
            "volumes": [{"name": "work", "persistentVolumeClaim": {"claimName": "nb-work"}}],
        }
    }
    dep = no.deployment(notebook(template=template, gateway={"name": "gw"}), gateway())
    # Ours first (jupyter gives earlier directories precedence), the template's after it.
    assert env_of(dep)["JUPYTER_CONFIG_PATH"] == f"{no.CONFIG_MOUNT_PATH}:/opt/conf"
    names = [m["name"] for m in first_container(dep)["volumeMounts"]]
    assert names == ["work", no.CONFIG_VOLUME]
    volumes = [v["name"] for v in dep["spec"]["template"]["spec"]["volumes"]]
    assert volumes == ["work", no.CONFIG_VOLUME]
    assert no.deployment(notebook(template=template, gateway={"name": "gw"}), gateway()) == dep


def test_adding_a_gateway_changes_the_config_and_rolls_the_pods() -> None:
    local = no.deployment(notebook(), None)
    with_gateway = no.deployment(notebook(gateway={"name": "gw"}), None)
    key = no.ANNOTATION_CONFIG_HASH
    local_pod, gateway_pod = local["spec"]["template"], with_gateway["spec"]["template"]
    assert local_pod["metadata"]["annotations"][key] != gateway_pod["metadata"]["annotations"][key]
    assert local["metadata"]["annotations"] != with_gateway["metadata"]["annotations"]


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
