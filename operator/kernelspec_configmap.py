"""JupyterKernelSpec → ``kernel.json`` ConfigMap, and the kernelspec's status: pure functions.

Called by :mod:`elastic_jupyter.operator.kernelspecs` whenever a kernelspec or the template it
refers to changes. A JupyterGateway mounts the ConfigMap as
``<kernels dir>/<kernelspec name>/kernel.json``; Enterprise Gateway reads it at kernel start.

``kernel.json`` fields:

* ``display_name`` (``spec.displayName``, else the kernelspec's name), ``language``
  (``spec.language``, else ``python``), ``env`` (literal values of ``spec.env``; the original
  ignored it — ``valueFrom`` entries cannot live in a file and are the gateway's business);
* ``argv``: ``spec.command`` as given, with ``--kernel-template-name/-namespace`` appended
  when it runs ``kubeflow-launcher`` and names no template itself (as the original did); unset,
  the ``kubeflow-launcher`` argv with EG's placeholders and the template reference;
* ``metadata.process_proxy``: ``class_name`` (``spec.className``, default ours; the original's
  ``enterprise_gateway.services.processproxies.kubeflow.KubeflowProcessProxy`` no longer exists
  in EG 3.3 and is mapped to ours) and ``config`` with ``image_name``,
  ``kernel_template_name``/``kernel_template_namespace``, ``port_range`` and ``resources`` when
  set.

The template is optional, as in the original: without one the gateway builds the default kernel
pod (one container named ``kernel`` with the kernelspec's image and resources; the operator adds
its secure pod defaults). A template that does not exist (yet) or is invalid makes the
kernelspec ``Valid=False`` with ``TemplateNotFound``/``TemplateInvalid``, but the ConfigMap is
still written: the reference is right and kernels start as soon as the template is there.

``status.image`` says which image the kernels will run: ``spec.image``, else the image of the
template's kernel container, else the operator's default kernel image.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from elastic_jupyter import crds
from elastic_jupyter.operator import conditions

KUBEFLOW_PROXY: Final = "elastic_jupyter.gateway_plugin.KubeflowProcessProxy"
ORIGINAL_KUBEFLOW_PROXY: Final = (
    "enterprise_gateway.services.processproxies.kubeflow.KubeflowProcessProxy"
)
#: The gateway-side launcher (``pyproject.toml``: ``kubeflow-launcher``).
GATEWAY_LAUNCHER: Final = "kubeflow-launcher"
DEFAULT_LANGUAGE: Final = "python"
KERNEL_JSON: Final = "kernel.json"

#: EG's argv placeholders, filled per kernel start.
LAUNCHER_ARGS: Final = crds.KERNELSPEC_LAUNCHER_ARGS


@dataclass(frozen=True)
class TemplateRef:
    """The JupyterKernelTemplate a kernelspec refers to."""

    namespace: str
    name: str


@dataclass(frozen=True)
class Rendering:
    """What a kernelspec renders to: a ConfigMap, or the reason it cannot."""

    configmap: dict[str, Any] | None
    template: TemplateRef | None
    problem: tuple[str, str] | None  # (reason, message) when configmap is None


def template_ref(kernelspec: Mapping[str, Any]) -> TemplateRef | None:
    """The template reference of a kernelspec; its namespace defaults to the kernelspec's."""
    spec = kernelspec.get("spec") or {}
    ref = spec.get("template")
    if not isinstance(ref, Mapping) or not ref.get("name"):
        return None
    namespace = ref.get("namespace") or (kernelspec.get("metadata") or {}).get("namespace") or ""
    return TemplateRef(namespace=str(namespace), name=str(ref["name"]))


def process_proxy_class(spec: Mapping[str, Any]) -> str:
    """``spec.className`` with the default and the original's class name mapped to ours."""
    name = str(spec.get("className") or KUBEFLOW_PROXY)
    return KUBEFLOW_PROXY if name == ORIGINAL_KUBEFLOW_PROXY else name


