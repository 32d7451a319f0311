"""Plan a JupyterKernel from a kernel launch: pure functions, no cluster, no gateway.

Two steps, both pure:

1. :func:`plan_kernel` applies the gateway's policy to what Enterprise Gateway hands a launch
   (the final env, the client's own env, the kernelspec, the proxy config) and returns a
   validated :class:`KernelPlan` - or raises :class:`KernelRequestError` with the HTTP status
   the notebook user should see (400 for malformed values, 403 for what the client may not
   choose, 500 for a broken kernelspec or template).
2. :func:`.kernel_manifest.build_kernel_manifest` turns a plan plus the JupyterKernelTemplate
   into the JupyterKernel object to create.

Identity a client may ask for (each judged on the client's own env, not on the values Enterprise
Gateway fills in itself, e.g. its default ``KERNEL_UID=1000``):

* ``KERNEL_UID``/``KERNEL_GID`` become the pod's ``securityContext.runAsUser``/``runAsGroup``
  (and the kernel container's, when the template sets those there) unless the id is
  prohibited (``EG_PROHIBITED_UIDS``/``GIDS``, default 0: 403) or the gateway turned this off
  (``EJ_ALLOW_KERNEL_UID_GID=false``: 403). EG's ``ContainerProcessProxy`` refuses prohibited
  ids first; the builder refuses them again, so the CLI and any other caller are covered.
* ``KERNEL_SERVICE_ACCOUNT_NAME`` becomes the pod's ``serviceAccountName`` only when it matches
  ``EJ_ALLOWED_KERNEL_SERVICE_ACCOUNTS`` (default: nothing matches, 403).

Without them the pod template keeps what the JupyterKernelTemplate says; the operator then fills
its non-root defaults only for keys still missing.

The process proxy runs both in-process for every kernel start; the ``kubeflow-launcher`` CLI
runs the same two functions from its argv and environment.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import secrets
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from elastic_jupyter import crds
from elastic_jupyter.kernel_launcher import env as launcher_env

from . import client_limits
from .settings import GatewaySettings, is_dns_label

Obj = dict[str, Any]

GPU_RESOURCE = "nvidia.com/gpu"
MAX_ENV_VALUE = 32 * 1024

# Client env names the gateway owns. A client value that differs from the gateway's is
# rejected (400) instead of being silently replaced, so a misconfigured client learns why.
GATEWAY_OWNED_ENV = frozenset(
    {
        launcher_env.KERNEL_ID,
        launcher_env.RESPONSE_ADDRESS,
        launcher_env.EG_RESPONSE_ADDRESS,
        launcher_env.PUBLIC_KEY,
        launcher_env.EG_PUBLIC_KEY,
        launcher_env.PORT_RANGE,
        launcher_env.EG_PORT_RANGE,
        launcher_env.KERNEL_NAME,
        "KERNEL_POD_NAME",
        "KERNEL_RESOURCE_NAME",
        "KERNEL_CRD_GROUP",
        "KERNEL_CRD_VERSION",
        "KERNEL_CRD_PLURAL",
    }
)
# Env the gateway sets itself on the kernel container (never copied from the launch env).
_SET_BY_GATEWAY = GATEWAY_OWNED_ENV | {
    launcher_env.KERNEL_USERNAME,
    launcher_env.KERNEL_LANGUAGE,
    "KERNEL_NAMESPACE",
    "KERNEL_SPARK_CONTEXT_INIT_MODE",
}

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_QUANTITY = re.compile(r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|[KMGTPE]i|[numkMGTPE])?$")
_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits
_RESOURCE_VARS = (
    ("KERNEL_CPUS", "requests", "cpu"),
    ("KERNEL_MEMORY", "requests", "memory"),
    ("KERNEL_CPUS_LIMIT", "limits", "cpu"),
    ("KERNEL_MEMORY_LIMIT", "limits", "memory"),
)


class KernelRequestError(Exception):
    """A kernel launch the gateway refuses; ``status`` is the HTTP status for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class GatewayRef:
    """Who launches and owns kernels: a JupyterGateway (``kind`` by default), or in direct mode
    the JupyterNotebook whose server runs the kernel provisioner (a server started by hand has
    a name and namespace but no uid). ``uid`` is known once it has been looked up."""

    name: str
    namespace: str
    uid: str | None = None
    kind: str = crds.JUPYTER_GATEWAY.kind

    @property
    def is_notebook(self) -> bool:
        return self.kind == crds.JUPYTER_NOTEBOOK.kind


