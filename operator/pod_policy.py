"""What a kernel pod may be: pure checks of pod templates against the admin's policy, no I/O.

The operator creates kernel pods in every namespace it serves, with its own (broad) rights; a
tenant who may write a JupyterKernel or JupyterKernelTemplate must not get more through it than
a pod they could create themselves under Pod Security "restricted". So before a pod is created
(:mod:`kernels`) and whenever a template is validated (:mod:`kernel_templates`) two checks run:

1. :func:`shape_problems` — the template's fields have the types a pod spec needs (an object
   where ``securityContext`` is, a list where ``env`` is…). The CRD schemas keep most of a pod
   template open (``x-kubernetes-preserve-unknown-fields``) so that the original's YAML still
   applies; without this check a string ``securityContext`` made the pod builder raise and the
   user waited for the whole launch timeout. Reason ``InvalidSpec``.
2. :func:`violations` — the rendered pod (after the operator's non-root defaults) against
   Pod Security Standards "restricted", a service-account allow-list and token automount.
   Reason ``PolicyViolation``.

Each problem names the field (``spec.template.spec.containers[0].securityContext.privileged``)
and the fix. The policy is the operator's, set by the cluster admin in the operator's
environment (:meth:`PodPolicy.from_env`): tenants cannot write it.

================================================  ===========================================
``ELASTIC_JUPYTER_KERNEL_POD_SECURITY``           ``restricted`` (default) or ``privileged``
                                                  (no Pod Security checks at all)
``ELASTIC_JUPYTER_KERNEL_SERVICE_ACCOUNTS``       globs of service account names kernel pods
                                                  may use (default ``default``)
``ELASTIC_JUPYTER_KERNEL_TOKEN_AUTOMOUNT``        ``true`` lets a template ask for
                                                  ``automountServiceAccountToken: true``
                                                  (default ``false``: never mounted)
``ELASTIC_JUPYTER_ALLOWED_PROCESS_PROXIES``       extra process-proxy classes kernelspecs may
                                                  name (default none: only ours)
================================================  ===========================================
"""

from __future__ import annotations

import fnmatch
import functools
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from elastic_jupyter import crds
from elastic_jupyter.operator import kernel_pod

ENV_POD_SECURITY: Final = "ELASTIC_JUPYTER_KERNEL_POD_SECURITY"
ENV_SERVICE_ACCOUNTS: Final = "ELASTIC_JUPYTER_KERNEL_SERVICE_ACCOUNTS"
ENV_TOKEN_AUTOMOUNT: Final = "ELASTIC_JUPYTER_KERNEL_TOKEN_AUTOMOUNT"
ENV_PROCESS_PROXIES: Final = "ELASTIC_JUPYTER_ALLOWED_PROCESS_PROXIES"

LEVEL_RESTRICTED: Final = "restricted"
LEVEL_PRIVILEGED: Final = "privileged"

