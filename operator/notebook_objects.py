"""JupyterNotebook → Deployment, Service and token Secret: pure functions, no I/O.

The notebook server is jupyter_server 2 (JupyterLab). What the builder adds to the pod template
of ``spec.template`` (or to a default one):

* labels ``component=notebook``, the managed-by label and the notebook's name (also the
  Deployment's selector), merged with the template's labels; the template's annotations;
* on the first container: ``jupyter lab`` as the command when the container sets none, and the
  server's flags *before* the container's own args (so a user's flag wins): listen address and
  port, no browser, ``--gateway-url`` to the gateway's Service (namespace defaulting to the
  notebook's), auth flags;
* env: ``KERNEL_USERNAME`` (the notebook's name unless set: Enterprise Gateway refuses root and
  names kernel pods after it), ``JUPYTER_TOKEN`` from the token Secret,
  ``JUPYTER_GATEWAY_AUTH_TOKEN`` from the notebook's own gateway credential ``<name>-gateway``
  (never the gateway's admin token): the operator generates one token per notebook and registers
  its SHA-256 digest in the gateway's ``<gateway>-clients`` Secret, so the gateway knows which
  notebook is calling and shows it only its own kernels. A gateway in another namespace issues
  one only when its ``spec.notebookNamespaces`` lists the notebook's namespace;
* a non-root security context (uid 1000, gid 100, as in the Jupyter Docker Stacks) unless the
  template sets one; ``--ServerApp.allow_root`` only when the template asks for uid 0;
* ``--ServerApp.allow_remote_access=True``: the server is reached through its Service name or a
  port-forward, never as ``localhost``, and jupyter_server would answer 403 "non-local Host" to
  ``<name>.<namespace>.svc`` otherwise (its login token or password is still required);
* the ConfigMap ``<name>-config`` (:func:`config_map`, text from :mod:`.notebook_config`)
  mounted at :data:`CONFIG_MOUNT_PATH`, that directory put first in ``JUPYTER_CONFIG_PATH``,
  and the file's digest as a pod annotation (a new file rolls the pods out);
* in direct mode (``spec.kernels``), what :mod:`.direct_notebook_objects` adds instead of the
  gateway: the provisioner's classes and culler flags, the ``EJ_*`` env, the notebook's own
  ServiceAccount with its token, the kernelspec directory and the notebook image with our
  package.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from elastic_jupyter import crds
from elastic_jupyter.operator import (
    conditions,
    direct_notebook_objects,
    gateway_objects,
    notebook_config,
    ownership,
)

DEFAULT_IMAGE = "quay.io/jupyter/base-notebook:lab-4.2.5"
DEFAULT_COMMAND = ["jupyter", "lab"]
CONTAINER_NAME = "notebook"
#: Default listen address: the pod's IP (via the POD_IP env the builder adds).
POD_IP_ADDRESS = "$(POD_IP)"
#: Key of the notebook's own gateway token in ``<name>-gateway`` (earlier releases stored a copy
#: of the gateway's admin token under ``gateway-token``; such a Secret is replaced).
GATEWAY_TOKEN_KEY = "client-token"
RUN_AS_USER = 1000
RUN_AS_GROUP = 100
TEMPLATE_METADATA_KEYS = ("labels", "annotations")
CONFIG_VOLUME = "elastic-jupyter-config"
#: Not /etc/jupyter: images keep their own system-wide configuration there.
CONFIG_MOUNT_PATH = "/etc/elastic-jupyter/jupyter"
CONFIG_PATH_ENV = "JUPYTER_CONFIG_PATH"
ANNOTATION_CONFIG_HASH = f"{crds.GROUP}/config-hash"


# --- Names -----------------------------------------------------------------------------------


def labels(notebook_name: str) -> dict[str, str]:
    """Labels on every object of one notebook; also its pods' selector."""
    return {
        crds.LABEL_MANAGED_BY: crds.MANAGED_BY,
        crds.LABEL_COMPONENT: crds.COMPONENT_NOTEBOOK,
        crds.LABEL_NOTEBOOK: notebook_name,
    }