@dataclass(frozen=True)
class LaunchInput:
    """Everything a launch hands the builder, before policy.

    ``env`` is the final environment Enterprise Gateway prepared for the kernel (kernelspec env,
    client ``KERNEL_*`` values, EG's own ``KERNEL_*``); ``client_env`` is the subset the client
    sent, which is what the policy judges; ``kernelspec_env_names`` are the keys of the
    kernelspec's ``env`` stanza, which are copied into the kernel container.
    """

    kernel_id: str
    kernelspec_name: str
    response_address: str
    public_key: str
    port_range: str
    env: Mapping[str, str]
    client_env: Mapping[str, str] = field(default_factory=dict)
    kernelspec_env_names: Sequence[str] = ()
    kernelspec_language: str = ""
    image_name: str | None = None
    template: tuple[str, str] | None = None
    kernel_argv: Sequence[str] | None = None
    spark_context_init_mode: str | None = None
    name_suffix: str | None = None
    resources: Mapping[str, Any] | None = (
        None  # the kernelspec's (JupyterKernelSpec spec.resources)
    )
    owner: str | None = None  # the gateway client that started it (client_auth.py)


@dataclass(frozen=True)
class KernelPlan:
    """A validated kernel launch: what :func:`.kernel_manifest.build_kernel_manifest` needs
    besides the template."""

    name: str
    namespace: str
    kernel_id: str
    kernelspec_name: str
    username: str
    image: str | None
    template: tuple[str, str] | None
    container_env: tuple[tuple[str, str], ...]
    resources: Obj
    labels: tuple[tuple[str, str], ...]
    run_as_user: int | None = None
    run_as_group: int | None = None
    service_account: str | None = None
    #: The client's own resource env (``KERNEL_CPUS``…), judged against the template's limits.
    client_resources: tuple[tuple[str, str], ...] = ()
    owner: str | None = None


# --- names and labels -----------------------------------------------------------------------


def new_name_suffix() -> str:
    """Return a random 5-character suffix: each launch (and restart) of a kernel id differs."""
    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))


