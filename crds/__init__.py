"""The API every part of elastic-jupyter shares: group, version, kinds, plurals, labels, conditions.

The five CustomResourceDefinitions live beside this module as YAML (package data), so that
``kubectl apply -f crds/`` and the Python code read the same files. Nothing else in the
project spells the group, a plural or a label key: it imports them from here.

The group and version are kept from the original Go project so its users' YAML applies
unchanged. Besides names, this module holds the vocabulary the CRDs define: phases, condition
types, reasons, the schema defaults, annotation keys and Secret names (``docs/crds.md`` is the
user-facing reference for all of it; tests check the two agree).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from typing import Any
from urllib.parse import quote

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

    def __iter__(self) -> Iterator[str]:
        """``(group, version, plural)``: what kopf's decorators take, ``@kopf.on.create(*KIND)``."""
        return iter((GROUP, VERSION, self.plural))

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str = ""
    ) -> str:
        """The REST path of the collection (in ``namespace``, or all namespaces), of one object,
        or of one of its subresources (``status``)."""
        path = f"/apis/{GROUP}/{VERSION}"
        if namespace is not None:
            path += f"/namespaces/{quote(namespace, safe='')}"
        path += f"/{self.plural}"
        if name is not None:
            path += f"/{quote(name, safe='')}"
            if subresource:
                path += f"/{subresource}"
        return path


JUPYTER_GATEWAY = ResourceNames("JupyterGateway", "jupytergateways", "jupytergateway", ("jgw",))
JUPYTER_NOTEBOOK = ResourceNames("JupyterNotebook", "jupyternotebooks", "jupyternotebook", ("jnb",))
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
# uid of the JupyterGateway that launched a kernel: who owns it across namespaces (owner
# references cannot cross namespaces, and two gateways in two namespaces may share a name).
LABEL_GATEWAY_UID = f"{GROUP}/gateway-uid"

# --- Status vocabulary ------------------------------------------------------------------------
# The CRDs' status schemas are closed (no x-kubernetes-preserve-unknown-fields): a value outside
# these enums makes the API server reject the whole status write with 422.
PHASE_PENDING = "Pending"
PHASE_RUNNING = "Running"
PHASE_POOLED = "Pooled"  # kernels only: a warm-pool kernel waiting for its claim (warm_pool.py)
PHASE_SUCCEEDED = "Succeeded"
PHASE_FAILED = "Failed"
PHASE_UNKNOWN = "Unknown"  # kernels only: the pod phase Unknown (node lost), mirrored as is
KERNEL_PHASES = (
    PHASE_PENDING,
    PHASE_POOLED,
    PHASE_RUNNING,
    PHASE_SUCCEEDED,
    PHASE_FAILED,
    PHASE_UNKNOWN,
)
# JupyterGateway and JupyterNotebook: Pending until a pod is ready, Failed when the spec cannot
# be deployed (the conditions say why).
GATEWAY_PHASES = (PHASE_PENDING, PHASE_RUNNING, PHASE_FAILED)
NOTEBOOK_PHASES = (PHASE_PENDING, PHASE_RUNNING, PHASE_FAILED)

# Condition `status` values (strings, as in every Kubernetes condition).
CONDITION_TRUE = "True"
CONDITION_FALSE = "False"
CONDITION_UNKNOWN = "Unknown"

# Condition types. JupyterKernel: Scheduled, Running, Ready, Failed. JupyterGateway: Ready,
# Valid, KernelSpecsResolved, Progressing. JupyterNotebook: Ready, Valid, GatewayResolved.
# JupyterKernelTemplate and JupyterKernelSpec: Valid.
CONDITION_SCHEDULED = "Scheduled"
CONDITION_RUNNING = "Running"
CONDITION_READY = "Ready"
CONDITION_FAILED = "Failed"  # kernel: True when it ended badly or cannot start unaided
CONDITION_VALID = "Valid"  # does the spec make sense? (False: reason + message say what to fix)
CONDITION_KERNELSPECS_RESOLVED = "KernelSpecsResolved"  # gateway: every `kernels` name exists
CONDITION_PROGRESSING = "Progressing"  # gateway/notebook: a rollout of a new spec is under way
CONDITION_GATEWAY_RESOLVED = "GatewayResolved"  # notebook: spec.gateway names a JupyterGateway