def token_secret_name(notebook_name: str) -> str:
    return crds.notebook_token_secret_name(notebook_name)


def gateway_copy_secret_name(notebook_name: str) -> str:
    """The notebook's own gateway credential (a token issued to this notebook alone)."""
    return f"{notebook_name}-gateway"


def gateway_client_key(notebook: Mapping[str, Any]) -> str:
    """The notebook's key in the gateway's clients Secret; also the kernels' owner name."""
    meta = notebook["metadata"]
    return f"{meta['namespace']}.{meta['name']}"


def gateway_granted(notebook: Mapping[str, Any], gateway: Mapping[str, Any] | None) -> bool:
    """Whether ``gateway`` lets this notebook use it: same namespace, or listed in the
    gateway's ``spec.notebookNamespaces``."""
    if gateway is None:
        return False
    namespace = notebook["metadata"]["namespace"]
    if gateway["metadata"]["namespace"] == namespace:
        return True
    allowed = (gateway.get("spec") or {}).get("notebookNamespaces") or []
    return namespace in [str(n) for n in allowed]


def not_granted_message(notebook: Mapping[str, Any]) -> str:
    ref = gateway_ref(notebook)
    assert ref is not None
    ns = notebook["metadata"]["namespace"]
    return (
        f"JupyterGateway {ref[0]}/{ref[1]} does not grant namespace {ns}: an owner of that "
        f"gateway must add {ns!r} to its spec.notebookNamespaces; until then this notebook "
        "gets no gateway token and cannot run kernels"
    )


def gateway_clients_secret(gateway: Mapping[str, Any]) -> dict[str, Any]:
    """The gateway's (initially empty) clients Secret, owned by the JupyterGateway."""
    meta = gateway["metadata"]
    owner = ownership.owner_reference(gateway, crds.JUPYTER_GATEWAY.kind)
    name = crds.gateway_clients_secret_name(meta["name"])
    labels = gateway_objects.labels(meta["name"])
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": ownership.metadata(owner, meta, labels, name),
        "type": "Opaque",
        "data": {},
    }


def config_map_name(notebook_name: str) -> str:
    return f"{notebook_name}-config"


def port(spec: Mapping[str, Any]) -> int:
    return int(spec.get("port") or crds.DEFAULT_NOTEBOOK_PORT)