def _dns_part(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _short_hash(text: str, length: int = 8) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def kernel_resource_name(kernel_id: str, username: str, suffix: str) -> str:
    """Return the JupyterKernel (and pod) name: ``<user>-<kernel id>-<suffix>``, a DNS-1123 label.

    The user part is shortened first, then the kernel id part (a hash keeps it unique); the
    suffix differs per launch, so a restart's new JupyterKernel never clashes with the old one
    that may still be terminating.
    """
    suffix_part = _dns_part(suffix)[:10] or "k"
    kid = _dns_part(kernel_id) or _short_hash(kernel_id)
    if len(kid) > 40:
        kid = f"{kid[:31].rstrip('-')}-{_short_hash(kernel_id)}"
    user = _dns_part(username)[: 63 - len(kid) - len(suffix_part) - 2].strip("-")
    user = user[:16].rstrip("-")
    return "-".join(p for p in (user, kid, suffix_part) if p)


def label_value(text: str) -> str:
    """Make ``text`` a valid label value (63 characters of ``[A-Za-z0-9._-]``, alnum at ends)."""
    value = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")
    if len(value) > 63 or value != text:
        if len(value) > 54:
            value = value[:54].rstrip("-._")
        if value != text:
            value = f"{value}-{_short_hash(text)}" if value else _short_hash(text)
    return value


# --- env policy -----------------------------------------------------------------------------


def check_env_value(name: str, value: object) -> str:
    """Return ``value`` if it is usable as the env var ``name``; else raise (400)."""
    if not _ENV_NAME.match(name):
        raise KernelRequestError(
            400, f"env name {name!r} is invalid: use letters, digits and '_' only"
        )
    if not isinstance(value, str):
        raise KernelRequestError(400, f"env {name} must be a string, got {type(value).__name__}")
    if "\x00" in value or len(value) > MAX_ENV_VALUE:
        raise KernelRequestError(
            400, f"env {name} is too long or holds a NUL byte (at most {MAX_ENV_VALUE} bytes)"
        )
    return value


def _check_client_env(inp: LaunchInput, settings: GatewaySettings) -> None:
    for name, value in inp.client_env.items():
        check_env_value(name, value)
    owned = {
        launcher_env.KERNEL_ID: inp.kernel_id,
        launcher_env.KERNEL_NAME: inp.kernelspec_name,
    }
    for name in sorted(GATEWAY_OWNED_ENV & inp.client_env.keys()):
        if name in owned and inp.client_env[name] == owned[name]:
            continue  # e.g. a client choosing its kernel id: EG made it the kernel's id
        raise KernelRequestError(
            400,
            f"{name} is set by the gateway and cannot be chosen by the client: "
            f"remove {name} from the kernel start request's env",
        )
    namespace = inp.client_env.get("KERNEL_NAMESPACE")
    if namespace is not None and namespace != settings.default_kernel_namespace:
        if not settings.allow_kernel_namespace:
            raise KernelRequestError(
                403,
                f"KERNEL_NAMESPACE={namespace!r} is not allowed: this gateway runs kernels in "
                f"namespace {settings.default_kernel_namespace!r} (the gateway's admin can allow "
                "other namespaces with EJ_ALLOW_KERNEL_NAMESPACE=true)",
            )
        if settings.kernel_namespaces and namespace not in settings.kernel_namespaces:
            allowed = ", ".join([settings.default_kernel_namespace, *settings.kernel_namespaces])
            raise KernelRequestError(
                403,
                f"KERNEL_NAMESPACE={namespace!r} is not allowed: pick one of {allowed} (the "
                "gateway's admin lists them in EJ_KERNEL_NAMESPACES)",
            )
    image = inp.client_env.get("KERNEL_IMAGE")
    if (
        image is not None
        and image != inp.image_name
        and not any(fnmatch.fnmatchcase(image, p) for p in settings.allowed_images)
    ):
        raise KernelRequestError(
            403,
            f"KERNEL_IMAGE={image!r} is not allowed: this kernel runs "
            f"{inp.image_name or 'the image of its template'} (the gateway's admin can "
            "allow client images with EJ_ALLOWED_KERNEL_IMAGES=<glob,...>)",
        )


_MAX_ID = 2**32 - 1
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _client_id(
    inp: LaunchInput, settings: GatewaySettings, name: str, prohibited: frozenset[int]
) -> int | None:
    """The uid or gid a client asked for in ``name`` (``KERNEL_UID``/``KERNEL_GID``), if any."""
    raw = inp.client_env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise KernelRequestError(400, f"{name}={raw!r} is not a numeric id") from None
    if not 0 <= value <= _MAX_ID:
        raise KernelRequestError(400, f"{name}={raw!r} must be between 0 and {_MAX_ID}")
    setting = "EG_PROHIBITED_UIDS" if name == "KERNEL_UID" else "EG_PROHIBITED_GIDS"
    if value in prohibited:
        raise KernelRequestError(
            403, f"{name}={value} is not allowed: the gateway prohibits it ({setting})"
        )
    if not settings.allow_kernel_uid_gid:
        raise KernelRequestError(
            403,
            f"{name}={value} is not allowed: this gateway runs kernels with the ids of their "
            "template (the gateway's admin can allow client ids with "
            "EJ_ALLOW_KERNEL_UID_GID=true); remove it from the kernel start request's env",
        )
    if name == "KERNEL_UID":
        refusal = client_limits.id_refusal(name, value, settings.uid_range, "EJ_KERNEL_UID_RANGE")
    else:
        refusal = client_limits.id_refusal(name, value, settings.gid_range, "EJ_KERNEL_GID_RANGE")
    if refusal:
        raise KernelRequestError(403, refusal)
    return value


def _client_service_account(inp: LaunchInput, settings: GatewaySettings) -> str | None:
    """The service account a client asked for in ``KERNEL_SERVICE_ACCOUNT_NAME``, if allowed."""
    name = inp.client_env.get("KERNEL_SERVICE_ACCOUNT_NAME", "").strip()
    if not name:
        return None
    if len(name) > 253 or not _SUBDOMAIN.match(name):
        raise KernelRequestError(
            400, f"KERNEL_SERVICE_ACCOUNT_NAME={name!r} is not a service account name"
        )
    if not any(fnmatch.fnmatchcase(name, p) for p in settings.allowed_service_accounts):
        raise KernelRequestError(
            403,
            f"KERNEL_SERVICE_ACCOUNT_NAME={name!r} is not allowed: kernels of this gateway run "
            "with their template's service account (the gateway's admin can allow names with "
            "EJ_ALLOWED_KERNEL_SERVICE_ACCOUNTS=<glob,...>)",
        )
    return name


def quantity(name: str, value: str) -> Decimal:
    text = value.strip()
    if not _QUANTITY.match(text):
        raise KernelRequestError(
            400, f"{name}={value!r} is not a Kubernetes quantity (e.g. 500m, 2, 4Gi)"
        )
    number = re.match(r"^[0-9.]+([eE][-+]?[0-9]+)?", text)
    assert number is not None
    unit = text[number.end() :]
    factors: dict[str, Decimal] = {
        "": Decimal(1),
        "n": Decimal("1e-9"),
        "u": Decimal("1e-6"),
        "m": Decimal("1e-3"),
        "k": Decimal(10**3),
        "M": Decimal(10**6),
        "G": Decimal(10**9),
        "T": Decimal(10**12),
        "P": Decimal(10**15),
        "E": Decimal(10**18),
        "Ki": Decimal(2**10),
        "Mi": Decimal(2**20),
        "Gi": Decimal(2**30),
        "Ti": Decimal(2**40),
        "Pi": Decimal(2**50),
        "Ei": Decimal(2**60),
    }
    try:
        return Decimal(number.group(0)) * factors[unit]
    except (InvalidOperation, KeyError):
        raise KernelRequestError(400, f"{name}={value!r} is not a valid quantity") from None


def resources_from_env(env: Mapping[str, str]) -> Obj:
    """Return container ``resources`` from ``KERNEL_CPUS``/``_MEMORY``/``_GPUS`` (+ ``_LIMIT``).

    GPUs (``nvidia.com/gpu``) cannot be overcommitted, so request and limit are the same
    number; a limit below its request is refused (400).
    """
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    for var, kind, resource in _RESOURCE_VARS:
        value = env.get(var, "").strip()
        if value:
            quantity(var, value)
            (requests if kind == "requests" else limits)[resource] = value
    for resource in ("cpu", "memory"):
        if resource in requests and resource in limits:
            req = quantity(resource, requests[resource])
            lim = quantity(resource, limits[resource])
            if lim < req:
                var = "KERNEL_CPUS" if resource == "cpu" else "KERNEL_MEMORY"
                raise KernelRequestError(
                    400,
                    f"{var}_LIMIT={limits[resource]!r} is below {var}={requests[resource]!r}: "
                    "raise the limit or lower the request",
                )
    gpus = env.get("KERNEL_GPUS", "").strip()
    gpus_limit = env.get("KERNEL_GPUS_LIMIT", "").strip()
    for var, value in (("KERNEL_GPUS", gpus), ("KERNEL_GPUS_LIMIT", gpus_limit)):
        if value and not value.isdigit():
            raise KernelRequestError(400, f"{var}={value!r} must be a whole number of GPUs")
    if gpus and gpus_limit and int(gpus) != int(gpus_limit):
        raise KernelRequestError(
            400,
            f"KERNEL_GPUS={gpus} and KERNEL_GPUS_LIMIT={gpus_limit} differ: GPUs cannot be "
            "overcommitted, set one of them (or both to the same number)",
        )
    count = gpus or gpus_limit
    if count and int(count) > 0:
        requests[GPU_RESOURCE] = str(int(count))
        limits[GPU_RESOURCE] = str(int(count))
    out: Obj = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def merge_resources(base: Mapping[str, Any] | None, override: Mapping[str, Any]) -> Obj:
    """Merge container resources per kind (``requests``, ``limits``); ``override`` wins.

    ``base`` is the kernelspec's ``resources`` (admin-set; checked here, 500 when malformed);
    ``override`` is what :func:`resources_from_env` read from the client's ``KERNEL_*``.
    """
    merged: Obj = {}
    for kind, values in (base or {}).items():
        if kind not in ("requests", "limits") or not isinstance(values, Mapping):
            raise KernelRequestError(
                500,
                f"the kernelspec's resources.{kind} is not a map of quantities: fix "
                "JupyterKernelSpec spec.resources (requests/limits)",
            )
        for name, value in values.items():
            if not isinstance(value, (str, int)) or isinstance(value, bool):
                raise KernelRequestError(
                    500, f"the kernelspec's resources.{kind}.{name} must be a quantity string"
                )
        merged[kind] = {str(k): str(v) for k, v in values.items()}
    for kind, values in override.items():
        merged[kind] = {**merged.get(kind, {}), **values}
    return merged


def _argv_env(inp: LaunchInput) -> str | None:
    if inp.kernel_argv is None:
        return None
    return json.dumps(list(inp.kernel_argv))


def plan_kernel(inp: LaunchInput, settings: GatewaySettings) -> KernelPlan:
    """Apply the gateway's policy to one launch; raise :class:`KernelRequestError` on refusal."""
    _check_client_env(inp, settings)
    env = inp.env
    username = env.get(launcher_env.KERNEL_USERNAME, "").strip()
    if not username:
        raise KernelRequestError(
            400, "KERNEL_USERNAME is empty: the client must say who starts the kernel"
        )
    check_env_value(launcher_env.KERNEL_USERNAME, username)
    if len(username) > 253:
        raise KernelRequestError(400, "KERNEL_USERNAME is longer than 253 characters: shorten it")
    if label_value(inp.kernel_id) != inp.kernel_id:
        raise KernelRequestError(
            400,
            f"kernel id {inp.kernel_id!r} is not usable as a label: use a UUID (at most 63 "
            "letters, digits, '-', '_' or '.')",
        )

    namespace = env.get("KERNEL_NAMESPACE", "").strip() or settings.default_kernel_namespace
    if namespace != settings.default_kernel_namespace and (
        not settings.allow_kernel_namespace
        or (settings.kernel_namespaces and namespace not in settings.kernel_namespaces)
    ):
        namespace = settings.default_kernel_namespace  # from the kernelspec or EG: not allowed
    if not is_dns_label(namespace):
        raise KernelRequestError(
            400, f"KERNEL_NAMESPACE={namespace!r} is not a valid namespace name (DNS-1123 label)"
        )

    image = env.get("KERNEL_IMAGE", "").strip() or inp.image_name
    if inp.client_env.get("KERNEL_IMAGE") is None and inp.image_name:
        image = inp.image_name

    run_as_user = _client_id(inp, settings, "KERNEL_UID", settings.prohibited_uids)
    run_as_group = _client_id(inp, settings, "KERNEL_GID", settings.prohibited_gids)
    service_account = _client_service_account(inp, settings)

    resources = merge_resources(inp.resources, resources_from_env(env))
    caps = client_limits.maximum("the kernelspec's resources.limits", inp.resources)
    refusal = client_limits.resource_refusal(inp.client_env, caps, quantity)
    if refusal:
        raise KernelRequestError(403, refusal)
    language = env.get(launcher_env.KERNEL_LANGUAGE) or inp.kernelspec_language.lower()
    suffix = inp.name_suffix or new_name_suffix()
    name = kernel_resource_name(inp.kernel_id, username, suffix)

    container_env: dict[str, str] = {}
    copied = [n for n in inp.kernelspec_env_names if n in env]
    copied += [n for n in env if n.startswith("KERNEL_") and n not in copied]
    for key in copied:
        if key not in _SET_BY_GATEWAY:
            container_env[key] = check_env_value(key, env[key])
    container_env.update(
        {
            launcher_env.KERNEL_ID: inp.kernel_id,
            launcher_env.RESPONSE_ADDRESS: inp.response_address,
            launcher_env.EG_RESPONSE_ADDRESS: inp.response_address,
            launcher_env.PUBLIC_KEY: inp.public_key,
            launcher_env.EG_PUBLIC_KEY: inp.public_key,
            launcher_env.PORT_RANGE: inp.port_range,
            launcher_env.EG_PORT_RANGE: inp.port_range,
            launcher_env.KERNEL_USERNAME: username,
            launcher_env.KERNEL_LANGUAGE: language,
            launcher_env.KERNEL_NAME: inp.kernelspec_name,
            "KERNEL_NAMESPACE": namespace,
        }
    )
    if inp.spark_context_init_mode:
        container_env["KERNEL_SPARK_CONTEXT_INIT_MODE"] = inp.spark_context_init_mode
    argv = _argv_env(inp)
    if argv is not None:
        container_env[launcher_env.KERNEL_ARGV] = argv

    labels = {
        crds.LABEL_KERNEL_ID: label_value(inp.kernel_id),
        crds.LABEL_COMPONENT: crds.COMPONENT_KERNEL,
        crds.LABEL_MANAGED_BY: crds.MANAGED_BY,
        crds.LABEL_GATEWAY: settings.gateway_name,
        crds.LABEL_KERNELSPEC: label_value(inp.kernelspec_name),
        crds.LABEL_KERNEL_USERNAME: label_value(username),
    }
    return KernelPlan(
        name=name,
        namespace=namespace,
        kernel_id=inp.kernel_id,
        kernelspec_name=inp.kernelspec_name,
        username=username,
        image=image or None,
        template=inp.template or settings.default_template,
        container_env=tuple(container_env.items()),
        resources=resources,
        labels=tuple(labels.items()),
        run_as_user=run_as_user,
        run_as_group=run_as_group,
        service_account=service_account,
        client_resources=tuple(
            (var, inp.client_env[var])
            for var, _ in client_limits.RESOURCE_OF_VAR
            if inp.client_env.get(var)
        ),
        owner=inp.owner,
    )