# --- Reasons (condition `reason`, JupyterKernel `status.reason`, Event reasons) ---------------
# Kernel reasons mirror the pod's own wording where the pod has one.
REASON_UNSCHEDULABLE = "Unschedulable"  # PodScheduled=False; not fatal (autoscalers may help)
REASON_ERR_IMAGE_PULL = "ErrImagePull"
REASON_IMAGE_PULL_BACK_OFF = "ImagePullBackOff"
REASON_INVALID_IMAGE_NAME = "InvalidImageName"
REASON_ERR_IMAGE_NEVER_PULL = "ErrImageNeverPull"
REASON_CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"  # e.g. missing Secret key
REASON_CREATE_CONTAINER_ERROR = "CreateContainerError"
REASON_RUN_CONTAINER_ERROR = "RunContainerError"
REASON_CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
REASON_OOM_KILLED = "OOMKilled"
REASON_ERROR = "Error"  # container terminated with a non-zero exit code
REASON_COMPLETED = "Completed"  # container terminated with exit code 0
REASON_EVICTED = "Evicted"  # the pod's own reason when the kubelet evicted it
REASON_POD_DELETED = "PodDeleted"  # the kernel's pod was deleted behind the operator's back
REASON_POD_CREATE_FAILED = "PodCreateFailed"  # the API server refused the pod (message says why)
REASON_SPEC_IMMUTABLE = "SpecImmutable"  # Event: a JupyterKernel's spec was edited; not applied
REASON_RUNNING = "Running"  # Event: the kernel's pod runs (and where)
REASON_SCHEDULED = "Scheduled"  # kernel condition Scheduled=True (and Running before it runs)
REASON_PENDING = "Pending"  # kernel: waiting for the scheduler or the container to start
REASON_UNKNOWN = "Unknown"  # kernel Event when the pod gives no reason at all
# Gateway side, told to the notebook user when a starting kernel ends without a pod reason.
REASON_DELETED = "Deleted"  # the JupyterKernel was deleted while the kernel was starting
REASON_FAILED = "Failed"  # the kernel failed and neither its status nor a condition says why
# Spec validation (condition Valid, and the Events beside it).
REASON_SPEC_VALID = "SpecValid"  # Valid=True
REASON_INVALID_SPEC = "InvalidSpec"  # Valid=False for a reason with no name of its own
REASON_TEMPLATE_MISSING = "TemplateMissing"  # kernelspec without spec.template (original crash)
REASON_TEMPLATE_NOT_FOUND = "TemplateNotFound"  # the referenced JupyterKernelTemplate is absent
REASON_TEMPLATE_INVALID = "TemplateInvalid"  # the referenced template is not Valid
REASON_NO_CONTAINERS = "NoContainers"  # a pod template without containers
REASON_INVALID_CONTAINER_NAME = "InvalidContainerName"  # template: not a DNS-1123 label
REASON_DUPLICATE_CONTAINER_NAME = "DuplicateContainerName"  # template: two containers, one name
# template.metadata holds keys other than labels/annotations (the original sample's
# `metadata: {app: ..., component: ...}`, issue #67): kept, not applied, reported with
# "did you mean metadata.labels?". Valid stays True (the template works).
REASON_MISPLACED_TEMPLATE_METADATA = "MisplacedTemplateMetadata"
REASON_KERNELSPEC_NOT_FOUND = "KernelSpecNotFound"  # gateway: a `kernels` name has no CR
REASON_GATEWAY_NOT_FOUND = "GatewayNotFound"  # notebook: spec.gateway names no JupyterGateway
# Gateway and notebook conditions (Ready, KernelSpecsResolved, GatewayResolved) and Events.
REASON_GATEWAY_READY = "GatewayReady"
REASON_GATEWAY_NOT_READY = "GatewayNotReady"
REASON_NOTEBOOK_READY = "NotebookReady"
REASON_NOTEBOOK_NOT_READY = "NotebookNotReady"
REASON_DEPLOYMENT_MISSING = "DeploymentMissing"
REASON_ROLLING_OUT = "RollingOut"  # Progressing=True, and its Event: a new gateway pod rolls out
REASON_ROLLOUT_COMPLETE = "Complete"  # Progressing=False: the current spec is out
REASON_KERNELSPECS_FOUND = "KernelSpecsFound"
REASON_BUILTIN_KERNELSPEC = "BuiltInKernelSpec"  # no JupyterKernelSpec: the built-in one served
REASON_NO_GATEWAY = "NoGateway"  # notebook without spec.gateway: local kernels
REASON_GATEWAY_FOUND = "GatewayFound"
# Event on a JupyterKernelSpec: its warm pool is held below spec.warmPool.size by the operator's
# cluster-wide cap on GPUs that waiting pool kernels may hold.
REASON_WARM_POOL_GPU_LIMIT = "WarmPoolGPULimit"
# Tenancy (docs/security.md). A kernel pod or template the admin's pod policy forbids (Pod
# Security "restricted", service-account allow-list, token automount): never rendered.
REASON_POLICY_VIOLATION = "PolicyViolation"
# An object we would create exists already without our controller owner reference: never
# patched or adopted (e.g. a JupyterGateway named like the namespace's RoleBinding "edit").
REASON_NAME_CONFLICT = "NameConflict"
# A kernel namespace that did not opt in to kernels from the gateway's namespace.
REASON_NAMESPACE_NOT_ACCEPTED = "NamespaceNotAccepted"
# A kernelspec whose process proxy is not on the admin's allow-list.
REASON_PROCESS_PROXY_NOT_ALLOWED = "ProcessProxyNotAllowed"
# notebook: the gateway lives in another namespace and its spec.notebookNamespaces omits ours
REASON_GATEWAY_NOT_GRANTED = "GatewayNotGranted"