#: Volume types Pod Security "restricted" allows.
ALLOWED_VOLUME_TYPES: Final = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
#: Sysctls Pod Security "baseline" (and so "restricted") allows.
SAFE_SYSCTLS: Final = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
ALLOWED_ADDED_CAPABILITIES: Final = frozenset({"NET_BIND_SERVICE"})
ALLOWED_SECCOMP: Final = frozenset({"RuntimeDefault", "Localhost"})
ALLOWED_SELINUX_TYPES: Final = frozenset(
    {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
)
CONTAINER_LISTS: Final = ("initContainers", "containers", "ephemeralContainers")
POD_FIELDS: Final = "spec.template.spec"


@dataclass(frozen=True)
class PodPolicy:
    """The admin's policy for kernel pods (see the module docstring for the settings)."""

    level: str = LEVEL_RESTRICTED
    service_accounts: tuple[str, ...] = ("default",)
    allow_token_automount: bool = False
    extra_process_proxies: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PodPolicy:
        level = (env.get(ENV_POD_SECURITY) or LEVEL_RESTRICTED).strip().lower()
        if level not in (LEVEL_RESTRICTED, LEVEL_PRIVILEGED):
            # A typo must not silently switch the checks off.
            level = LEVEL_RESTRICTED
        accounts = tuple(_split(env.get(ENV_SERVICE_ACCOUNTS))) or ("default",)
        automount = (env.get(ENV_TOKEN_AUTOMOUNT) or "").strip().lower() in ("1", "true", "yes")
        proxies = frozenset(_split(env.get(ENV_PROCESS_PROXIES)))
        return cls(level, accounts, automount, proxies)

    def allowed_process_proxies(self) -> frozenset[str]:
        """Process-proxy classes a kernelspec may name: ours, the original's, the admin's."""
        return (
            frozenset({crds.DEFAULT_PROCESS_PROXY_CLASS})
            | crds.LEGACY_PROCESS_PROXY_CLASSES
            | self.extra_process_proxies
        )


def _split(text: str | None) -> Iterator[str]:
    return (part.strip() for part in (text or "").split(",") if part.strip())


@functools.lru_cache(maxsize=1)
def admin_policy() -> PodPolicy:
    """The policy of this operator process, read once from its environment."""
    return PodPolicy.from_env(os.environ)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a pod template: the field's path and what to do."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def describe(problems: list[Problem]) -> str:
    """One readable sentence for a status message (the first few problems)."""
    text = "; ".join(str(p) for p in problems[:3])
    if len(problems) > 3:
        text += f" (and {len(problems) - 3} more)"
    return text


# --- 1. Shapes ----------------------------------------------------------------------------------

_OBJECT_FIELDS: Final = ("securityContext", "resources", "nodeSelector", "affinity")
_CONTAINER_OBJECT_FIELDS: Final = (
    "securityContext",
    "resources",
    "livenessProbe",
    "readinessProbe",
)
_CONTAINER_LIST_FIELDS: Final = ("env", "envFrom", "ports", "volumeMounts", "command", "args")
_BOOL_FIELDS: Final = ("hostNetwork", "hostPID", "hostIPC", "automountServiceAccountToken")


def _type_name(value: Any) -> str:
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return f"{type(value).__name__} {value!r}"


def _expect(problems: list[Problem], where: str, value: Any, kind: type, what: str) -> bool:
    if value is None or (isinstance(value, kind) and not (kind is int and isinstance(value, bool))):
        return True
    problems.append(Problem(where, f"must be {what}, not {_type_name(value)}"))
    return False


def shape_problems(pod_template: Any, prefix: str = "spec.template") -> list[Problem]:
    """Type errors in a pod template (``spec.template`` of a JupyterKernel or template)."""
    problems: list[Problem] = []
    if not _expect(problems, prefix, pod_template, dict, "a pod template (an object)"):
        return problems
    spec = (pod_template or {}).get("spec")
    where = f"{prefix}.spec"
    if not _expect(problems, where, spec, dict, "a pod spec (an object)") or not spec:
        return problems
    for key in _OBJECT_FIELDS:
        _expect(problems, f"{where}.{key}", spec.get(key), dict, "an object")
    for key in _BOOL_FIELDS:
        _expect(problems, f"{where}.{key}", spec.get(key), bool, "true or false")
    for key in ("serviceAccountName", "serviceAccount"):
        _expect(problems, f"{where}.{key}", spec.get(key), str, "a name (a string)")
    context = spec.get("securityContext")
    if isinstance(context, Mapping):
        _context_shapes(problems, f"{where}.securityContext", context)
    volumes = spec.get("volumes")
    if _expect(problems, f"{where}.volumes", volumes, list, "a list of volumes"):
        for index, volume in enumerate(volumes or []):
            _expect(problems, f"{where}.volumes[{index}]", volume, dict, "a volume (an object)")
    for key in CONTAINER_LISTS:
        containers = spec.get(key)
        if not _expect(problems, f"{where}.{key}", containers, list, "a list of containers"):
            continue
        for index, container in enumerate(containers or []):
            path = f"{where}.{key}[{index}]"
            if _expect(problems, path, container, dict, "a container (an object)"):
                _container_shapes(problems, path, container)
    return problems


def _container_shapes(problems: list[Problem], path: str, container: Mapping[str, Any]) -> None:
    _expect(problems, f"{path}.name", container.get("name"), str, "a name (a string)")
    _expect(problems, f"{path}.image", container.get("image"), str, "an image name (a string)")
    for key in _CONTAINER_OBJECT_FIELDS:
        _expect(problems, f"{path}.{key}", container.get(key), dict, "an object")
    for key in _CONTAINER_LIST_FIELDS:
        value = container.get(key)
        if not _expect(problems, f"{path}.{key}", value, list, "a list"):
            continue
        item_type: type = str if key in ("command", "args") else dict
        what = "a string" if item_type is str else "an object"
        for index, item in enumerate(value or []):
            _expect(problems, f"{path}.{key}[{index}]", item, item_type, what)
    context = container.get("securityContext")
    if isinstance(context, Mapping):
        _context_shapes(problems, f"{path}.securityContext", context)
    resources = container.get("resources")
    if isinstance(resources, Mapping):
        for kind in ("requests", "limits"):
            _expect(problems, f"{path}.resources.{kind}", resources.get(kind), dict, "an object")


def _context_shapes(problems: list[Problem], path: str, context: Mapping[str, Any]) -> None:
    for key in ("runAsUser", "runAsGroup", "fsGroup"):
        _expect(problems, f"{path}.{key}", context.get(key), int, "a number")
    for key in ("runAsNonRoot", "privileged", "allowPrivilegeEscalation"):
        _expect(problems, f"{path}.{key}", context.get(key), bool, "true or false")
    for key in ("capabilities", "seccompProfile", "seLinuxOptions", "appArmorProfile"):
        _expect(problems, f"{path}.{key}", context.get(key), dict, "an object")
    capabilities = context.get("capabilities")
    if isinstance(capabilities, Mapping):
        for key in ("add", "drop"):
            _expect(problems, f"{path}.capabilities.{key}", capabilities.get(key), list, "a list")
    _expect(problems, f"{path}.sysctls", context.get("sysctls"), list, "a list")


# --- 2. Policy ----------------------------------------------------------------------------------


def violations(pod_spec: Mapping[str, Any], policy: PodPolicy) -> list[Problem]:
    """What in a rendered pod spec (shapes already checked) the policy forbids."""
    where = POD_FIELDS
    problems: list[Problem] = []
    account = spec_account(pod_spec)
    if not any(fnmatch.fnmatchcase(account, p) for p in policy.service_accounts):
        problems.append(
            Problem(
                f"{where}.serviceAccountName",
                f"service account {account!r} is not allowed for kernel pods (allowed: "
                f"{', '.join(policy.service_accounts)}; the cluster admin sets "
                f"{ENV_SERVICE_ACCOUNTS} on the operator)",
            )
        )
    if pod_spec.get("automountServiceAccountToken") is True and not policy.allow_token_automount:
        problems.append(
            Problem(
                f"{where}.automountServiceAccountToken",
                "kernel pods get no service account token: remove it (the cluster admin can "
                f"allow it with {ENV_TOKEN_AUTOMOUNT}=true on the operator)",
            )
        )
    if policy.level == LEVEL_PRIVILEGED:
        return problems
    problems.extend(_restricted_pod(pod_spec))
    for key in CONTAINER_LISTS:
        for index, container in enumerate(pod_spec.get(key) or []):
            problems.extend(_restricted_container(pod_spec, container, f"{where}.{key}[{index}]"))
    return problems


def spec_account(pod_spec: Mapping[str, Any]) -> str:
    """The service account a pod spec runs as (``default`` when it names none)."""
    return str(pod_spec.get("serviceAccountName") or pod_spec.get("serviceAccount") or "default")


_RELAX: Final = (
    f"; Pod Security 'restricted' applies to kernel pods (the cluster admin can relax it with "
    f"{ENV_POD_SECURITY}=privileged on the operator)"
)


def _restricted_pod(spec: Mapping[str, Any]) -> Iterator[Problem]:
    where = POD_FIELDS
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            yield Problem(f"{where}.{key}", f"host namespaces are not allowed: remove it{_RELAX}")
    for index, volume in enumerate(spec.get("volumes") or []):
        kinds = sorted(k for k in volume if k != "name")
        bad = [k for k in kinds if k not in ALLOWED_VOLUME_TYPES]
        if bad:
            yield Problem(
                f"{where}.volumes[{index}].{bad[0]}",
                f"volume type {bad[0]} is not allowed (use one of "
                f"{', '.join(sorted(ALLOWED_VOLUME_TYPES))}){_RELAX}",
            )
    context = spec.get("securityContext") or {}
    yield from _context_violations(context, f"{where}.securityContext")
    for index, sysctl in enumerate(context.get("sysctls") or []):
        name = sysctl.get("name") if isinstance(sysctl, Mapping) else sysctl
        if name not in SAFE_SYSCTLS:
            yield Problem(
                f"{where}.securityContext.sysctls[{index}]",
                f"sysctl {name!r} is not allowed{_RELAX}",
            )


def _context_violations(context: Mapping[str, Any], path: str) -> Iterator[Problem]:
    """Checks shared by pod and container security contexts."""
    if context.get("runAsNonRoot") is False:
        yield Problem(f"{path}.runAsNonRoot", f"must be true: kernels run as non-root{_RELAX}")
    if context.get("runAsUser") == 0:
        yield Problem(f"{path}.runAsUser", f"0 (root) is not allowed: use a non-zero uid{_RELAX}")
    seccomp = context.get("seccompProfile")
    if isinstance(seccomp, Mapping) and seccomp.get("type") not in ALLOWED_SECCOMP:
        yield Problem(
            f"{path}.seccompProfile.type",
            f"{seccomp.get('type')!r} is not allowed: use RuntimeDefault or Localhost{_RELAX}",
        )
    selinux = context.get("seLinuxOptions")
    if isinstance(selinux, Mapping):
        if selinux.get("user") or selinux.get("role"):
            yield Problem(f"{path}.seLinuxOptions", f"user and role may not be set{_RELAX}")
        if str(selinux.get("type") or "") not in ALLOWED_SELINUX_TYPES:
            yield Problem(f"{path}.seLinuxOptions.type", f"type is not allowed{_RELAX}")
    apparmor = context.get("appArmorProfile")
    if isinstance(apparmor, Mapping) and apparmor.get("type") == "Unconfined":
        yield Problem(f"{path}.appArmorProfile.type", f"Unconfined is not allowed{_RELAX}")
    windows = context.get("windowsOptions")
    if isinstance(windows, Mapping) and windows.get("hostProcess"):
        yield Problem(f"{path}.windowsOptions.hostProcess", f"is not allowed{_RELAX}")


def _restricted_container(
    pod_spec: Mapping[str, Any], container: Mapping[str, Any], path: str
) -> Iterator[Problem]:
    context = container.get("securityContext") or {}
    where = f"{path}.securityContext"
    yield from _context_violations(context, where)
    pod_context = pod_spec.get("securityContext") or {}
    if not context.get("runAsNonRoot", pod_context.get("runAsNonRoot")):
        yield Problem(f"{where}.runAsNonRoot", f"must be true (here or on the pod){_RELAX}")
    seccomp = context.get("seccompProfile") or pod_context.get("seccompProfile") or {}
    if not isinstance(seccomp, Mapping) or seccomp.get("type") not in ALLOWED_SECCOMP:
        yield Problem(
            f"{where}.seccompProfile.type", f"must be RuntimeDefault (here or on the pod){_RELAX}"
        )
    if context.get("privileged"):
        yield Problem(f"{where}.privileged", f"privileged containers are not allowed{_RELAX}")
    if context.get("allowPrivilegeEscalation") is not False:
        yield Problem(f"{where}.allowPrivilegeEscalation", f"must be false{_RELAX}")
    if context.get("procMount") not in (None, "Default"):
        yield Problem(f"{where}.procMount", f"must be Default{_RELAX}")
    capabilities = context.get("capabilities") or {}
    added = [str(c) for c in capabilities.get("add") or []]
    for cap in added:
        if cap not in ALLOWED_ADDED_CAPABILITIES:
            yield Problem(
                f"{where}.capabilities.add",
                f"capability {cap} is not allowed (only NET_BIND_SERVICE){_RELAX}",
            )
    if "ALL" not in [str(c) for c in capabilities.get("drop") or []]:
        yield Problem(
            f"{where}.capabilities.drop",
            f"must include ALL (add back NET_BIND_SERVICE only){_RELAX}",
        )
    for index, port in enumerate(container.get("ports") or []):
        if isinstance(port, Mapping) and port.get("hostPort"):
            yield Problem(f"{path}.ports[{index}].hostPort", f"host ports are not allowed{_RELAX}")


def check_template(pod_template: Any, policy: PodPolicy) -> tuple[str, list[Problem]] | None:
    """Shape and policy problems of a pod template as the operator would render it.

    Returns ``(reason, problems)`` — ``InvalidSpec`` for type errors, ``PolicyViolation`` for
    what the policy forbids — or ``None`` when the template is fine. The pod is rendered with
    :func:`kernel_pod.build_pod`.
    """
    shapes = shape_problems(pod_template)
    if shapes:
        return crds.REASON_INVALID_SPEC, shapes
    fake = {
        "metadata": {"name": "policy-check", "namespace": "policy-check"},
        "spec": {"template": pod_template},
    }
    try:
        pod = kernel_pod.build_pod(fake)
    except kernel_pod.InvalidKernelError as error:
        return crds.REASON_INVALID_SPEC, [Problem("spec.template", str(error))]
    found = violations(pod["spec"], policy)
    return (crds.REASON_POLICY_VIOLATION, found) if found else None
