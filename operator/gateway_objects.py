"""JupyterGateway → the Kubernetes objects that run Enterprise Gateway 3.3 with our plugin.

Everything here is a pure function: a JupyterGateway (the dictionary the API returns) goes in,
manifests come out. The kopf handlers in :mod:`elastic_jupyter.operator.gateways` only fetch,
compare and write them.

A gateway ``<name>`` in namespace ``<ns>`` owns, all named ``<name>`` unless noted:

* ServiceAccount, Role and RoleBinding: least privilege for the plugin (JupyterKernels create,
  get, list, watch, patch (session annotations, never status), delete; templates get; its own
  JupyterGateway read; kernelspec ConfigMaps list/watch; the per-kernel Secrets create/get/patch,
  never list, watch or delete; its clients Secret get by name), pinned by
  ``tests/security/test_component_rbac.py``. The plugin
  reads no pods and writes no events (it reads JupyterKernel status), so neither is granted.
  Never cluster-admin, never pod creation, nothing cluster-wide: the plugin runs one
  JupyterKernel list+watch per namespace (``gateway_plugin/kernel_watch.py``), so each other
  namespace its kernels may run in - ``spec.kernelNamespace``, and with
  ``spec.allowKernelNamespace`` each of ``spec.kernelNamespaces`` - gets a Role and RoleBinding
  ``<ns>.<name>`` with the kernel rules only. Those have no owner reference (it cannot cross
  namespaces): the operator deletes them. The ClusterRole and ClusterRoleBinding
  ``elastic-jupyter-gateway:<ns>:<name>`` earlier releases wrote for ``allowKernelNamespace``
  are only ever deleted (:func:`legacy_cluster_rbac`).
* Secret ``<name>-auth`` (or ``spec.auth.secretName``), key ``token``: the gateway's auth
  token, generated once by the operator. EG reads it as ``EG_AUTH_TOKEN`` and answers 401 to
  requests without it; JupyterNotebooks pointing at the gateway receive it.
* Deployment: one ``jupyter-enterprisegateway`` container configured from the spec. The
  kernelspecs it serves are kept current by the plugin's ``SyncedKernelSpecManager`` while the
  pod runs, so adding, editing or deleting a JupyterKernelSpec, or editing ``spec.kernels``,
  never restarts it. Every other field is part of the pod template: editing it rolls out.
* Service: HTTP (8888) and the kernel response port (8877).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from elastic_jupyter import crds
from elastic_jupyter.operator import ownership

HTTP_PORT = crds.GATEWAY_PORT
RESPONSE_PORT = 8877
DEFAULT_IMAGE = "ghcr.io/elastic-jupyter/gateway:0.1.0"
DEFAULT_CULL_IDLE_TIMEOUT = crds.DEFAULT_CULL_IDLE_TIMEOUT
DEFAULT_CULL_INTERVAL = crds.DEFAULT_CULL_INTERVAL
DEFAULT_KERNEL_LAUNCH_TIMEOUT = crds.DEFAULT_KERNEL_LAUNCH_TIMEOUT
DEFAULT_LOG_LEVEL = crds.DEFAULT_LOG_LEVEL
DEFAULT_PORT_RANGE = crds.DEFAULT_PORT_RANGE
ANY_PORT = "0..0"
LOG_LEVELS = crds.LOG_LEVELS
AUTH_DISABLE = crds.AUTH_MODE_DISABLE
TOKEN_KEY = crds.AUTH_TOKEN_KEY
CONTAINER_NAME = "gateway"
SPEC_HASH_ANNOTATION = crds.ANNOTATION_SPEC_HASH
KERNELSPEC_MANAGER_CLASS = "elastic_jupyter.gateway_plugin.kernelspec_sync.SyncedKernelSpecManager"
# Where the plugin's kernelspec sync writes ``kernels/<name>/kernel.json`` (an emptyDir).
KERNELSPEC_DIR = "/var/lib/elastic-jupyter/kernelspecs"
RUN_AS_USER = 1000
RUN_AS_GROUP = 100

# What the plugin does with JupyterKernels in every namespace its kernels run in: list+watch
# them (kernel_watch.py), create one per start, read one by name, delete it (launcher.py), and
# merge-patch its annotations to record its session and the replica that owns it
# (session_store.py, adoption.py). Never update, never status: the status is the operator's.
KERNEL_VERBS = ["get", "list", "watch", "create", "patch", "delete"]
REMOTE_KERNEL_VERBS = KERNEL_VERBS
# The per-kernel Secret (gateway_plugin/kernel_secret.py): created, read back when a gateway
# adopts the kernel, merged into. Never list/watch (no reading other Secrets in bulk), never
# delete (the JupyterKernel owns it: garbage collection removes it).
KERNEL_SECRET_VERBS = ["create", "get", "patch"]
SESSION_MANAGER_CLASS = "elastic_jupyter.gateway_plugin.session_store.KubeflowKernelSessionManager"
KERNEL_MANAGER_CLASS = "elastic_jupyter.gateway_plugin.adoption.KubeflowMappingKernelManager"
READ_VERBS = ["get", "list", "watch"]


# --- Names and small helpers ---------------------------------------------------------------


def labels(gateway_name: str) -> dict[str, str]:
    """Labels on every object of one gateway; also its pods' selector."""
    return {
        crds.LABEL_MANAGED_BY: crds.MANAGED_BY,
        crds.LABEL_COMPONENT: crds.COMPONENT_GATEWAY,
        crds.LABEL_GATEWAY: gateway_name,
    }