def gateway_ref(notebook: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(namespace, name)`` of the JupyterGateway; the namespace defaults to the notebook's."""
    gateway = (notebook.get("spec") or {}).get("gateway") or {}
    if not gateway.get("name"):
        return None
    namespace = gateway.get("namespace") or notebook["metadata"]["namespace"]
    return str(namespace), str(gateway["name"])


def gateway_url(namespace: str, name: str) -> str:
    """The gateway's Service URL (the gateway's ``status.url``)."""
    return gateway_objects.gateway_url(name, namespace)


def auth_mode(spec: Mapping[str, Any]) -> str:
    return str((spec.get("auth") or {}).get("mode") or crds.DEFAULT_AUTH_MODE).lower()


def needs_token_secret(spec: Mapping[str, Any]) -> bool:
    """A token is generated into ``<name>-token`` unless auth is off or the spec gives one."""
    auth = spec.get("auth") or {}
    return auth_mode(spec) != crds.AUTH_MODE_DISABLE and not auth.get("token")


def gateway_auth(gateway: Mapping[str, Any] | None) -> tuple[bool, str]:
    """Whether a gateway requires its token, and the Secret holding it."""
    if gateway is None:
        return False, ""
    spec = gateway.get("spec") or {}
    secret = gateway_objects.secret_name(gateway["metadata"]["name"], spec)
    return gateway_objects.auth_enabled(spec), secret


def owner_reference(notebook: Mapping[str, Any]) -> dict[str, Any]:
    return ownership.owner_reference(notebook, crds.JUPYTER_NOTEBOOK.kind)


def _metadata(notebook: Mapping[str, Any], name: str | None = None) -> dict[str, Any]:
    meta = notebook["metadata"]
    return ownership.metadata(owner_reference(notebook), meta, labels(meta["name"]), name)


def spec_hash(obj: Any) -> str:
    return gateway_objects.spec_hash(obj)


# --- Validation ------------------------------------------------------------------------------


def misplaced_template_metadata(spec: Mapping[str, Any]) -> list[str]:
    """Keys of ``template.metadata`` other than labels/annotations (original sample, #67)."""
    metadata = (spec.get("template") or {}).get("metadata") or {}
    return sorted(k for k in metadata if k not in TEMPLATE_METADATA_KEYS)


def validate(spec: Mapping[str, Any]) -> list[str]:
    """Problems that stop the notebook from being deployed, each saying what to fix."""
    problems: list[str] = direct_notebook_objects.validate({"spec": spec})
    mode = auth_mode(spec)
    if mode not in crds.AUTH_MODES:
        problems.append(f"spec.auth.mode {mode!r} is not valid: use enable or disable")
    pod_spec = (spec.get("template") or {}).get("spec") or {}
    if "containers" in pod_spec and not pod_spec.get("containers"):
        problems.append("spec.template.spec.containers is empty: give at least one container")
    restart = pod_spec.get("restartPolicy")
    if restart not in (None, "Always"):
        problems.append(
            f"spec.template.spec.restartPolicy {restart!r} is not possible for a notebook "
            "(it runs in a Deployment): remove it or use Always"
        )
    return problems


# --- Secrets ---------------------------------------------------------------------------------


def token_secret(notebook: Mapping[str, Any], token: str) -> dict[str, Any]:
    """The notebook's login token Secret (token generated by the caller, never overwritten)."""
    name = token_secret_name(notebook["metadata"]["name"])
    return ownership.opaque_secret(_metadata(notebook, name), crds.AUTH_TOKEN_KEY, token)


def gateway_copy_secret(notebook: Mapping[str, Any], gateway_token: str) -> dict[str, Any]:
    """The notebook's own gateway token (generated by the caller)."""
    name = gateway_copy_secret_name(notebook["metadata"]["name"])
    return ownership.opaque_secret(_metadata(notebook, name), GATEWAY_TOKEN_KEY, gateway_token)


# --- Server configuration --------------------------------------------------------------------


def server_config(notebook: Mapping[str, Any]) -> str:
    """The text of the notebook server's ``jupyter_server_config.py``."""
    uses_gateway = gateway_ref(notebook) is not None
    return notebook_config.server_config(
        uses_gateway and not direct_notebook_objects.is_direct(notebook)
    )


def config_map(notebook: Mapping[str, Any]) -> dict[str, Any]:
    """The ConfigMap holding the server's configuration file."""
    name = config_map_name(notebook["metadata"]["name"])
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(notebook, name),
        "data": {notebook_config.FILE_NAME: server_config(notebook)},
    }


