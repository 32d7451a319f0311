"""The gateway-side settings of elastic-jupyter, read from the gateway's environment.

Everything here is a pure function of an environment mapping, so the settings are tested
without a gateway and the same rules apply in-process (the process proxy) and in the
standalone ``kubeflow-launcher`` CLI.

========================================  =====================  ==============================
variable                                  default                meaning
========================================  =====================  ==============================
``EG_NAME``                               ``enterprise-gateway``  this gateway's JupyterGateway
                                                                 name: kernel label, owner
                                                                 reference and watch selector
``EG_NAMESPACE``                          ``default``            the gateway's namespace
``EJ_KERNEL_NAMESPACE``                   ``EG_NAMESPACE``       where kernels run by default
                                                                 (the operator sets it from
                                                                 ``spec.kernelNamespace``)
``EJ_ALLOW_KERNEL_NAMESPACE``             ``false``              let clients pick another
                                                                 namespace (``KERNEL_NAMESPACE``);
                                                                 each one is watched from the
                                                                 first kernel launched there
                                                                 (namespaced Roles suffice, see
                                                                 :mod:`.kernel_watch`)
``EJ_KERNEL_NAMESPACES``                  (empty)                with the above: the namespaces
                                                                 clients may pick (comma-separated;
                                                                 empty = any the gateway's RBAC
                                                                 allows); watched from boot, so
                                                                 orphans there are cleaned up
``EJ_ALLOWED_KERNEL_IMAGES``              (empty)                comma-separated glob patterns a
                                                                 client ``KERNEL_IMAGE`` may match
                                                                 (``*`` = any image)
``EJ_UNSCHEDULABLE_GRACE_SECONDS``        ``10``                 how long a kernel may stay
                                                                 Unschedulable before its launch
                                                                 fails (raise it with autoscaling)
``EJ_ORPHAN_GRACE_SECONDS``               ``60``                 age after which a JupyterKernel
                                                                 of this gateway without a kernel
                                                                 session is deleted
``EJ_DEFAULT_KERNEL_TEMPLATE``            (empty)                ``[namespace/]name`` of the
                                                                 JupyterKernelTemplate used when a
                                                                 kernelspec names none
``EJ_ALLOW_KERNEL_UID_GID``               ``true``               apply a client's ``KERNEL_UID``/
                                                                 ``KERNEL_GID`` as the pod's
                                                                 ``runAsUser``/``runAsGroup``
                                                                 (never a prohibited id)
``EG_KERNEL_LAUNCH_TIMEOUT``              ``30``                 EG's; in replication mode a
                                                                 JupyterKernel younger than this +
                                                                 the orphan grace is never swept
``EG_PROHIBITED_UIDS``, ``_GIDS``         ``0``                  EG's own lists (comma-separated);
                                                                 the builder refuses them too
``EJ_KERNEL_UID_RANGE``, ``_GID_RANGE``   ``1000-65535``,        the ids a client's ``KERNEL_UID``/
                                          ``100-65535``          ``KERNEL_GID`` may ask for (403)
``EJ_ALLOWED_PROCESS_PROXIES``            (empty)                extra process-proxy classes a
                                                                 served kernel.json may name
``EJ_ALLOWED_KERNEL_SERVICE_ACCOUNTS``    (empty)                service accounts a client's
                                                                 ``KERNEL_SERVICE_ACCOUNT_NAME``
                                                                 may name (comma-separated globs,
                                                                 ``*`` = any); empty: none (403)
========================================  =====================  ==============================
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from elastic_jupyter import crds

from . import client_limits

USER_AGENT = "elastic-jupyter-gateway/0.1"
DEFAULT_GATEWAY_NAME = "enterprise-gateway"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


class SettingsError(ValueError):
    """A gateway environment variable has a value elastic-jupyter cannot use."""


def is_dns_label(text: str) -> bool:
    """Return whether ``text`` is a DNS-1123 label (names of namespaces, gateways, kernels)."""
    return len(text) <= 63 and bool(_DNS_LABEL.match(text))


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean: use true or false")


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number of seconds (e.g. 10)") from None
    if value < 0:
        raise SettingsError(f"{name}={raw!r} must not be negative")
    return value


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in env.get(name, "").split(",") if p.strip())


def _ids(env: Mapping[str, str], name: str) -> frozenset[int]:
    """EG's ``EG_PROHIBITED_UIDS``/``GIDS`` (default ``0``), read as EG reads them."""
    raw = env.get(name)
    ids: set[int] = set()
    for part in (raw if raw is not None else "0").split(","):
        if not part.strip():
            continue
        try:
            ids.add(int(part))
        except ValueError:
            raise SettingsError(f"{name}={raw!r} must list numeric ids (e.g. 0,65534)") from None
    return frozenset(ids)