def secret_name(gateway_name: str, spec: Mapping[str, Any] | None = None) -> str:
    """The Secret holding a gateway's token: ``spec.auth.secretName`` or ``<name>-auth``."""
    auth = (spec or {}).get("auth") or {}
    return str(auth.get("secretName") or crds.gateway_auth_secret_name(gateway_name))


def auth_enabled(spec: Mapping[str, Any]) -> bool:
    """Gateway auth is on unless ``spec.auth.mode`` is explicitly ``disable``."""
    auth = spec.get("auth") or {}
    return str(auth.get("mode") or "enable").lower() != AUTH_DISABLE


def kernel_namespace(gateway: Mapping[str, Any]) -> str:
    """Where the gateway creates JupyterKernels: ``spec.kernelNamespace`` or its own."""
    spec = gateway.get("spec") or {}
    return str(spec.get("kernelNamespace") or gateway["metadata"]["namespace"])


def kernel_namespaces(spec: Mapping[str, Any]) -> list[str]:
    """``spec.kernelNamespaces``: the namespaces clients may pick, without repeats, in order."""
    return list(dict.fromkeys(str(n) for n in spec.get("kernelNamespaces") or []))


def rbac_namespaces(gateway: Mapping[str, Any]) -> list[str]:
    """The namespaces other than the gateway's own where its kernels may run.

    ``spec.kernelNamespace``, and with ``spec.allowKernelNamespace`` each of
    ``spec.kernelNamespaces`` (without ``allowKernelNamespace`` the plugin refuses every other
    namespace, so rights there would only widen what a leaked ServiceAccount token allows). With
    ``allowKernelNamespace`` and no list, clients may name any namespace: the operator grants
    none, an administrator binds the gateway where wanted.
    """
    spec = gateway.get("spec") or {}
    names = [kernel_namespace(gateway)]
    if spec.get("allowKernelNamespace"):
        names += kernel_namespaces(spec)
    own = gateway["metadata"]["namespace"]
    return [name for name in dict.fromkeys(names) if name != own]


def kernel_namespace_role_name(gateway: Mapping[str, Any]) -> str:
    """Name of the Role (and RoleBinding) a gateway gets in each other kernel namespace."""
    meta = gateway["metadata"]
    return f"{meta['namespace']}.{meta['name']}"


def service_host(name: str, namespace: str) -> str:
    """The DNS name of a gateway's Service, resolvable from any namespace."""
    return f"{name}.{namespace}.svc"


def gateway_url(name: str, namespace: str) -> str:
    """The URL notebooks use to reach a gateway (its Service, HTTP port)."""
    return f"http://{service_host(name, namespace)}:{HTTP_PORT}"