IMAGE_PULL_FAILURE_REASONS = frozenset(
    {
        REASON_ERR_IMAGE_PULL,
        REASON_IMAGE_PULL_BACK_OFF,
        REASON_INVALID_IMAGE_NAME,
        REASON_ERR_IMAGE_NEVER_PULL,
    }
)
_CONTAINER_CREATE_FAILURE_REASONS = frozenset(
    {
        REASON_CREATE_CONTAINER_CONFIG_ERROR,
        REASON_CREATE_CONTAINER_ERROR,
        REASON_RUN_CONTAINER_ERROR,
    }
)
# Operator: a kernel container waiting for one of these will not start without someone's help,
# so the JupyterKernel is marked Failed (condition Failed=True) with the pod's own reason.
KERNEL_FATAL_WAITING_REASONS = (
    IMAGE_PULL_FAILURE_REASONS
    | _CONTAINER_CREATE_FAILURE_REASONS
    | frozenset({REASON_CRASH_LOOP_BACK_OFF})
)
# Operator: waiting reasons that are progress, not problems (never copied into status.reason).
BENIGN_WAITING_REASONS = frozenset({"ContainerCreating", "PodInitializing"})
# Gateway: a starting kernel whose status.reason or a condition reason is one of these fails
# the launch at once, before the operator's Failed condition arrives (Unschedulable is handled
# separately, after a grace period: an autoscaler may still add a node).
LAUNCH_FAIL_FAST_REASONS = (
    IMAGE_PULL_FAILURE_REASONS
    | _CONTAINER_CREATE_FAILURE_REASONS
    | frozenset({REASON_POD_CREATE_FAILED})
)