def _is_gateway_launcher(argv: list[str]) -> bool:
    return bool(argv) and argv[0].rsplit("/", 1)[-1] == GATEWAY_LAUNCHER


def kernel_argv(spec: Mapping[str, Any], template: TemplateRef | None) -> list[str]:
    """``argv`` of kernel.json (see the module docstring)."""
    template_args = (
        ["--kernel-template-name", template.name, "--kernel-template-namespace", template.namespace]
        if template
        else []
    )
    command = [str(part) for part in spec.get("command") or []]
    if not command:
        return [GATEWAY_LAUNCHER, *LAUNCHER_ARGS, *template_args]
    if _is_gateway_launcher(command) and "--kernel-template-name" not in command:
        return [*command, *template_args]
    return command


def kernel_json(kernelspec: Mapping[str, Any], template: TemplateRef | None) -> dict[str, Any]:
    """The ``kernel.json`` document of a kernelspec."""
    metadata = kernelspec.get("metadata") or {}
    spec = kernelspec.get("spec") or {}
    config: dict[str, Any] = {}
    if spec.get("image"):
        config["image_name"] = spec["image"]
    if template:
        config["kernel_template_name"] = template.name
        config["kernel_template_namespace"] = template.namespace
    if spec.get("portRange"):
        config["port_range"] = spec["portRange"]
    if spec.get("resources"):
        config["resources"] = spec["resources"]
    pool = spec.get("warmPool")
    if isinstance(pool, Mapping) and isinstance(pool.get("size"), int) and pool["size"] > 0:
        # Tells the gateway to try a claim (gateway_plugin/warm_pool.py) - and where.
        config["warm_pool"] = {"namespace": str(metadata.get("namespace") or "")}
    env = {
        str(var["name"]): str(var.get("value") or "")
        for var in spec.get("env") or []
        if isinstance(var, Mapping) and var.get("name") and "valueFrom" not in var
    }
    return {
        "display_name": str(spec.get("displayName") or metadata.get("name") or ""),
        "language": str(spec.get("language") or DEFAULT_LANGUAGE),
        "env": env,
        "argv": kernel_argv(spec, template),
        "metadata": {
            "process_proxy": {"class_name": process_proxy_class(spec), "config": config},
        },
    }


def owner_reference(kernelspec: Mapping[str, Any]) -> dict[str, Any]:
    """Controller owner reference to the kernelspec (its ConfigMap is deleted with it)."""
    metadata = kernelspec.get("metadata") or {}
    return {
        "apiVersion": crds.API_VERSION,
        "kind": crds.JUPYTER_KERNEL_SPEC.kind,
        "name": metadata.get("name"),
        "uid": metadata.get("uid"),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def render(
    kernelspec: Mapping[str, Any], allowed_proxies: frozenset[str] | None = None
) -> Rendering:
    """The kernelspec's ConfigMap manifest, or why there is none.

    ``allowed_proxies``: the process-proxy classes the admin allows (None: any). Another class
    (EG's ``LocalProcessProxy`` runs ``spec.command`` inside the gateway pod, with the
    gateway's token and service account) renders nothing: reason ``ProcessProxyNotAllowed``.
    """
    metadata = kernelspec.get("metadata") or {}
    spec = kernelspec.get("spec") or {}
    template = template_ref(kernelspec)
    proxy = process_proxy_class(spec)
    if (
        allowed_proxies is not None
        and proxy not in allowed_proxies
        and (str(spec.get("className") or "") not in allowed_proxies)
    ):
        return Rendering(
            None,
            template,
            (
                crds.REASON_PROCESS_PROXY_NOT_ALLOWED,
                f"spec.className {proxy!r} is not an allowed process proxy (allowed: "
                f"{', '.join(sorted(allowed_proxies))}; the cluster admin can add classes with "
                "ELASTIC_JUPYTER_ALLOWED_PROCESS_PROXIES on the operator and "
                "EJ_ALLOWED_PROCESS_PROXIES on the gateway)",
            ),
        )
    name = str(metadata.get("name") or "")
    document = kernel_json(kernelspec, template)
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": metadata.get("namespace"),
            "labels": {crds.LABEL_MANAGED_BY: crds.MANAGED_BY, crds.LABEL_KERNELSPEC: name},
            "ownerReferences": [owner_reference(kernelspec)],
        },
        "data": {KERNEL_JSON: json.dumps(document, indent=2, sort_keys=True) + "\n"},
    }
    return Rendering(configmap, template, None)