def _with_config_path(env: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``env`` with our config directory first in ``JUPYTER_CONFIG_PATH``; a template's own
    value is kept after it (jupyter gives earlier directories precedence)."""
    for i, entry in enumerate(env):
        if entry.get("name") == CONFIG_PATH_ENV and "valueFrom" not in entry:
            own = str(entry.get("value") or "")
            value = f"{CONFIG_MOUNT_PATH}:{own}" if own else CONFIG_MOUNT_PATH
            return [*env[:i], {"name": CONFIG_PATH_ENV, "value": value}, *env[i + 1 :]]
    if any(entry.get("name") == CONFIG_PATH_ENV for entry in env):
        return env  # set from a Secret/ConfigMap by the template: left as it is
    return [*env, {"name": CONFIG_PATH_ENV, "value": CONFIG_MOUNT_PATH}]


# --- Pod template ----------------------------------------------------------------------------


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _runs_as_root(pod_spec: Mapping[str, Any], container: Mapping[str, Any]) -> bool:
    pod_sc = pod_spec.get("securityContext") or {}
    c_sc = container.get("securityContext") or {}
    uid = c_sc.get("runAsUser", pod_sc.get("runAsUser"))
    return uid is not None and int(uid) == 0


def server_args(
    notebook: Mapping[str, Any],
    gateway: Mapping[str, Any] | None,
    runs_as_root: bool,
    bind_address: str,
) -> list[str]:
    """The flags the operator gives jupyter_server (before the container's own args)."""
    spec = notebook.get("spec") or {}
    auth = spec.get("auth") or {}
    args = [
        f"--ServerApp.ip={bind_address}",
        f"--ServerApp.port={port(spec)}",
        "--ServerApp.port_retries=0",
        "--ServerApp.open_browser=False",
        # Reached by its Service name or a port-forward: without this, jupyter_server refuses
        # any Host that is not localhost or an IP. Login is still required (auth flags below).
        "--ServerApp.allow_remote_access=True",
    ]
    ref = gateway_ref(notebook)
    if direct_notebook_objects.is_direct(notebook):
        args += direct_notebook_objects.server_args(notebook)
    elif ref is not None:
        args.append(f"--gateway-url={gateway_url(*ref)}")
    if auth_mode(spec) == crds.AUTH_MODE_DISABLE:
        # No token and no password (the original's mode: disable).
        args += ["--IdentityProvider.token=", "--PasswordIdentityProvider.hashed_password="]
        args.append("--PasswordIdentityProvider.password_required=False")
    elif auth.get("password"):
        args.append(f"--PasswordIdentityProvider.hashed_password={auth['password']}")
    if runs_as_root:
        args.append("--ServerApp.allow_root=True")
    del gateway  # the token travels as env, see notebook_env
    return args


def notebook_env(
    notebook: Mapping[str, Any], gateway: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """Env the operator adds to the server container (the container's own entries win)."""
    meta, spec = notebook["metadata"], notebook.get("spec") or {}
    auth = spec.get("auth") or {}
    env: list[dict[str, Any]] = [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "KERNEL_USERNAME", "value": meta["name"]},
    ]
    if auth_mode(spec) != crds.AUTH_MODE_DISABLE:
        if auth.get("token"):
            env.append({"name": "JUPYTER_TOKEN", "value": str(auth["token"])})
        else:
            env.append(
                _secret_env("JUPYTER_TOKEN", token_secret_name(meta["name"]), crds.AUTH_TOKEN_KEY)
            )
    if direct_notebook_objects.is_direct(notebook):
        return env + direct_notebook_objects.env(notebook)
    ref = gateway_ref(notebook)
    enabled, _secret = gateway_auth(gateway)
    if ref is not None and enabled and gateway_granted(notebook, gateway):
        env.append(
            _secret_env(
                "JUPYTER_GATEWAY_AUTH_TOKEN",
                gateway_copy_secret_name(meta["name"]),
                GATEWAY_TOKEN_KEY,
            )
        )
    return env


def pod_template(
    notebook: Mapping[str, Any],
    gateway: Mapping[str, Any] | None,
    bind_address: str = POD_IP_ADDRESS,
) -> dict[str, Any]:
    """The notebook pod template: ``spec.template`` completed as the module docstring says."""
    meta, spec = notebook["metadata"], notebook.get("spec") or {}
    template = copy.deepcopy(dict(spec.get("template") or {}))
    template_meta = template.get("metadata") or {}
    pod_spec: dict[str, Any] = dict(template.get("spec") or {})
    containers = [dict(c) for c in pod_spec.get("containers") or [{"name": CONTAINER_NAME}]]
    first = containers[0]
    first.setdefault("name", CONTAINER_NAME)
    direct = direct_notebook_objects.is_direct(notebook)
    if not first.get("image"):
        first["image"] = direct_notebook_objects.DEFAULT_IMAGE if direct else DEFAULT_IMAGE
    if not first.get("command"):
        first["command"] = list(DEFAULT_COMMAND)
    runs_as_root = _runs_as_root(pod_spec, first)
    first["args"] = server_args(notebook, gateway, runs_as_root, bind_address) + list(
        first.get("args") or []
    )
    own_env = list(first.get("env") or [])
    own_names = {str(e.get("name")) for e in own_env}
    first["env"] = [e for e in notebook_env(notebook, gateway) if e["name"] not in own_names]
    first["env"] = _with_config_path(first["env"] + own_env)
    mounts = [m for m in first.get("volumeMounts") or [] if m.get("name") != CONFIG_VOLUME]
    mounts.append({"name": CONFIG_VOLUME, "mountPath": CONFIG_MOUNT_PATH, "readOnly": True})
    first["volumeMounts"] = mounts
    if direct:
        direct_notebook_objects.complete_container(first)
    ports = list(first.get("ports") or [])
    if not any(p.get("containerPort") == port(spec) for p in ports):
        ports.append({"name": "http", "containerPort": port(spec), "protocol": "TCP"})
    first["ports"] = ports
    first.setdefault(
        "readinessProbe",
        {"tcpSocket": {"port": port(spec)}, "periodSeconds": 5, "failureThreshold": 3},
    )
    containers[0] = first
    pod_spec["containers"] = containers
    volumes = [v for v in pod_spec.get("volumes") or [] if v.get("name") != CONFIG_VOLUME]
    volumes.append({"name": CONFIG_VOLUME, "configMap": {"name": config_map_name(meta["name"])}})
    pod_spec["volumes"] = volumes
    pod_spec.setdefault("restartPolicy", "Always")
    pod_spec.setdefault("enableServiceLinks", False)
    if direct:  # the provisioner calls the API: the notebook's own ServiceAccount and token
        direct_notebook_objects.complete_pod_spec(pod_spec, notebook)
    # jupyter_server never calls the Kubernetes API: the pod gets no credentials (a terminal
    # in JupyterLab would otherwise hand the namespace's "default" token to every user).
    # A template that needs them sets serviceAccountName and automountServiceAccountToken.
    pod_spec.setdefault("automountServiceAccountToken", False)
    if "securityContext" not in pod_spec and not runs_as_root:
        pod_spec["securityContext"] = {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_GROUP,
            "fsGroup": RUN_AS_GROUP,
        }
    pod_labels = {**dict(template_meta.get("labels") or {}), **labels(meta["name"])}
    pod_meta: dict[str, Any] = {
        "labels": pod_labels,
        "annotations": {
            **dict(template_meta.get("annotations") or {}),
            ANNOTATION_CONFIG_HASH: notebook_config.config_hash(server_config(notebook)),
        },
    }
    return {"metadata": pod_meta, "spec": pod_spec}


def deployment(
    notebook: Mapping[str, Any],
    gateway: Mapping[str, Any] | None,
    bind_address: str = POD_IP_ADDRESS,
) -> dict[str, Any]:
    """The notebook Deployment (one replica; Recreate so a ReadWriteOnce volume is freed)."""
    name = notebook["metadata"]["name"]
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(notebook),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels(name)},
            "strategy": {"type": "Recreate"},
            "revisionHistoryLimit": 10,
            "template": pod_template(notebook, gateway, bind_address),
        },
    }
    body["metadata"]["annotations"] = {crds.ANNOTATION_SPEC_HASH: spec_hash(body["spec"])}
    return body


