"""A JupyterNotebook in direct mode (``spec.kernels``): its extra objects, pure functions, no I/O.

In direct mode the notebook server (jupyter_server 2) starts each kernel itself, as a
JupyterKernel created by the kernel provisioner of :mod:`elastic_jupyter.provisioner` (no
JupyterGateway). What that needs from the operator, built here:

* the server's flags (:func:`server_args`): the provisioner's kernel manager and the live
  kernelspec manager (:data:`KERNEL_MANAGER_CLASS`, :data:`KERNEL_SPEC_MANAGER_CLASS`) and
  jupyter_server's culler settings from ``spec.kernels``; never ``--gateway-url``;
* the server's environment (:func:`env`): who owns the kernels (``EJ_NOTEBOOK_*``), where they
  run (``EJ_KERNEL_NAMESPACE``), the response port, the kernelspecs to serve and where;
* a ServiceAccount ``<name>-notebook`` whose token the pod mounts (it calls the Kubernetes API),
  bound to exactly what the provisioner and the kernelspec manager call (:func:`rbac`): in the
  kernel namespace JupyterKernels, the kernels' Secrets and JupyterKernelTemplates by name; in
  the notebook's namespace a read of the kernelspec ConfigMaps. Nothing cluster-wide;
* two NetworkPolicies (:func:`network_policies`): the notebook's kernels accept ingress only
  from the notebook's pods on the kernel port range, and the notebook's pods accept the
  response port only from its kernels (the HTTP port from anywhere: every request logs in).

Another kernel namespace must accept the notebook's namespace (:mod:`.namespace_consent`, as
for gateways); objects there carry the owner annotation instead of an owner reference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from elastic_jupyter import crds
from elastic_jupyter.operator import conditions, network_policy, ownership

MODE_DIRECT: Final = "Direct"
MODE_GATEWAY: Final = "Gateway"
KERNEL_MANAGER_CLASS: Final = "elastic_jupyter.provisioner.server.DirectMappingKernelManager"
KERNEL_SPEC_MANAGER_CLASS: Final = "elastic_jupyter.provisioner.kernelspecs.DirectKernelSpecManager"
#: The notebook image with our package (``images/notebook/``): direct mode needs the
#: provisioner inside the notebook server.
DEFAULT_IMAGE: Final = "ghcr.io/elastic-jupyter/notebook:0.1.0"
RESPONSE_PORT: Final = 8877
KERNELSPEC_VOLUME: Final = "elastic-jupyter-kernelspecs"
KERNELSPEC_DIR: Final = "/var/lib/elastic-jupyter/kernelspecs"

# The environment of a direct-mode notebook server (the provisioner's names are in crds).
ENV_NOTEBOOK_NAME: Final = crds.ENV_NOTEBOOK_NAME
ENV_NOTEBOOK_NAMESPACE: Final = crds.ENV_NOTEBOOK_NAMESPACE
ENV_NOTEBOOK_UID: Final = crds.ENV_NOTEBOOK_UID
ENV_RESPONSE_PORT: Final = crds.ENV_RESPONSE_PORT
#: Where the provisioner's listener binds: the pod's IP (its own default in a pod is 0.0.0.0).
ENV_RESPONSE_BIND_IP: Final = "EJ_RESPONSE_BIND_IP"
#: Comma-separated JupyterKernelSpec names to serve (empty: all of the namespace).
ENV_KERNELSPECS: Final = "ELASTIC_JUPYTER_KERNELSPECS"
#: Namespace whose kernelspec ConfigMaps are served (the notebook's).
ENV_KERNELSPEC_NAMESPACE: Final = "ELASTIC_JUPYTER_KERNELSPEC_NAMESPACE"

# What direct-mode kernels carry (written by the provisioner).
ANNOTATION_NOTEBOOK_NAMESPACE: Final = crds.ANNOTATION_NOTEBOOK_NAMESPACE
ANNOTATION_NOTEBOOK_UID: Final = crds.ANNOTATION_NOTEBOOK_UID

#: What the provisioner calls on JupyterKernels (create; watch; patch annotations; delete).
KERNEL_VERBS: Final = ["get", "list", "watch", "create", "patch", "delete"]
#: Each kernel's Secret (launch token, connection key): created, read back, patched.
KERNEL_SECRET_VERBS: Final = ["create", "get", "patch"]
#: The kernelspec manager lists and watches the kernelspec ConfigMaps by label.
KERNELSPEC_CONFIGMAP_VERBS: Final = ["list", "watch"]
RBAC_API: Final = "rbac.authorization.k8s.io/v1"


# --- Mode and names --------------------------------------------------------------------------


def kernels(spec: Mapping[str, Any]) -> Mapping[str, Any] | None:
    value = spec.get("kernels")
    return value if isinstance(value, Mapping) else None


def is_direct(notebook: Mapping[str, Any]) -> bool:
    """``spec.kernels`` present and its mode not ``Gateway``."""
    section = kernels(notebook.get("spec") or {})
    return section is not None and str(section.get("mode") or MODE_DIRECT) == MODE_DIRECT


def kernel_namespace(notebook: Mapping[str, Any]) -> str:
    section = kernels(notebook.get("spec") or {}) or {}
    return str(section.get("namespace") or notebook["metadata"]["namespace"])


def other_kernel_namespace(notebook: Mapping[str, Any]) -> str | None:
    """The kernel namespace when it is not the notebook's own (consent needed), else None."""
    namespace = kernel_namespace(notebook)
    return None if namespace == notebook["metadata"]["namespace"] else namespace