# --- Spec vocabulary and defaults ------------------------------------------------------------
# Values the CRD schemas default (tests check these equal the YAML's `default:`).
DEFAULT_CULL_IDLE_TIMEOUT = 3600  # JupyterGateway.spec.cullIdleTimeout, seconds (original)
DEFAULT_CULL_INTERVAL = 60  # JupyterGateway.spec.cullInterval, seconds
DEFAULT_KERNEL_LAUNCH_TIMEOUT = 60  # JupyterGateway.spec.kernelLaunchTimeout, seconds (original)
DEFAULT_NOTEBOOK_PORT = 8888  # JupyterNotebook.spec.port
AUTH_MODE_ENABLE = "enable"
AUTH_MODE_DISABLE = "disable"
AUTH_MODES = (AUTH_MODE_ENABLE, AUTH_MODE_DISABLE)
DEFAULT_AUTH_MODE = AUTH_MODE_ENABLE  # JupyterGateway/JupyterNotebook spec.auth.mode
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")  # JupyterGateway.spec.logLevel
# Defaults the operator applies (not in the schema: a persisted default would pin an object to
# one release's value, or to a name that may not exist).
DEFAULT_LOG_LEVEL = "INFO"
# The kernels' ports (5 ZeroMQ + comm): fixed so that the gateway's NetworkPolicy can name them
# (operator/network_policy.py); 2000 ports, above EG's 1000-port minimum span.
DEFAULT_PORT_RANGE = "40000..41999"
LEGACY_DEFAULT_KERNEL = "python_kubernetes"  # the original's defaultKernel, used when served
# What a JupyterGateway serves when its spec.kernels is empty and its namespace has no
# JupyterKernelSpec (the original's gateway image came with it): Python, each kernel in the
# default kernel pod with the operator's default kernel image.
BUILTIN_KERNELSPEC = LEGACY_DEFAULT_KERNEL
BUILTIN_KERNELSPEC_DISPLAY_NAME = "Python on Kubernetes"
# EG's argv placeholders after the launcher's name in every kernel.json we write (the operator's
# rendered kernelspecs and the gateway's built-in one), filled by EG per kernel start.
KERNELSPEC_LAUNCHER_ARGS = (
    "--RemoteProcessProxy.kernel-id",
    "{kernel_id}",
    "--RemoteProcessProxy.port-range",
    "{port_range}",
    "--RemoteProcessProxy.response-address",
    "{response_address}",
    "--RemoteProcessProxy.public-key",
    "{public_key}",
)
DEFAULT_KERNEL_LANGUAGE = "python"  # JupyterKernelSpec.spec.language when unset
GATEWAY_PORT = 8888  # Enterprise Gateway's HTTP port, in status.url
# JupyterKernelSpec.spec.className: ours by default; the original's class path means ours too.
DEFAULT_PROCESS_PROXY_CLASS = "elastic_jupyter.gateway_plugin.KubeflowProcessProxy"
LEGACY_PROCESS_PROXY_CLASSES = frozenset(
    {"enterprise_gateway.services.processproxies.kubeflow.KubeflowProcessProxy"}
)
KERNEL_JSON_KEY = "kernel.json"  # key of the kernelspec ConfigMap (status.configMapName)
AUTH_TOKEN_KEY = "token"  # key of the gateway auth / notebook token Secrets


def gateway_auth_secret_name(gateway_name: str) -> str:
    """Default Secret of a JupyterGateway's token (``spec.auth.secretName`` unset)."""
    return f"{gateway_name}-auth"


def gateway_clients_secret_name(gateway_name: str) -> str:
    """Secret (gateway's namespace) mapping each granted notebook, key ``<namespace>.<name>``,
    to the SHA-256 hex digest of its own gateway token; the operator writes it, the gateway
    plugin reads it to tell clients apart."""
    return f"{gateway_name}-clients"