def spec_hash(obj: Any) -> str:
    """A stable digest of a manifest part, to tell whether an update is needed."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def owner_reference(gateway: Mapping[str, Any]) -> dict[str, Any]:
    """The controller owner reference pointing at a JupyterGateway."""
    return ownership.owner_reference(gateway, crds.JUPYTER_GATEWAY.kind)


def _metadata(gateway: Mapping[str, Any], name: str | None = None) -> dict[str, Any]:
    meta = gateway["metadata"]
    return ownership.metadata(owner_reference(gateway), meta, labels(meta["name"]), name)


# --- Spec interpretation ---------------------------------------------------------------------


def kernel_names(spec: Mapping[str, Any]) -> list[str]:
    """``spec.kernels``: the kernelspec names served; empty means all in the namespace."""
    return [str(k) for k in spec.get("kernels") or []]


def served_kernelspecs(spec: Mapping[str, Any], existing: Sequence[str]) -> list[str]:
    """The kernel names a gateway serves, given the JupyterKernelSpecs of its namespace: the
    built-in Python kernelspec when it names none and the namespace has none."""
    wanted = kernel_names(spec)
    present = set(existing)
    if not wanted and not present:
        return [crds.BUILTIN_KERNELSPEC]
    return sorted(present if not wanted else {k for k in wanted if k in present})


def missing_kernelspecs(spec: Mapping[str, Any], existing: Sequence[str]) -> list[str]:
    """Names in ``spec.kernels`` with no JupyterKernelSpec of that name in the namespace."""
    present = set(existing)
    return [name for name in kernel_names(spec) if name not in present]


def cull_idle_timeout(spec: Mapping[str, Any]) -> int:
    """Idle seconds before EG culls a kernel; 0 disables culling (as do negative values)."""
    value = spec.get("cullIdleTimeout")
    timeout = DEFAULT_CULL_IDLE_TIMEOUT if value is None else int(value)
    return max(timeout, 0)


def cull_interval(spec: Mapping[str, Any]) -> int:
    value = spec.get("cullInterval")
    interval = DEFAULT_CULL_INTERVAL if value is None else int(value)
    return interval if interval > 0 else DEFAULT_CULL_INTERVAL


def kernel_launch_timeout(spec: Mapping[str, Any]) -> int:
    value = spec.get("kernelLaunchTimeout")
    timeout = DEFAULT_KERNEL_LAUNCH_TIMEOUT if value is None else int(value)
    return timeout if timeout > 0 else DEFAULT_KERNEL_LAUNCH_TIMEOUT


def log_level(spec: Mapping[str, Any]) -> str:
    return str(spec.get("logLevel") or DEFAULT_LOG_LEVEL).upper()


def validate(spec: Mapping[str, Any]) -> list[str]:
    """Problems the schema may not catch, each saying what to fix; empty means valid."""
    problems: list[str] = []
    level = log_level(spec)
    if level not in LOG_LEVELS:
        problems.append(f"spec.logLevel {level!r} is not valid: use one of {', '.join(LOG_LEVELS)}")
    port_range = str(spec.get("portRange") or DEFAULT_PORT_RANGE)
    if port_range not in (DEFAULT_PORT_RANGE, ANY_PORT):
        problems.extend(_port_range_problems(port_range))
    default = spec.get("defaultKernel")
    kernels = kernel_names(spec)
    if default and kernels and default not in kernels:
        problems.append(
            f"spec.defaultKernel {default!r} is not in spec.kernels ({', '.join(kernels)}): "
            "add it to spec.kernels or choose one of them"
        )
    return problems


def _port_range_problems(port_range: str) -> list[str]:
    lower_text, sep, upper_text = port_range.partition("..")
    if not sep or not lower_text.isdigit() or not upper_text.isdigit():
        return [f"spec.portRange {port_range!r} must look like 40000..41000 (or 0..0 for any)"]
    lower, upper = int(lower_text), int(upper_text)
    if not 1024 <= lower < upper <= 65535 or upper - lower < 1000:
        return [
            f"spec.portRange {port_range!r} must lie within 1024..65535 and span at least "
            "1000 ports (Enterprise Gateway's minimum), or be 0..0"
        ]
    return []


# --- RBAC ------------------------------------------------------------------------------------


def service_account(gateway: Mapping[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _metadata(gateway)}


def rule(
    group: str, resource: str, verbs: Sequence[str], names: Sequence[str] = ()
) -> dict[str, Any]:
    """One PolicyRule (``names``: only these objects; list/watch then need a name selector)."""
    out: dict[str, Any] = {"apiGroups": [group], "resources": [resource], "verbs": list(verbs)}
    if names:
        out["resourceNames"] = list(names)
    return out


def _kernel_rules(kernel_verbs: list[str]) -> list[dict[str, Any]]:
    return [
        rule(crds.GROUP, crds.JUPYTER_KERNEL.plural, kernel_verbs),
        # Read by name when a kernelspec names one (launcher.py); never listed.
        rule(crds.GROUP, crds.JUPYTER_KERNEL_TEMPLATE.plural, ["get"]),
        # Each kernel's Secret (launch token, session key), created right after its
        # JupyterKernel, which owns it (gateway_plugin/kernel_secret.py).
        rule("", "secrets", KERNEL_SECRET_VERBS),
    ]


def role(gateway: Mapping[str, Any]) -> dict[str, Any]:
    """What the plugin in the gateway pod may do in its namespace, and nothing more.

    One line per rule; a feature that makes the plugin call something new adds its line here
    (and a row to the can-i matrix in ``tests/security/test_component_rbac.py``).
    """
    name = gateway["metadata"]["name"]
    rules = [
        *_kernel_rules(KERNEL_VERBS),
        # Only its own gateway (owner of its kernels, source of spec.kernels): read by name
        # and watched with a metadata.name field selector (kernelspec_sync.py).
        rule(crds.GROUP, crds.JUPYTER_GATEWAY.plural, READ_VERBS, [name]),
        # Kernelspec ConfigMaps rendered by the operator, found by label (kernelspec hot
        # reload): list+watch, so not narrowed by name.
        rule("", "configmaps", ["list", "watch"]),
        # The digests of its notebooks' tokens (gateway_plugin/client_auth.py), by name.
        rule("", "secrets", ["get"], [crds.gateway_clients_secret_name(name)]),
    ]
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _metadata(gateway),
        "rules": rules,
    }


def _binding(
    gateway: Mapping[str, Any], metadata: dict[str, Any], role_name: str
) -> dict[str, Any]:
    meta = gateway["metadata"]
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": metadata,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role_name},
        "subjects": [
            {"kind": "ServiceAccount", "name": meta["name"], "namespace": meta["namespace"]}
        ],
    }


def role_binding(gateway: Mapping[str, Any]) -> dict[str, Any]:
    return _binding(gateway, _metadata(gateway), gateway["metadata"]["name"])


def _kernel_namespace_metadata(gateway: Mapping[str, Any], namespace: str) -> dict[str, Any]:
    # No owner reference can cross namespaces: the owner annotation says whose these are, so
    # that a namesake somebody else made is never patched or deleted.
    return {
        "name": kernel_namespace_role_name(gateway),
        "namespace": namespace,
        "labels": labels(gateway["metadata"]["name"]),
        "annotations": {crds.ANNOTATION_OWNER: ownership.owner_annotation(gateway)},
    }


def kernel_namespace_rbac(gateway: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A Role and RoleBinding ``<ns>.<name>`` in each of :func:`rbac_namespaces`.

    Only the kernel rules: the gateway's own JupyterGateway and the kernelspec ConfigMaps are
    read in its own namespace alone. The binding names the gateway's ServiceAccount in the
    gateway's namespace; never a ClusterRoleBinding.
    """
    name = kernel_namespace_role_name(gateway)
    objects: list[dict[str, Any]] = []
    for namespace in rbac_namespaces(gateway):
        objects.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": _kernel_namespace_metadata(gateway, namespace),
                "rules": _kernel_rules(REMOTE_KERNEL_VERBS),
            }
        )
        objects.append(_binding(gateway, _kernel_namespace_metadata(gateway, namespace), name))
    return objects