def service_account_name(notebook_name: str) -> str:
    return f"{notebook_name}-notebook"


def role_name(notebook: Mapping[str, Any], namespace: str) -> str:
    """``<name>-notebook`` at home; ``<notebook ns>.<name>-notebook`` in a kernel namespace."""
    meta = notebook["metadata"]
    prefix = "" if namespace == meta["namespace"] else f"{meta['namespace']}."
    return f"{prefix}{meta['name']}-notebook"


def kernel_selector(notebook: Mapping[str, Any]) -> str:
    """Label selector of the JupyterKernels this notebook's server creates (any namespace)."""
    return f"{crds.LABEL_NOTEBOOK}={notebook['metadata']['name']}"


def owned_kernels(
    notebook: Mapping[str, Any], items: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """The JupyterKernels of this very notebook (its uid annotation): a namesake notebook of
    another namespace sharing the kernel namespace owns the others."""
    uid = str(notebook["metadata"].get("uid"))
    return [
        k
        for k in items
        if ((k.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_NOTEBOOK_UID) == uid
    ]


# --- Validation ------------------------------------------------------------------------------


def validate(notebook: Mapping[str, Any]) -> list[str]:
    """What the CRD schema cannot say about ``spec.kernels`` (``InvalidSpec``)."""
    spec = notebook.get("spec") or {}
    if is_direct(notebook) and (spec.get("gateway") or {}).get("name"):
        return [
            conditions.Problem(
                "spec.kernels (direct mode) and spec.gateway are both set: remove spec.gateway "
                "to start kernels from the notebook server, or set spec.kernels.mode: Gateway "
                "to run them through the gateway",
                crds.REASON_INVALID_SPEC,
            )
        ]
    return []


# --- Server flags and environment ------------------------------------------------------------


def cull_idle_timeout(notebook: Mapping[str, Any]) -> int:
    section = kernels(notebook.get("spec") or {}) or {}
    value = section.get("cullIdleTimeout")
    return crds.DEFAULT_CULL_IDLE_TIMEOUT if value is None else int(value)


def cull_interval(notebook: Mapping[str, Any]) -> int:
    section = kernels(notebook.get("spec") or {}) or {}
    return int(section.get("cullInterval") or crds.DEFAULT_CULL_INTERVAL)


def kernelspec_names(notebook: Mapping[str, Any]) -> list[str]:
    section = kernels(notebook.get("spec") or {}) or {}
    return [str(n) for n in section.get("kernelSpecs") or []]


def server_args(notebook: Mapping[str, Any]) -> list[str]:
    """The direct-mode flags of jupyter_server (after the common ones)."""
    return [
        f"--ServerApp.kernel_manager_class={KERNEL_MANAGER_CLASS}",
        f"--ServerApp.kernel_spec_manager_class={KERNEL_SPEC_MANAGER_CLASS}",
        # jupyter_server's own culler: an idle kernel is shut down (its JupyterKernel deleted).
        f"--MappingKernelManager.cull_idle_timeout={cull_idle_timeout(notebook)}",
        f"--MappingKernelManager.cull_interval={cull_interval(notebook)}",
    ]


def env(notebook: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The direct-mode environment of the server container (a template's own entries win)."""
    meta = notebook["metadata"]
    values = [
        (ENV_NOTEBOOK_NAME, meta["name"]),
        (ENV_NOTEBOOK_NAMESPACE, meta["namespace"]),
        (ENV_NOTEBOOK_UID, str(meta.get("uid") or "")),
        (crds.ENV_KERNEL_NAMESPACE, kernel_namespace(notebook)),
        (ENV_RESPONSE_PORT, str(RESPONSE_PORT)),
        (crds.ENV_KERNELSPEC_DIR, KERNELSPEC_DIR),
        (ENV_KERNELSPEC_NAMESPACE, meta["namespace"]),
        (ENV_KERNELSPECS, ",".join(kernelspec_names(notebook))),
    ]
    pod_ip = {
        "name": ENV_RESPONSE_BIND_IP,
        "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
    }
    return [*({"name": name, "value": value} for name, value in values), pod_ip]


def complete_pod_spec(pod_spec: dict[str, Any], notebook: Mapping[str, Any]) -> None:
    """Give the pod its ServiceAccount and token (it calls the API) and the kernelspec
    directory; a template's own choices are kept."""
    pod_spec.setdefault("serviceAccountName", service_account_name(notebook["metadata"]["name"]))
    pod_spec.setdefault("automountServiceAccountToken", True)
    volumes = [v for v in pod_spec.get("volumes") or [] if v.get("name") != KERNELSPEC_VOLUME]
    volumes.append({"name": KERNELSPEC_VOLUME, "emptyDir": {}})
    pod_spec["volumes"] = volumes


def complete_container(container: dict[str, Any]) -> None:
    mounts = [m for m in container.get("volumeMounts") or [] if m.get("name") != KERNELSPEC_VOLUME]
    mounts.append({"name": KERNELSPEC_VOLUME, "mountPath": KERNELSPEC_DIR})
    container["volumeMounts"] = mounts


# --- ServiceAccount and RBAC -----------------------------------------------------------------


def _labels(notebook: Mapping[str, Any]) -> dict[str, str]:
    return {
        crds.LABEL_MANAGED_BY: crds.MANAGED_BY,
        crds.LABEL_COMPONENT: crds.COMPONENT_NOTEBOOK,
        crds.LABEL_NOTEBOOK: notebook["metadata"]["name"],
    }


def _metadata(notebook: Mapping[str, Any], name: str, namespace: str) -> dict[str, Any]:
    """Owned by the JupyterNotebook at home; the owner annotation elsewhere (no owner
    reference crosses namespaces)."""
    meta = notebook["metadata"]
    if namespace == meta["namespace"]:
        owner = ownership.owner_reference(notebook, crds.JUPYTER_NOTEBOOK.kind)
        return ownership.metadata(owner, meta, _labels(notebook), name)
    return {
        "name": name,
        "namespace": namespace,
        "labels": _labels(notebook),
        "annotations": {crds.ANNOTATION_OWNER: ownership.owner_annotation(notebook)},
    }


def service_account(notebook: Mapping[str, Any]) -> dict[str, Any]:
    meta = notebook["metadata"]
    name = service_account_name(meta["name"])
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(notebook, name, meta["namespace"]),
    }


def _rule(group: str, resource: str, verbs: Sequence[str]) -> dict[str, Any]:
    return {"apiGroups": [group], "resources": [resource], "verbs": list(verbs)}


def kernel_rules() -> list[dict[str, Any]]:
    """What the provisioner calls in the kernel namespace (provisioner/__init__.py lists it)."""
    return [
        _rule(crds.GROUP, crds.JUPYTER_KERNEL.plural, KERNEL_VERBS),
        # Read by name when a kernelspec names a template; never listed.
        _rule(crds.GROUP, crds.JUPYTER_KERNEL_TEMPLATE.plural, ["get"]),
        # The kernel's Secret, created right after its JupyterKernel, which owns it.
        _rule("", "secrets", KERNEL_SECRET_VERBS),
    ]


def kernelspec_rules() -> list[dict[str, Any]]:
    """The kernelspec manager's watch on the kernelspec ConfigMaps (by label: RBAC cannot
    narrow list/watch by name, so this reads every ConfigMap of the notebook's namespace)."""
    return [_rule("", "configmaps", KERNELSPEC_CONFIGMAP_VERBS)]


def _role_and_binding(
    notebook: Mapping[str, Any], namespace: str, rules: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    meta = notebook["metadata"]
    name = role_name(notebook, namespace)
    role = {
        "apiVersion": RBAC_API,
        "kind": "Role",
        "metadata": _metadata(notebook, name, namespace),
        "rules": rules,
    }
    binding = {
        "apiVersion": RBAC_API,
        "kind": "RoleBinding",
        "metadata": _metadata(notebook, name, namespace),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [
            {
                "kind": "ServiceAccount",
                "name": service_account_name(meta["name"]),
                "namespace": meta["namespace"],
            }
        ],
    }
    return [role, binding]


def home_rbac(notebook: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Role + RoleBinding in the notebook's namespace: the kernelspec read, and the kernel
    rules when the kernels run there."""
    rules = kernelspec_rules()
    if other_kernel_namespace(notebook) is None:
        rules = [*kernel_rules(), *rules]
    return _role_and_binding(notebook, notebook["metadata"]["namespace"], rules)


def external_rbac(notebook: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Role + RoleBinding in another kernel namespace (after its consent), or nothing."""
    namespace = other_kernel_namespace(notebook)
    if namespace is None or not is_direct(notebook):
        return []
    return _role_and_binding(notebook, namespace, kernel_rules())


# --- NetworkPolicies -------------------------------------------------------------------------


def kernel_policy_name(notebook: Mapping[str, Any], namespace: str) -> str:
    return role_name(notebook, namespace).removesuffix("-notebook") + "-kernels"


def _kernel_pods(notebook: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "matchLabels": {
            crds.LABEL_COMPONENT: crds.COMPONENT_KERNEL,
            crds.LABEL_NOTEBOOK: notebook["metadata"]["name"],
        }
    }


def _peer(selector: dict[str, Any], namespace: str, here: str) -> dict[str, Any]:
    peer: dict[str, Any] = {"podSelector": selector}
    if namespace != here:
        peer["namespaceSelector"] = {
            "matchLabels": {network_policy.NAMESPACE_NAME_LABEL: namespace}
        }
    return peer


def kernel_policy(notebook: Mapping[str, Any]) -> dict[str, Any]:
    """The notebook's kernel pods: ingress only from its notebook pods, on the port range."""
    meta = notebook["metadata"]
    namespace = kernel_namespace(notebook)
    first, _, last = crds.DEFAULT_PORT_RANGE.partition("..")
    notebook_pods = {"matchLabels": _labels(notebook)}
    return {
        "apiVersion": network_policy.API_VERSION,
        "kind": "NetworkPolicy",
        "metadata": _metadata(notebook, kernel_policy_name(notebook, namespace), namespace),
        "spec": {
            "podSelector": _kernel_pods(notebook),
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [_peer(notebook_pods, meta["namespace"], namespace)],
                    "ports": [{"protocol": "TCP", "port": int(first), "endPort": int(last)}],
                }
            ],
        },
    }


def notebook_policy(notebook: Mapping[str, Any], http_port: int) -> dict[str, Any]:
    """The notebook pods: the response port only from its kernels, HTTP from anywhere."""
    meta = notebook["metadata"]
    here = meta["namespace"]
    return {
        "apiVersion": network_policy.API_VERSION,
        "kind": "NetworkPolicy",
        "metadata": _metadata(notebook, role_name(notebook, here), here),
        "spec": {
            "podSelector": {"matchLabels": _labels(notebook)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [_peer(_kernel_pods(notebook), kernel_namespace(notebook), here)],
                    "ports": [{"protocol": "TCP", "port": RESPONSE_PORT}],
                },
                {"ports": [{"protocol": "TCP", "port": http_port}]},
            ],
        },
    }


# --- All together ----------------------------------------------------------------------------


def home_objects(notebook: Mapping[str, Any], http_port: int) -> list[dict[str, Any]]:
    """Objects in the notebook's namespace, owned by the JupyterNotebook (garbage-collected)."""
    objects = [
        service_account(notebook),
        *home_rbac(notebook),
        notebook_policy(notebook, http_port),
    ]
    if other_kernel_namespace(notebook) is None:
        objects.append(kernel_policy(notebook))
    return objects


def external_objects(notebook: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Objects in another kernel namespace: the operator deletes them (role first, binding
    last: :func:`apply.delete_objects` deletes in reverse)."""
    if other_kernel_namespace(notebook) is None or not is_direct(notebook):
        return []
    return [*external_rbac(notebook), kernel_policy(notebook)]


def identity(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return (str(obj["kind"]), str(meta.get("namespace") or ""), str(meta["name"]))


def stale_external_objects(
    before: Mapping[str, Any], after: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """External objects the previous spec had and this one no longer renders."""
    keep = {identity(o) for o in external_objects(after)}
    return [o for o in external_objects(before) if identity(o) not in keep]
