"""JupyterKernelTemplate: pure validation, and the kopf handlers that report it.

Who calls what:

* The gateway reads templates when it builds a JupyterKernel; the operator only says whether a
  template can build a kernel pod (``status.valid`` and the ``Valid`` condition), so that a
  broken template is visible before the first kernel start fails. Changes apply to kernels
  created afterwards; running kernels carry their own copy of the pod template.
* kopf keeps the :func:`kernel_templates` index (validity by name) for the kernelspec reconciler
  and calls :func:`template_event` on every template event. A template that appears, changes
  validity or is deleted re-reconciles the kernelspecs referring to it, so a deleted template in
  use shows up as ``TemplateNotFound`` (status and a Warning Event) on each of them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import kopf

from elastic_jupyter import crds
from elastic_jupyter.operator import kernel_pod, kernelspecs, pod_policy, runtime
from elastic_jupyter.operator import kernelspec_configmap as render_mod

DNS1123_LABEL: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class Validity:
    """Whether a template can build a kernel pod, and why (not)."""

    valid: bool
    reason: str
    message: str

    def as_tuple(self) -> tuple[bool, str, str]:
        """The form kept in the kopf index."""
        return (self.valid, self.reason, self.message)


def validate(
    template_object: Mapping[str, Any], policy: pod_policy.PodPolicy | None = None
) -> Validity:
    """Check a JupyterKernelTemplate body: a pod template with at least one well-named container,
    fields of the right types (``InvalidSpec``), and a pod the admin's policy allows
    (``PolicyViolation``; ``policy`` defaults to this operator's).

    Labels written directly under ``spec.template.metadata`` (the original's sample) do not make
    the template invalid — the pod just would not get them — but the reason says so.
    """
    template = (template_object.get("spec") or {}).get("template")
    if not isinstance(template, Mapping) or not isinstance(template.get("spec"), Mapping):
        return Validity(
            False,
            crds.REASON_TEMPLATE_MISSING,
            "spec.template.spec must be a pod spec (PodTemplateSpec)",
        )
    containers = template["spec"].get("containers")
    if not isinstance(containers, list) or not containers:
        return Validity(
            False, crds.REASON_NO_CONTAINERS, "spec.template.spec.containers must list a container"
        )
    seen: set[str] = set()
    for index, container in enumerate(containers):
        name = container.get("name") if isinstance(container, Mapping) else None
        if not isinstance(name, str) or len(name) > 63 or not DNS1123_LABEL.match(name):
            return Validity(
                False,
                crds.REASON_INVALID_CONTAINER_NAME,
                f"container {index} has name {name!r}: it must be a DNS-1123 label "
                "(lower-case letters, digits and '-', at most 63 characters)",
            )
        if name in seen:
            return Validity(
                False, crds.REASON_DUPLICATE_CONTAINER_NAME, f"two containers are named {name!r}"
            )
        seen.add(name)
    checked = pod_policy.check_template(template, policy or pod_policy.admin_policy())
    if checked:
        reason, problems = checked
        invalid = reason == crds.REASON_INVALID_SPEC
        what = "invalid pod template" if invalid else "refused by the kernel pod policy"
        return Validity(False, reason, f"{what}: {pod_policy.describe(problems)}")
    misplaced = kernel_pod.misplaced_template_metadata(template)
    if misplaced:
        return Validity(
            True,
            crds.REASON_MISPLACED_TEMPLATE_METADATA,
            f"spec.template.metadata has {', '.join(misplaced)}, which Kubernetes ignores; "
            "did you mean spec.template.metadata.labels?",
        )
    kernel = containers[kernel_pod.kernel_container_index(containers)]["name"]
    return Validity(
        True, crds.REASON_SPEC_VALID, f"builds kernel pods; the kernel runs in container {kernel}"
    )


def template_status(
    validity: Validity, generation: int, previous: Mapping[str, Any] | None, now: str
) -> dict[str, Any]:
    """The template's status: ``valid``, ``observedGeneration`` and the ``Valid`` condition."""
    return {
        "valid": validity.valid,
        "observedGeneration": generation,
        "conditions": [
            render_mod.valid_condition(
                validity.valid, validity.reason, validity.message, previous, now
            )
        ],
    }


def kernel_image(template_object: Mapping[str, Any]) -> str:
    """The image of the template's kernel container ("" when it names none)."""
    pod = (template_object.get("spec") or {}).get("template") or {}
    containers = (pod.get("spec") or {}).get("containers") if isinstance(pod, Mapping) else None
    if not isinstance(containers, list) or not containers:
        return ""
    container = containers[kernel_pod.kernel_container_index(containers)]
    return str(container.get("image") or "") if isinstance(container, Mapping) else ""


@kopf.index(*crds.JUPYTER_KERNEL_TEMPLATE)
async def kernel_templates(
    name: str, namespace: str | None, body: kopf.Body, **_: Any
) -> dict[runtime.Key, tuple[bool, str, str, str]]:
    """Templates by (namespace, name): validity and kernel image, for the kernelspec reconciler."""
    return {(namespace or "", name): (*validate(body).as_tuple(), kernel_image(body))}


@kopf.on.event(*crds.JUPYTER_KERNEL_TEMPLATE)
async def template_event(
    type: str,
    name: str,
    namespace: str | None,
    body: kopf.Body,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **kwargs: Any,
) -> None:
    """Report the template's validity; re-reconcile the kernelspecs that refer to it."""
    # Indexes arrive as keywords named after their functions.
    kernel_templates: kernelspecs.TemplateIndex = kwargs["kernel_templates"]
    by_template: kopf.Index[runtime.Key, dict[str, Any]] = kwargs["kernelspecs_by_template"]
    state = runtime.from_memo(memo)
    namespace = namespace or ""
    plural = crds.JUPYTER_KERNEL_TEMPLATE.plural
    if type == "DELETED":
        state.statuses.pop((plural, namespace, name), None)
    elif not (body.get("metadata") or {}).get("deletionTimestamp"):
        validity = validate(body)
        known = state.statuses.get((plural, namespace, name))
        previous = known[1] if known else body.get("status")
        generation = int((body.get("metadata") or {}).get("generation") or 1)
        new = template_status(validity, generation, previous, crds.rfc3339())
        old, written = await kernelspecs.write_status(
            state, crds.JUPYTER_KERNEL_TEMPLATE, dict(body), new
        )
        old_reason = next(
            (
                c.get("reason")
                for c in old.get("conditions") or []
                if c.get("type") == crds.CONDITION_VALID
            ),
            None,
        )
        if written and old_reason != validity.reason and validity.reason != crds.REASON_SPEC_VALID:
            kopf.warn(body, reason=validity.reason, message=validity.message)
    for kernelspec in list(by_template.get((namespace, name)) or ()):
        try:
            await kernelspecs.reconcile(state, kernelspec, kernel_templates, logger)
        except kopf.TemporaryError as error:
            logger.warning("%s", error)