def notebook_token_secret_name(notebook_name: str) -> str:
    """Secret the operator generates a JupyterNotebook's login token into."""
    return f"{notebook_name}-token"


# --- Finalizers and annotations -------------------------------------------------------------
# kopf keeps handler progress and its diff base in annotations with this prefix
# (`kopf.AnnotationsProgressStorage(prefix=...)`, `kopf.AnnotationsDiffBaseStorage(prefix=...)`):
# the status schemas are closed, so kopf's default `status.kopf` would be pruned.
KOPF_ANNOTATION_PREFIX = f"kopf.{GROUP}"
# kopf's finalizer for our resources (kopf `settings.persistence.finalizer`), named for us so
# that `kubectl get -o yaml` shows whose it is.
FINALIZER = f"{KOPF_ANNOTATION_PREFIX}/finalizer"
# On Deployments the operator renders: hash of the rendered spec, to roll out only on change.
ANNOTATION_SPEC_HASH = f"{GROUP}/spec-hash"
# On a kernel pod: the JupyterKernel metadata.generation the pod was built from.
ANNOTATION_KERNEL_GENERATION = f"{GROUP}/kernel-generation"
# On a Namespace: the namespaces whose gateways may run kernels here (comma-separated, "*" for
# any). Only who may edit Namespaces (cluster admins) can write it: a tenant cannot consent for
# another namespace.
ANNOTATION_ACCEPT_KERNELS_FROM = f"{GROUP}/accept-kernels-from"
# On objects the operator writes in other namespaces (no owner reference can cross namespaces):
# "<namespace>/<name>/<uid>" of the custom resource they belong to.
ANNOTATION_OWNER = f"{GROUP}/owner"
# On a JupyterKernel: the gateway client ("<namespace>.<notebook>" or the admin) that started the
# kernel; the gateway shows and hands the kernel to that client only (gateway_plugin/client_auth).
ANNOTATION_CLIENT = f"{GROUP}/client"
# On a JupyterKernel: "<namespace>/<name>" of the JupyterKernelTemplate it was built from.
ANNOTATION_KERNEL_TEMPLATE = f"{GROUP}/kernel-template"
# On a JupyterKernel: the name of "the kernel's Secret" (see kernel_secret_name), which the
# operator mounts into the kernel pod at KERNEL_SECRET_MOUNT_PATH. Set by the gateway, which
# creates that Secret right after the JupyterKernel.
ANNOTATION_KERNEL_SECRET = f"{GROUP}/kernel-secret"
# On a JupyterKernel: the gateway's kernel session (JSON, no secret: the HMAC key and the launch
# arguments live in the kernel's Secret, see SESSION_SECRET_*).
ANNOTATION_KERNEL_SESSION = f"{GROUP}/kernel-session"
# On a JupyterKernel: the gateway replica (pod name) that culls it and restarts it after its pod
# died, so that replicas do either once (gateway_plugin/adoption.py).
ANNOTATION_GATEWAY_OWNER = f"{GROUP}/gateway-owner"
# On a direct-mode JupyterKernel (started by a notebook server's kernel provisioner, no
# gateway; labelled LABEL_NOTEBOOK=<notebook name>): the owning JupyterNotebook's namespace and
# uid (the uid is empty for a notebook server started by hand). The operator deletes a deleted
# notebook's kernels in other namespaces by these.
ANNOTATION_NOTEBOOK_NAMESPACE = f"{GROUP}/notebook-namespace"
ANNOTATION_NOTEBOOK_UID = f"{GROUP}/notebook-uid"
# On a direct-mode JupyterKernel: the notebook server's session of the kernel (JSON: path, name,
# type), so that a restarted notebook server lists it again under /api/sessions.
ANNOTATION_NOTEBOOK_SESSION = f"{GROUP}/notebook-session"

