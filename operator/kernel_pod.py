"""JupyterKernel → Pod manifest: a pure function, no I/O.

Called by :mod:`elastic_jupyter.operator.kernels` when a JupyterKernel has no pod yet. The pod is
a bare Pod (not a Deployment): Enterprise Gateway restarts kernels itself, and a pod restarted by
a controller would report its connection info to a gateway that no longer waits for it. So the
pod is ``restartPolicy: Never`` whatever the template says.

What the builder adds to the CR's ``spec.template``:

* name and namespace of the JupyterKernel; an owner reference to it (``controller``,
  ``blockOwnerDeletion``) so that deleting the kernel garbage-collects the pod;
* labels ``kernel_id`` and ``component=kernel`` (what EG's own tooling looks for), the
  managed-by label, the kernel's name, and the gateway/kernelspec/username labels found on the
  JupyterKernel;
* annotations: the template's, ``cluster-autoscaler.kubernetes.io/safe-to-evict: "false"`` (an
  evicted kernel loses its users' state) and the JupyterKernel generation the pod was built from
  (so the status can say which spec it describes);
* on the kernel container (the one named ``kernel``, else the first): the in-pod launcher
  ``kubeflow-kernel-launcher`` as the command unless the template sets one, and the pod's
  identity from the downward API (``POD_NAME``, ``POD_NAMESPACE``, ``POD_IP``, and the
  launcher's ``KERNEL_POD_IP``) unless the template already sets those names;
* the operator's default kernel image (``--default-kernel-image``) on the kernel container when
  neither the kernelspec nor the template gave it one;
* ``automountServiceAccountToken: false`` unless the template sets it;
* when the JupyterKernel names *the kernel's Secret* (annotation ``kubeflow.tkestack.io/
  kernel-secret``, set by the gateway, which creates the Secret): that Secret mounted read-only at
  ``/var/run/elastic-jupyter/kernel`` in the kernel container, and ``KERNEL_LAUNCH_TOKEN_FILE``
  pointing at its ``launch-token`` key. Only this pod sees it (never the JupyterKernel's env,
  which every reader of the object sees); the pod waits for the Secret like any mount;
* a non-root security context by default (pod: ``runAsNonRoot``, uid 1000, gid 100, seccomp
  ``RuntimeDefault``; each container: no privilege escalation, all capabilities dropped). Every
  key the template sets wins over the default.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from elastic_jupyter import crds
from elastic_jupyter.kernel_launcher import env as launcher_env

#: The in-pod launcher's console script (see ``pyproject.toml``).
LAUNCHER_COMMAND: Final = ("kubeflow-kernel-launcher",)
#: Pod annotation: ``metadata.generation`` of the JupyterKernel the pod was built from.
ANNOTATION_GENERATION: Final = f"{crds.GROUP}/kernel-generation"
ANNOTATION_SAFE_TO_EVICT: Final = "cluster-autoscaler.kubernetes.io/safe-to-evict"

#: Downward-API env added to the kernel container: name → fieldRef path.
POD_IDENTITY_ENV: Final[tuple[tuple[str, str], ...]] = (
    ("POD_NAME", "metadata.name"),
    ("POD_NAMESPACE", "metadata.namespace"),
    ("POD_IP", "status.podIP"),
    (launcher_env.KERNEL_POD_IP, "status.podIP"),
)

DEFAULT_POD_SECURITY_CONTEXT: Final[Mapping[str, Any]] = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "runAsGroup": 100,
    "seccompProfile": {"type": "RuntimeDefault"},
}
DEFAULT_CONTAINER_SECURITY_CONTEXT: Final[Mapping[str, Any]] = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}

#: Labels of the JupyterKernel that the pod inherits (the gateway sets them on the CR).
INHERITED_LABELS: Final = (
    crds.LABEL_KERNEL_ID,
    crds.LABEL_GATEWAY,
    crds.LABEL_KERNELSPEC,
    crds.LABEL_KERNEL_USERNAME,
    crds.LABEL_NOTEBOOK,  # direct mode: the notebook's NetworkPolicy selects its kernels by it
)


class InvalidKernelError(ValueError):
    """The JupyterKernel cannot become a pod (no template, no containers…); the message says why.

    The handler reports it as status ``Failed``/``PodCreateFailed`` instead of retrying.
    """


def kernel_container_index(containers: list[Any]) -> int:
    """Index of the container that runs the kernel: the one named ``kernel``, else the first.

    Shared with :mod:`kernel_status`, which reports that container's state.
    """
    for index, container in enumerate(containers):
        if isinstance(container, Mapping) and container.get("name") == crds.KERNEL_CONTAINER_NAME:
            return index
    return 0


def owner_reference(kernel: Mapping[str, Any]) -> dict[str, Any]:
    """The controller owner reference a child of this JupyterKernel carries (GC on deletion)."""
    metadata = kernel.get("metadata") or {}
    return {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_KERNEL.kind,
        "name": metadata.get("name"),
        "uid": metadata.get("uid"),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def kernel_id_of(kernel: Mapping[str, Any]) -> str | None:
    """EG's kernel id: label ``kernel_id``, ``spec.kernelId``, template label, env ``KERNEL_ID``."""
    metadata = kernel.get("metadata") or {}
    spec = kernel.get("spec") or {}
    label = (metadata.get("labels") or {}).get(crds.LABEL_KERNEL_ID)
    if label:
        return str(label)
    if spec.get("kernelId"):
        return str(spec["kernelId"])
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if template_labels.get(crds.LABEL_KERNEL_ID):
        return str(template_labels[crds.LABEL_KERNEL_ID])
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    for container in containers:
        for var in container.get("env") or []:
            if var.get("name") == launcher_env.KERNEL_ID and var.get("value"):
                return str(var["value"])
    return None