def legacy_cluster_rbac_name(gateway: Mapping[str, Any]) -> str:
    """Name of the ClusterRole and ClusterRoleBinding earlier releases wrote for
    ``spec.allowKernelNamespace``."""
    meta = gateway["metadata"]
    return f"elastic-jupyter-gateway:{meta['namespace']}:{meta['name']}"


def legacy_cluster_rbac(gateway: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The cluster-wide grant of earlier releases, to delete (never to create).

    Earlier releases let the plugin watch JupyterKernels in every namespace through these; it
    now watches namespace by namespace, so they only widen what the gateway may do. Listed role
    first, binding last (:func:`~elastic_jupyter.operator.apply.delete_objects` deletes in
    reverse, so the grant goes before the rules).
    """
    name = legacy_cluster_rbac_name(gateway)
    api_version = "rbac.authorization.k8s.io/v1"
    return [
        {"apiVersion": api_version, "kind": "ClusterRole", "metadata": {"name": name}},
        {"apiVersion": api_version, "kind": "ClusterRoleBinding", "metadata": {"name": name}},
    ]


def external_objects(gateway: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Objects in other namespaces (no owner reference can reach them): the operator's to
    delete."""
    return kernel_namespace_rbac(gateway)


def kernel_selector(gateway: Mapping[str, Any]) -> str:
    """Label selector of the JupyterKernels a gateway's plugin creates (any namespace)."""
    return f"{crds.LABEL_GATEWAY}={gateway['metadata']['name']}"


def owned_kernels(
    gateway: Mapping[str, Any], kernels: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """The JupyterKernels (matching :func:`kernel_selector`) that this very gateway launched:
    its uid label, or - for kernels from before that label - its namespace in
    ``spec.gateway``. A same-name gateway of another namespace owns the others."""
    meta = gateway["metadata"]
    owned = []
    for kernel in kernels:
        uid = ((kernel.get("metadata") or {}).get("labels") or {}).get(crds.LABEL_GATEWAY_UID)
        origin = ((kernel.get("spec") or {}).get("gateway") or {}).get("namespace")
        if uid == meta.get("uid") or (not uid and origin == meta["namespace"]):
            owned.append(kernel)
    return owned


def stale_external_objects(
    before: Mapping[str, Any], after: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """External objects ``before`` (the previous spec) had and ``after`` no longer renders: a
    namespace left ``kernelNamespace``/``kernelNamespaces``, or ``allowKernelNamespace`` went."""
    keep = {_identity(o) for o in external_objects(after)}
    return [o for o in external_objects(before) if _identity(o) not in keep]


def _identity(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return (str(obj["kind"]), str(meta.get("namespace") or ""), str(meta["name"]))


def auth_secret(gateway: Mapping[str, Any], token: str) -> dict[str, Any]:
    """The Secret holding the gateway's token (generated by the caller, never overwritten)."""
    meta, spec = gateway["metadata"], gateway.get("spec") or {}
    return ownership.opaque_secret(
        _metadata(gateway, secret_name(meta["name"], spec)), TOKEN_KEY, token
    )


# --- Deployment and Service ------------------------------------------------------------------


def _env(name: str, value: str | int | bool) -> dict[str, Any]:
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return {"name": name, "value": text}


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def container_env(gateway: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The gateway container's environment: what EG and our plugin read."""
    meta, spec = gateway["metadata"], gateway.get("spec") or {}
    env: list[dict[str, Any]] = [
        _field_env("EG_IP", "status.podIP"),
        # The replica's identity on the kernels it owns (gateway_plugin/adoption.py).
        _field_env("POD_NAME", "metadata.name"),
        _env("EG_PORT", HTTP_PORT),
        _env("EG_PORT_RETRIES", 0),
        _env("EG_NAME", meta["name"]),
        _env("EG_NAMESPACE", meta["namespace"]),
        _env("EG_SHARED_NAMESPACE", True),
        _field_env("EG_RESPONSE_IP", "status.podIP"),
        _env("EG_RESPONSE_PORT", RESPONSE_PORT),
        _env("EG_RESPONSE_PORT_RETRIES", 0),
        _env("EG_PORT_RANGE", str(spec.get("portRange") or DEFAULT_PORT_RANGE)),
        _env("EG_KERNEL_LAUNCH_TIMEOUT", kernel_launch_timeout(spec)),
        # Culling and the log level are traitlets EG only takes as flags (see container_args);
        # the env copies tell `kubectl describe` readers what is in effect.
        _env("EG_CULL_IDLE_TIMEOUT", cull_idle_timeout(spec)),
        _env("EG_CULL_INTERVAL", cull_interval(spec)),
        _env("EG_CULL_CONNECTED", bool(spec.get("cullConnected", False))),
        _env("EG_LOG_LEVEL", log_level(spec)),
        _env("EG_MIRROR_WORKING_DIRS", False),
        # jupyter_server's GatewayClient lists kernels (/api/status, the running-kernels panel);
        # EG refuses that with 403 unless listing is on. Requests are token-protected anyway.
        _env("EG_LIST_KERNELS", True),
        # The kernelspec cache would serve stale specs; the sync keeps the directory current
        # and jupyter_client re-reads it on every request.
        _env("EG_KERNELSPEC_CACHE_ENABLED", False),
        _env(crds.ENV_KERNELSPEC_DIR, KERNELSPEC_DIR),
        _env(crds.ENV_KERNEL_NAMESPACE, kernel_namespace(gateway)),
        _env(crds.ENV_ALLOW_KERNEL_NAMESPACE, bool(spec.get("allowKernelNamespace", False))),
        _env("PYTHONUNBUFFERED", 1),
    ]
    # Only when set: an env entry that is always there would roll out every existing gateway.
    if kernel_namespaces(spec):
        env.append(_env(crds.ENV_KERNEL_NAMESPACES, ",".join(kernel_namespaces(spec))))
    if spec.get("defaultKernel"):
        env.append(_env("EG_DEFAULT_KERNEL_NAME", str(spec["defaultKernel"])))
    if spec.get("clusterRole"):
        env.append(_env("EG_KERNEL_CLUSTER_ROLE", str(spec["clusterRole"])))
    if spec.get("allowedClientEnv"):
        env.append(_env("EG_CLIENT_ENVS", ",".join(str(e) for e in spec["allowedClientEnv"])))
    if auth_enabled(spec):
        ref = {"name": secret_name(meta["name"], spec), "key": TOKEN_KEY}
        env.append({"name": "EG_AUTH_TOKEN", "valueFrom": {"secretKeyRef": ref}})
    # The user's env comes last so it can override any of the above on purpose.
    env.extend(dict(item) for item in spec.get("env") or [])
    return env


def container_args(spec: Mapping[str, Any]) -> list[str]:
    """Flags for what EG only takes as traitlets (culling, log level, kernelspec manager)."""
    return [
        f"--port={HTTP_PORT}",
        f"--RemoteMappingKernelManager.cull_idle_timeout={cull_idle_timeout(spec)}",
        f"--RemoteMappingKernelManager.cull_interval={cull_interval(spec)}",
        "--RemoteMappingKernelManager.cull_connected="
        + ("True" if spec.get("cullConnected") else "False"),
        f"--log-level={log_level(spec)}",
        f"--EnterpriseGatewayApp.kernel_spec_manager_class={KERNELSPEC_MANAGER_CLASS}",
        # Kernel sessions live on the JupyterKernels: restarts and rollouts keep every kernel.
        f"--EnterpriseGatewayApp.kernel_session_manager_class={SESSION_MANAGER_CLASS}",
        # Replicas serve every kernel: hydrate on miss on every route, owner-only culling.
        f"--EnterpriseGatewayApp.kernel_manager_class={KERNEL_MANAGER_CLASS}",
    ]


def deployment(gateway: Mapping[str, Any]) -> dict[str, Any]:
    """The gateway Deployment; its pod template changes whenever a rolled-out field changes."""
    meta, spec = gateway["metadata"], gateway.get("spec") or {}
    name = meta["name"]
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": str(spec.get("image") or DEFAULT_IMAGE),
        "imagePullPolicy": str(spec.get("imagePullPolicy") or "IfNotPresent"),
        "command": ["jupyter-enterprisegateway"],
        "args": container_args(spec),
        "env": container_env(gateway),
        "ports": [
            {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
            {"name": "response", "containerPort": RESPONSE_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": {
            "tcpSocket": {"port": HTTP_PORT},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "volumeMounts": [{"name": "kernelspecs", "mountPath": KERNELSPEC_DIR}],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if spec.get("resources"):
        container["resources"] = dict(spec["resources"])
    pod_labels = labels(name)
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(gateway),
        "spec": {
            # Active-active: any replica serves any kernel (gateway_plugin/adoption.py).
            "replicas": int(spec.get("replicas") or 1),
            "selector": {"matchLabels": pod_labels},
            # A new gateway pod is ready before the old one goes: kernel starts never fail.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {"labels": dict(pod_labels)},
                "spec": {
                    "serviceAccountName": name,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": RUN_AS_USER,
                        "runAsGroup": RUN_AS_GROUP,
                        "fsGroup": RUN_AS_GROUP,
                    },
                    "containers": [container],
                    "volumes": [{"name": "kernelspecs", "emptyDir": {}}],
                },
            },
        },
    }
    body["metadata"]["annotations"] = {SPEC_HASH_ANNOTATION: spec_hash(body["spec"])}
    return body


def service(gateway: Mapping[str, Any]) -> dict[str, Any]:
    """ClusterIP Service: notebooks use ``http``; ``response`` carries kernel connection info."""
    name = gateway["metadata"]["name"]
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(gateway),
        "spec": {
            "type": "ClusterIP",
            "selector": labels(name),
            "sessionAffinity": "ClientIP",
            "ports": [
                {"name": "http", "port": HTTP_PORT, "targetPort": HTTP_PORT, "protocol": "TCP"},
                {
                    "name": "response",
                    "port": RESPONSE_PORT,
                    "targetPort": RESPONSE_PORT,
                    "protocol": "TCP",
                },
            ],
        },
    }
    body["metadata"]["annotations"] = {SPEC_HASH_ANNOTATION: spec_hash(body["spec"])}
    return body


def owned_objects(gateway: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every object of a gateway except its Secret (whose token the caller generates)."""
    return [
        service_account(gateway),
        role(gateway),
        role_binding(gateway),
        *external_objects(gateway),
        deployment(gateway),
        service(gateway),
    ]