def service(notebook: Mapping[str, Any]) -> dict[str, Any]:
    """ClusterIP Service in front of the notebook server."""
    meta, spec = notebook["metadata"], notebook.get("spec") or {}
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(notebook),
        "spec": {
            "type": "ClusterIP",
            "selector": labels(meta["name"]),
            "ports": [
                {"name": "http", "port": port(spec), "targetPort": port(spec), "protocol": "TCP"}
            ],
        },
    }
    body["metadata"]["annotations"] = {crds.ANNOTATION_SPEC_HASH: spec_hash(body["spec"])}
    return body


# --- Status ----------------------------------------------------------------------------------


def url(notebook: Mapping[str, Any]) -> str:
    meta, spec = notebook["metadata"], notebook.get("spec") or {}
    return f"http://{meta['name']}.{meta['namespace']}.svc:{port(spec)}"


def access_hint(notebook: Mapping[str, Any]) -> str:
    """How to open the notebook from one's machine."""
    meta, spec = notebook["metadata"], notebook.get("spec") or {}
    ns, name, p = meta["namespace"], meta["name"], port(spec)
    forward = f"kubectl port-forward -n {ns} svc/{name} {p}:{p}, then open http://localhost:{p}/lab"
    auth = spec.get("auth") or {}
    if auth_mode(spec) == crds.AUTH_MODE_DISABLE:
        return forward + " (no login: auth is disabled)"
    if auth.get("token"):
        return forward + "?token=<spec.auth.token>"
    secret = token_secret_name(name)
    return (
        forward
        + f"?token=$(kubectl get secret -n {ns} {secret} -o jsonpath='{{.data.token}}' "
        + "| base64 -d)"
    )


