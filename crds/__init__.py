"""The API every part of elastic-jupyter shares: group, version, kinds, plurals, labels, conditions.

The five CustomResourceDefinitions live beside this module as YAML (package data), so that
``kubectl apply -f crds/`` and the Python code read the same files. Nothing else in the
project spells the group, a plural or a label key: it imports them from here.

The group and version are kept from the original Go project so its users' YAML applies
unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

GROUP = "kubeflow.tkestack.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "jupyter"


@dataclass(frozen=True)
class ResourceNames:
    """How Kubernetes names one of our kinds (mirrors ``spec.names`` of its CRD)."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]

    @property
    def crd_name(self) -> str:
        """The CRD's ``metadata.name``: ``<plural>.<group>``."""
        return f"{self.plural}.{GROUP}"

    @property
    def crd_file(self) -> str:
        """The file name of this kind's CRD inside the ``crds`` folder."""
        return f"{GROUP}_{self.plural}.yaml"


JUPYTER_GATEWAY = ResourceNames("JupyterGateway", "jupytergateways", "jupytergateway", ("jgw",))
JUPYTER_NOTEBOOK = ResourceNames(
    "JupyterNotebook", "jupyternotebooks", "jupyternotebook", ("jnb",)
)
JUPYTER_KERNEL = ResourceNames("JupyterKernel", "jupyterkernels", "jupyterkernel", ("jk",))
JUPYTER_KERNEL_TEMPLATE = ResourceNames(
    "JupyterKernelTemplate", "jupyterkerneltemplates", "jupyterkerneltemplate", ("jkt",)
)
JUPYTER_KERNEL_SPEC = ResourceNames(
    "JupyterKernelSpec", "jupyterkernelspecs", "jupyterkernelspec", ("jks",)
)
ALL_KINDS: tuple[ResourceNames, ...] = (
    JUPYTER_GATEWAY,
    JUPYTER_NOTEBOOK,
    JUPYTER_KERNEL,
    JUPYTER_KERNEL_TEMPLATE,
    JUPYTER_KERNEL_SPEC,
)

# --- Labels ---------------------------------------------------------------------------------
# `kernel_id` and `component=kernel` are what Enterprise Gateway's own tooling looks for on
# kernel pods; the rest are ours.
LABEL_KERNEL_ID = "kernel_id"
LABEL_COMPONENT = "component"
COMPONENT_KERNEL = "kernel"
COMPONENT_GATEWAY = "gateway"
COMPONENT_NOTEBOOK = "notebook"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "elastic-jupyter"
LABEL_GATEWAY = f"{GROUP}/gateway"  # name of the JupyterGateway that launched a kernel
LABEL_KERNELSPEC = f"{GROUP}/kernelspec"  # name of the kernelspec a kernel was started from
LABEL_KERNEL = f"{GROUP}/kernel"  # name of the JupyterKernel that owns a pod
LABEL_NOTEBOOK = f"{GROUP}/notebook"  # name of the JupyterNotebook that owns an object
LABEL_KERNEL_USERNAME = f"{GROUP}/username"  # KERNEL_USERNAME, made label-safe

# --- Status vocabulary ------------------------------------------------------------------------
PHASE_PENDING = "Pending"
PHASE_RUNNING = "Running"
PHASE_SUCCEEDED = "Succeeded"
PHASE_FAILED = "Failed"
KERNEL_PHASES = (PHASE_PENDING, PHASE_RUNNING, PHASE_SUCCEEDED, PHASE_FAILED)

CONDITION_SCHEDULED = "Scheduled"
CONDITION_RUNNING = "Running"
CONDITION_READY = "Ready"
CONDITION_FAILED = "Failed"
CONDITION_VALID = "Valid"  # templates and kernelspecs: does the spec make sense?


def crd_text(names: ResourceNames) -> str:
    """Return the YAML text of one kind's CRD, as shipped in the package."""
    return resources.files(__name__).joinpath(names.crd_file).read_text(encoding="utf-8")


def load_crds() -> list[dict[str, Any]]:
    """Return the five CRDs as dictionaries (needs PyYAML, which every server-side extra has)."""
    import yaml  # imported here: the in-pod launcher never needs this module's YAML

    return [yaml.safe_load(crd_text(names)) for names in ALL_KINDS]