def configmap_differs(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Whether an existing ConfigMap lacks what ``desired`` says (data, our labels, owner)."""
    if (current.get("data") or {}) != desired.get("data"):
        return True
    labels = (current.get("metadata") or {}).get("labels") or {}
    wanted = (desired.get("metadata") or {}).get("labels") or {}
    if any(labels.get(key) != value for key, value in wanted.items()):
        return True
    owners = (current.get("metadata") or {}).get("ownerReferences") or []
    uid = ((desired.get("metadata") or {}).get("ownerReferences") or [{}])[0].get("uid")
    return not any(owner.get("uid") == uid for owner in owners)


def kernel_image(
    kernelspec: Mapping[str, Any], template_image: str | None, default_image: str | None
) -> str | None:
    """The image the kernelspec's kernels run: its own, else its template's, else the default."""
    own = str((kernelspec.get("spec") or {}).get("image") or "").strip()
    return own or (template_image or "").strip() or default_image or None


def kernelspec_status(
    rendering: Rendering,
    template_validity: tuple[Any, ...] | None,
    configmap_name: str | None,
    generation: int,
    previous: Mapping[str, Any] | None,
    now: str,
    image: str | None = None,
) -> dict[str, Any]:
    """The kernelspec's status: ``valid``, ``configMapName``, ``image``, ``observedGeneration``,
    ``Valid``.

    ``template_validity`` is the referenced template's (valid, reason, message[, image]), or
    ``None`` when no such template exists; ``image`` comes from :func:`kernel_image`.
    """
    if rendering.problem:
        valid, reason, message = False, *rendering.problem
    elif rendering.template is None:
        valid, reason = True, crds.REASON_SPEC_VALID
        message = "kernel.json rendered; no template: kernels run in the default kernel pod"
    elif template_validity is None:
        ref = rendering.template
        valid, reason = False, crds.REASON_TEMPLATE_NOT_FOUND
        message = f"JupyterKernelTemplate {ref.namespace}/{ref.name} does not exist"
    elif not template_validity[0]:
        ref = rendering.template
        valid, reason = False, crds.REASON_TEMPLATE_INVALID
        message = f"JupyterKernelTemplate {ref.namespace}/{ref.name}: {template_validity[2]}"
    else:
        valid, reason, message = (
            True,
            crds.REASON_SPEC_VALID,
            "kernel.json rendered; template found",
        )
    status: dict[str, Any] = {"valid": valid, "observedGeneration": generation}
    if configmap_name:
        status["configMapName"] = configmap_name
    if image:
        status["image"] = image
    status["conditions"] = [valid_condition(valid, reason, message, previous, now)]
    return status


def valid_condition(
    valid: bool, reason: str, message: str, previous: Mapping[str, Any] | None, now: str
) -> dict[str, Any]:
    """A ``Valid`` condition, keeping ``lastTransitionTime`` while its status is unchanged."""
    previous_conditions = conditions.previous_conditions(previous)
    return conditions.condition(
        crds.CONDITION_VALID, valid, reason, message, now, previous_conditions
    )


#: The status keys kernelspecs and templates own (see :func:`status_patch`).
STATUS_KEYS: Final = ("valid", "configMapName", "image", "observedGeneration", "conditions")


def status_patch(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any] | None:
    """Merge patch of ``status`` from ``old`` to ``new`` (owned keys only), ``None`` if equal."""
    return conditions.status_patch(old, new, STATUS_KEYS)
