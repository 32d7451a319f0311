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
                                                                 the gateway then watches all
                                                                 namespaces (needs a ClusterRole)
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
========================================  =====================  ==============================
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

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

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GatewaySettings:
        """Read the settings from ``env`` (``os.environ``); raise :class:`SettingsError`."""
        namespace = _dns_label(env, "EG_NAMESPACE", "default")
        kernel_namespace = _dns_label(env, "EJ_KERNEL_NAMESPACE", namespace)
        template_text = env.get("EJ_DEFAULT_KERNEL_TEMPLATE", "").strip()
        template = parse_template_ref(template_text, namespace) if template_text else None
        images = tuple(
            p.strip() for p in env.get("EJ_ALLOWED_KERNEL_IMAGES", "").split(",") if p.strip()
        )
        return cls(
            gateway_name=_dns_label(env, "EG_NAME", DEFAULT_GATEWAY_NAME),
            gateway_namespace=namespace,
            kernel_namespace=kernel_namespace,
            allow_kernel_namespace=_flag(env, "EJ_ALLOW_KERNEL_NAMESPACE", False),
            allowed_images=images,
            unschedulable_grace=_seconds(env, "EJ_UNSCHEDULABLE_GRACE_SECONDS", 10.0),
            orphan_grace=_seconds(env, "EJ_ORPHAN_GRACE_SECONDS", 60.0),
            default_template=template,
        )

    @property
    def default_kernel_namespace(self) -> str:
        """The namespace of kernels whose client chose none."""
        return self.kernel_namespace or self.gateway_namespace

    @property
    def watch_namespace(self) -> str | None:
        """The namespace the kernel watch covers; ``None`` means all namespaces."""
        return None if self.allow_kernel_namespace else self.default_kernel_namespace