# --- Contracts between the operator and the gateway plugin ----------------------------------
# The environment the operator writes into the gateway Deployment and the plugin reads.
ENV_KERNEL_NAMESPACE = "EJ_KERNEL_NAMESPACE"  # the gateway's default kernel namespace
ENV_ALLOW_KERNEL_NAMESPACE = "EJ_ALLOW_KERNEL_NAMESPACE"  # clients may pick KERNEL_NAMESPACE
ENV_KERNEL_NAMESPACES = "EJ_KERNEL_NAMESPACES"  # comma-separated: every namespace it may use
# The environment of a direct-mode notebook server (the operator writes it, the provisioner
# reads it): the JupyterNotebook owning the kernels it starts.
ENV_NOTEBOOK_NAME = "EJ_NOTEBOOK_NAME"
ENV_NOTEBOOK_NAMESPACE = "EJ_NOTEBOOK_NAMESPACE"
ENV_NOTEBOOK_UID = "EJ_NOTEBOOK_UID"
ENV_RESPONSE_PORT = "EJ_RESPONSE_PORT"  # the provisioner's response address port (8877)
ENV_KERNELSPEC_DIR = "ELASTIC_JUPYTER_KERNELSPEC_DIR"  # where the kernelspec ConfigMaps mount
# The container of a kernel pod that runs the kernel (templates may add sidecars): the operator
# injects the launcher into it, the gateway's own template names it.
KERNEL_CONTAINER_NAME = "kernel"

# --- The kernel's Secret -----------------------------------------------------------------
# One Secret per JupyterKernel, named exactly like it, owned by it (controller ownerReference,
# so it goes with the kernel), mounted only into that kernel's pod. Keys:
#   launch-token   - written by the gateway: the kernel proves with it that the connection
#                    info it sends to the gateway's response address is its own.
#   connection-key - the kernel's HMAC key, and
#   launch-args    - EG's launch arguments: the gateway's kernel session (session_store).
KERNEL_SECRET_LAUNCH_TOKEN_KEY = "launch-token"
SESSION_SECRET_CONNECTION_KEY = "connection-key"
SESSION_SECRET_LAUNCH_ARGS = "launch-args"
# Where the kernel pod sees the Secret's keys as files (read-only).
KERNEL_SECRET_MOUNT_PATH = "/var/run/elastic-jupyter/kernel"
KERNEL_SECRET_VOLUME = "kernel-secret"


def kernel_secret_name(kernel_name: str) -> str:
    """The Secret of the JupyterKernel ``kernel_name``: the same name, in its namespace."""
    return kernel_name


def rfc3339(moment: datetime | None = None) -> str:
    """A status timestamp (``startTime``, ``lastTransitionTime``…) as the CRDs require.

    The status schemas declare ``format: date-time``: a real API server refuses a timestamp
    without a time zone (Python's naive ``isoformat()``) with 422; the sandbox does not check
    formats, so use this. ``None`` means now; naive datetimes are taken as UTC.
    """
    moment = moment or datetime.now(timezone.utc)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch_seconds(timestamp: object) -> float | None:
    """Seconds since the epoch of an RFC 3339 timestamp as the API server writes them
    (``creationTimestamp``...); None when absent or not a timestamp."""
    if not isinstance(timestamp, str) or not timestamp:
        return None
    try:
        return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def crd_text(names: ResourceNames) -> str:
    """Return the YAML text of one kind's CRD, as shipped in the package."""
    return resources.files(__name__).joinpath(names.crd_file).read_text(encoding="utf-8")


def load_crds() -> list[dict[str, Any]]:
    """Return the five CRDs as dictionaries (needs PyYAML, which every server-side extra has)."""
    import yaml  # imported here: the in-pod launcher never needs this module's YAML

    return [yaml.safe_load(crd_text(names)) for names in ALL_KINDS]