def _with_defaults(given: Any, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` (a template's security context or None) completed with our defaults.

    Keys the template sets win. One exception keeps the result startable: a template that runs
    as uid 0 without saying ``runAsNonRoot`` does not get ``runAsNonRoot: true`` (the kubelet
    would refuse to start such a container).
    """
    result = copy.deepcopy(dict(defaults))
    result.update(copy.deepcopy(dict(given or {})))
    if isinstance(given, Mapping) and given.get("runAsUser") == 0 and "runAsNonRoot" not in given:
        result.pop("runAsNonRoot", None)
    return result


def _kernel_env(env: list[Any]) -> list[Any]:
    """The kernel container's env with the pod-identity fieldRefs appended (template wins)."""
    result = copy.deepcopy(env)
    present = {var.get("name") for var in result if isinstance(var, Mapping)}
    for name, field_path in POD_IDENTITY_ENV:
        if name not in present:
            result.append(
                {
                    "name": name,
                    "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": field_path}},
                }
            )
    return result


def kernel_secret_of(kernel: Mapping[str, Any]) -> str | None:
    """The kernel's Secret named by the gateway's annotation (must be the kernel's own name)."""
    metadata = kernel.get("metadata") or {}
    name = (metadata.get("annotations") or {}).get(crds.ANNOTATION_KERNEL_SECRET)
    expected = crds.kernel_secret_name(str(metadata.get("name")))
    return expected if name == expected else None


def _mount_kernel_secret(
    pod_spec: dict[str, Any], container: dict[str, Any], secret_name: str
) -> None:
    volumes = [
        v for v in pod_spec.get("volumes") or [] if v.get("name") != crds.KERNEL_SECRET_VOLUME
    ]
    volumes.append({"name": crds.KERNEL_SECRET_VOLUME, "secret": {"secretName": secret_name}})
    pod_spec["volumes"] = volumes
    mounts = [
        m for m in container.get("volumeMounts") or [] if m.get("name") != crds.KERNEL_SECRET_VOLUME
    ]
    mounts.append(
        {
            "name": crds.KERNEL_SECRET_VOLUME,
            "mountPath": crds.KERNEL_SECRET_MOUNT_PATH,
            "readOnly": True,
        }
    )
    container["volumeMounts"] = mounts
    path = f"{crds.KERNEL_SECRET_MOUNT_PATH}/{crds.KERNEL_SECRET_LAUNCH_TOKEN_KEY}"
    env = [
        e
        for e in container.get("env") or []
        if e.get("name") != launcher_env.KERNEL_LAUNCH_TOKEN_FILE
    ]
    env.append({"name": launcher_env.KERNEL_LAUNCH_TOKEN_FILE, "value": path})
    container["env"] = env


def build_pod(kernel: Mapping[str, Any], default_image: str | None = None) -> dict[str, Any]:
    """Return the Pod manifest for a JupyterKernel body (a dict as read from the API).

    ``default_image`` is the kernel container's image when the JupyterKernel gives it none
    (the kernelspec's image, else the template's, else this one: the gateway sets the first two).

    Raises :class:`InvalidKernelError` when ``spec.template.spec.containers`` is missing or empty
    (the CRD schema rejects that already; this guards a schema-less server or an old object).
    """
    metadata = kernel.get("metadata") or {}
    name = metadata.get("name")
    namespace = metadata.get("namespace")
    if not name or not namespace:
        raise InvalidKernelError("the JupyterKernel has no metadata.name or metadata.namespace")
    template = (kernel.get("spec") or {}).get("template")
    if not isinstance(template, Mapping):
        raise InvalidKernelError("spec.template is missing: it must be a pod template")
    pod_spec = copy.deepcopy(dict(template.get("spec") or {}))
    containers = pod_spec.get("containers")
    if not isinstance(containers, list) or not containers:
        raise InvalidKernelError("spec.template.spec.containers must list at least one container")
    if not all(isinstance(c, Mapping) and c.get("name") for c in containers):
        raise InvalidKernelError("every container in spec.template.spec.containers needs a name")

    template_meta = template.get("metadata") or {}
    kernel_labels = metadata.get("labels") or {}
    labels: dict[str, str] = {
        str(k): str(v) for k, v in (template_meta.get("labels") or {}).items()
    }
    for key in INHERITED_LABELS:
        if kernel_labels.get(key):
            labels[key] = str(kernel_labels[key])
    kernel_id = kernel_id_of(kernel)
    if kernel_id:
        labels[crds.LABEL_KERNEL_ID] = kernel_id
    # Ours last, so that a template cannot make the pod invisible to the operator's pod watch.
    labels[crds.LABEL_COMPONENT] = crds.COMPONENT_KERNEL
    labels[crds.LABEL_MANAGED_BY] = crds.MANAGED_BY
    labels[crds.LABEL_KERNEL] = str(name)

    annotations: dict[str, str] = {
        str(k): str(v) for k, v in (template_meta.get("annotations") or {}).items()
    }
    annotations[ANNOTATION_SAFE_TO_EVICT] = "false"
    annotations[ANNOTATION_GENERATION] = str(metadata.get("generation") or 1)

    kernel_index = kernel_container_index(containers)
    new_containers = []
    for index, container in enumerate(containers):
        container = copy.deepcopy(dict(container))
        container["securityContext"] = _with_defaults(
            container.get("securityContext"), DEFAULT_CONTAINER_SECURITY_CONTEXT
        )
        if index == kernel_index:
            if not container.get("command"):
                container["command"] = list(LAUNCHER_COMMAND)
            if not container.get("image") and default_image:
                container["image"] = default_image
            container["env"] = _kernel_env(list(container.get("env") or []))
        new_containers.append(container)
    secret_name = kernel_secret_of(kernel)
    if secret_name:
        _mount_kernel_secret(pod_spec, new_containers[kernel_index], secret_name)
    pod_spec["containers"] = new_containers
    if isinstance(pod_spec.get("initContainers"), list):
        # Init containers get the same restricted defaults (Pod Security checks them too).
        pod_spec["initContainers"] = [
            {
                **container,
                "securityContext": _with_defaults(
                    container.get("securityContext"), DEFAULT_CONTAINER_SECURITY_CONTEXT
                ),
            }
            if isinstance(container, Mapping)
            else container
            for container in pod_spec["initContainers"]
        ]
    pod_spec["securityContext"] = _with_defaults(
        pod_spec.get("securityContext"), DEFAULT_POD_SECURITY_CONTEXT
    )
    pod_spec["restartPolicy"] = "Never"
    # A kernel runs users' code: no API credentials in it unless the template asks (and the
    # admin's pod policy, checked by the caller, allows it).
    pod_spec.setdefault("automountServiceAccountToken", False)

    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner_reference(kernel)],
        },
        "spec": pod_spec,
    }


def misplaced_template_metadata(template: Mapping[str, Any] | None) -> list[str]:
    """Keys written directly under ``template.metadata`` that Kubernetes would not apply.

    The original project's sample put ``component: kernel`` there instead of under ``labels``
    (its issue #67); the CRD keeps such keys so that we can point at them.
    """
    meta = (template or {}).get("metadata") or {}
    if not isinstance(meta, Mapping):
        return []
    allowed = {"labels", "annotations", "name", "namespace", "generateName"}
    return sorted(str(key) for key in meta if key not in allowed)