def _range(env: Mapping[str, str], name: str, default: tuple[int, int]) -> tuple[int, int]:
    try:
        return client_limits.parse_range(env.get(name, ""), default)
    except ValueError as error:
        raise SettingsError(f"{name}: {error}") from None


def _dns_label(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip() or default
    if not is_dns_label(value):
        raise SettingsError(
            f"{name}={value!r} is not a DNS-1123 label: use at most 63 lowercase letters, "
            "digits and '-', starting and ending with a letter or digit"
        )
    return value


def parse_template_ref(text: str, default_namespace: str) -> tuple[str, str]:
    """Split ``[namespace/]name`` into ``(namespace, name)``."""
    namespace, _, name = text.strip().rpartition("/")
    return (namespace or default_namespace, name)


@dataclass(frozen=True)
class GatewaySettings:
    """What the gateway side needs to know about itself; see the module docstring."""

    gateway_name: str = DEFAULT_GATEWAY_NAME
    gateway_namespace: str = "default"
    kernel_namespace: str = ""  # empty: the gateway's namespace
    allow_kernel_namespace: bool = False
    allowed_images: tuple[str, ...] = ()
    unschedulable_grace: float = 10.0
    orphan_grace: float = 60.0
    default_template: tuple[str, str] | None = None
    kernel_namespaces: tuple[str, ...] = ()
    allow_kernel_uid_gid: bool = True
    prohibited_uids: frozenset[int] = frozenset({0})
    prohibited_gids: frozenset[int] = frozenset({0})
    allowed_service_accounts: tuple[str, ...] = ()
    kernel_launch_timeout: float = 30.0
    uid_range: tuple[int, int] = client_limits.DEFAULT_UID_RANGE
    gid_range: tuple[int, int] = client_limits.DEFAULT_GID_RANGE

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GatewaySettings:
        """Read the settings from ``env`` (``os.environ``); raise :class:`SettingsError`."""
        namespace = _dns_label(env, "EG_NAMESPACE", "default")
        kernel_namespace = _dns_label(env, crds.ENV_KERNEL_NAMESPACE, namespace)
        template_text = env.get("EJ_DEFAULT_KERNEL_TEMPLATE", "").strip()
        template = parse_template_ref(template_text, namespace) if template_text else None
        images = _list(env, "EJ_ALLOWED_KERNEL_IMAGES")
        namespaces = tuple(dict.fromkeys(_list(env, crds.ENV_KERNEL_NAMESPACES)))
        for value in namespaces:
            if not is_dns_label(value):
                raise SettingsError(
                    f"{crds.ENV_KERNEL_NAMESPACES} holds {value!r}, which is not a namespace name "
                    "(DNS-1123 label)"
                )
        return cls(
            gateway_name=_dns_label(env, "EG_NAME", DEFAULT_GATEWAY_NAME),
            gateway_namespace=namespace,
            kernel_namespace=kernel_namespace,
            allow_kernel_namespace=_flag(env, crds.ENV_ALLOW_KERNEL_NAMESPACE, False),
            allowed_images=images,
            unschedulable_grace=_seconds(env, "EJ_UNSCHEDULABLE_GRACE_SECONDS", 10.0),
            orphan_grace=_seconds(env, "EJ_ORPHAN_GRACE_SECONDS", 60.0),
            default_template=template,
            kernel_namespaces=namespaces,
            allow_kernel_uid_gid=_flag(env, "EJ_ALLOW_KERNEL_UID_GID", True),
            prohibited_uids=_ids(env, "EG_PROHIBITED_UIDS"),
            prohibited_gids=_ids(env, "EG_PROHIBITED_GIDS"),
            allowed_service_accounts=_list(env, "EJ_ALLOWED_KERNEL_SERVICE_ACCOUNTS"),
            kernel_launch_timeout=_seconds(env, "EG_KERNEL_LAUNCH_TIMEOUT", 30.0),
            uid_range=_range(env, "EJ_KERNEL_UID_RANGE", client_limits.DEFAULT_UID_RANGE),
            gid_range=_range(env, "EJ_KERNEL_GID_RANGE", client_limits.DEFAULT_GID_RANGE),
        )

    @property
    def default_kernel_namespace(self) -> str:
        """The namespace of kernels whose client chose none."""
        return self.kernel_namespace or self.gateway_namespace

    @property
    def boot_watch_namespaces(self) -> tuple[str, ...]:
        """The namespaces the kernel watch covers from the start (more are added lazily).

        The default kernel namespace always; with ``EJ_ALLOW_KERNEL_NAMESPACE`` also the
        gateway's own namespace and ``EJ_KERNEL_NAMESPACES``. Never all namespaces: the
        gateway needs no cluster-wide permission.
        """
        names = [self.default_kernel_namespace]
        if self.allow_kernel_namespace:
            names += [self.gateway_namespace, *self.kernel_namespaces]
        return tuple(dict.fromkeys(names))