def status(
    notebook: Mapping[str, Any],
    deployment_obj: Mapping[str, Any] | None,
    gateway_found: bool,
    problems: Sequence[str],
    now: str,
    granted: bool = True,
) -> dict[str, Any]:
    """The JupyterNotebook status: phase, ready replicas, URLs, token Secret, conditions."""
    meta, spec = notebook["metadata"], notebook.get("spec") or {}
    generation = meta.get("generation")
    previous = (notebook.get("status") or {}).get("conditions") or []
    progress = conditions.rollout(deployment_obj)
    ready, is_ready = progress.ready, progress.is_ready
    ref = gateway_ref(notebook)

    phase = conditions.phase(problems, is_ready)

    if is_ready:
        ready_reason, ready_message = crds.REASON_NOTEBOOK_READY, "the notebook server is ready"
    elif problems:
        ready_reason, ready_message = conditions.problem_reason(problems), "; ".join(problems)
    elif deployment_obj is None:
        ready_reason, ready_message = (
            crds.REASON_DEPLOYMENT_MISSING,
            "the notebook Deployment is not created",
        )
    else:
        ready_reason, ready_message = (
            crds.REASON_NOTEBOOK_NOT_READY,
            "the notebook pod is not ready yet",
        )

    result = [
        conditions.condition(
            crds.CONDITION_READY, is_ready, ready_reason, ready_message, now, previous, generation
        ),
        conditions.valid_condition(problems, now, previous, generation),
    ]
    if ref is None:
        result.append(
            conditions.condition(
                crds.CONDITION_GATEWAY_RESOLVED,
                True,
                crds.REASON_NO_GATEWAY,
                (
                    "direct mode: the notebook server starts each kernel as a JupyterKernel in "
                    f"namespace {direct_notebook_objects.kernel_namespace(notebook)}"
                    if direct_notebook_objects.is_direct(notebook)
                    else "no spec.gateway: kernels run inside the notebook pod"
                ),
                now,
                previous,
                generation,
            )
        )
    elif gateway_found and not granted:
        result.append(
            conditions.condition(
                crds.CONDITION_GATEWAY_RESOLVED,
                False,
                crds.REASON_GATEWAY_NOT_GRANTED,
                not_granted_message(notebook),
                now,
                previous,
                generation,
            )
        )
    elif gateway_found:
        result.append(
            conditions.condition(
                crds.CONDITION_GATEWAY_RESOLVED,
                True,
                crds.REASON_GATEWAY_FOUND,
                f"kernels run through JupyterGateway {ref[0]}/{ref[1]}",
                now,
                previous,
                generation,
            )
        )
    else:
        result.append(
            conditions.condition(
                crds.CONDITION_GATEWAY_RESOLVED,
                False,
                crds.REASON_GATEWAY_NOT_FOUND,
                gateway_missing_message(notebook),
                now,
                previous,
                generation,
            )
        )
    return {
        "phase": phase,
        "readyReplicas": ready,
        "url": url(notebook),
        "serviceName": meta["name"],
        "gatewayURL": gateway_url(*ref) if ref is not None else "",
        "tokenSecretName": token_secret_name(meta["name"]) if needs_token_secret(spec) else "",
        "accessHint": access_hint(notebook),
        "observedGeneration": generation,
        "conditions": result,
    }


def gateway_missing_message(notebook: Mapping[str, Any]) -> str:
    ref = gateway_ref(notebook)
    assert ref is not None
    ns, name = ref
    return (
        f"spec.gateway names JupyterGateway {name} in namespace {ns}, which does not exist: "
        f"create it (kubectl get jgw -n {ns}) or fix spec.gateway.name/namespace; the notebook "
        "starts but cannot run kernels until then"
    )
