"""What a pod's container sees: its env, its volumes' files and where its mounts live.

Pure functions used by the sandbox kubelet (:mod:`.kubelet`), which fetches the referenced
ConfigMaps and Secrets and then asks this module for:

* the container's environment (literal values with ``$(VAR)`` expansion, ``fieldRef``,
  ``resourceFieldRef``, ``configMapKeyRef``, ``secretKeyRef``, ``envFrom``), raising
  :class:`ConfigError` with the message a real kubelet gives when something is missing;
* the files of ConfigMap, Secret, downwardAPI and projected volumes;
* the mount map. Local processes cannot mount, so every ``mountPath`` is mapped to a directory
  of the pod's own (see :func:`rewrite_path`), which is how a pod finds its mounted files.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from .quantity import container_requests, parse_quantity

Obj = dict[str, Any]


class ConfigError(Exception):
    """A container cannot be created yet; ``reason`` becomes its waiting reason."""

    def __init__(self, message: str, reason: str = "CreateContainerConfigError") -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


@dataclass
class PodContext:
    """Everything env and volume resolution needs besides the pod itself."""

    pod: Obj
    node_name: str
    host_ip: str
    pod_ip: str
    node_allocatable: Mapping[str, Fraction] = field(default_factory=dict)
    configmaps: Mapping[str, Obj] = field(default_factory=dict)
    secrets: Mapping[str, Obj] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return str(self.pod["metadata"].get("namespace") or "default")


# --- $(VAR) expansion ---------------------------------------------------------------------------

_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: known names replaced, ``$$`` escapes a ``$``,
    unknown references left as written."""

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return _REF.sub(sub, text)


# --- references ---------------------------------------------------------------------------------


def referenced_objects(pod: Obj) -> tuple[set[str], set[str]]:
    """Names of the ConfigMaps and Secrets a pod's env and volumes refer to."""
    configmaps: set[str] = set()
    secrets: set[str] = set()
    spec = pod.get("spec") or {}
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        for var in container.get("env") or []:
            source = var.get("valueFrom") or {}
            if "configMapKeyRef" in source:
                configmaps.add(str(source["configMapKeyRef"].get("name")))
            if "secretKeyRef" in source:
                secrets.add(str(source["secretKeyRef"].get("name")))
        for env_from in container.get("envFrom") or []:
            if "configMapRef" in env_from:
                configmaps.add(str(env_from["configMapRef"].get("name")))
            if "secretRef" in env_from:
                secrets.add(str(env_from["secretRef"].get("name")))
    for volume in spec.get("volumes") or []:
        if "configMap" in volume:
            configmaps.add(str(volume["configMap"].get("name")))
        if "secret" in volume:
            secrets.add(str(volume["secret"].get("secretName")))
        for source in (volume.get("projected") or {}).get("sources") or []:
            if "configMap" in source:
                configmaps.add(str(source["configMap"].get("name")))
            if "secret" in source:
                secrets.add(str(source["secret"].get("name")))
    return configmaps, secrets


def configmap_items(cm: Obj) -> dict[str, bytes]:
    items = {k: str(v).encode() for k, v in (cm.get("data") or {}).items()}
    for key, value in (cm.get("binaryData") or {}).items():
        items[key] = base64.b64decode(value)
    return items


def secret_items(secret: Obj) -> dict[str, bytes]:
    items = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    # An API server converts stringData into data on write; accept it in case ours did not.
    for key, value in (secret.get("stringData") or {}).items():
        items[key] = str(value).encode()
    return items


# --- env ----------------------------------------------------------------------------------------

_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


def field_ref_value(ctx: PodContext, path: str) -> str:
    """The value of a downward-API ``fieldRef`` path."""
    meta = ctx.pod.get("metadata") or {}
    spec = ctx.pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": ctx.namespace,
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName") or ctx.node_name,
        "spec.serviceAccountName": spec.get("serviceAccountName")
        or spec.get("serviceAccount")
        or "default",
        "status.hostIP": ctx.host_ip,
        "status.hostIPs": ctx.host_ip,
        "status.podIP": ctx.pod_ip,
        "status.podIPs": ctx.pod_ip,
    }
    if path in simple:
        return str(simple[path] or "")
    match = _SUBSCRIPT.match(path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    if path in ("metadata.labels", "metadata.annotations"):
        mapping = meta.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(mapping.items()))
    raise ConfigError(f'unsupported fieldRef path "{path}"')


def resource_field_value(ctx: PodContext, container: Obj, ref: Obj) -> str:
    """A ``resourceFieldRef`` value: limits fall back to node allocatable, as in Kubernetes."""
    resource = str(ref.get("resource") or "")
    kind, _, name = resource.partition(".")
    divisor = parse_quantity(ref.get("divisor") or "1")
    if divisor == 0:
        divisor = Fraction(1)
    requests = container_requests(container)
    limits = {
        k: parse_quantity(v)
        for k, v in ((container.get("resources") or {}).get("limits") or {}).items()
    }
    if kind == "limits":
        amount = limits.get(name, ctx.node_allocatable.get(name, Fraction(0)))
    elif kind == "requests":
        amount = requests.get(name, Fraction(0))
    else:
        raise ConfigError(f'unsupported resourceFieldRef "{resource}"')
    value = amount / divisor
    return str(max(math.ceil(value), 1 if amount > 0 and name == "cpu" else 0))


def _referenced_items(ctx: PodContext, kind: str, ref: Obj) -> dict[str, bytes] | None:
    """The data of the ConfigMap or Secret (``kind``) that ``ref`` names.

    None when it is missing and the reference is optional; :class:`ConfigError` with the
    kubelet's message when it is missing and required.
    """
    store, items_of = (
        (ctx.configmaps, configmap_items) if kind == "configmap" else (ctx.secrets, secret_items)
    )
    obj = store.get(str(ref.get("name")))
    if obj is None:
        if ref.get("optional"):
            return None
        raise ConfigError(f'{kind} "{ref.get("name")}" not found')
    return items_of(obj)


def _key_ref_value(ctx: PodContext, kind: str, ref: Obj) -> str | None:
    """One key of a ConfigMap or Secret for ``configMapKeyRef``/``secretKeyRef`` (None: skip)."""
    items = _referenced_items(ctx, kind, ref)
    if items is None:
        return None
    if ref.get("key") not in items:
        if ref.get("optional"):
            return None
        title = "ConfigMap" if kind == "configmap" else "Secret"
        raise ConfigError(
            f"couldn't find key {ref.get('key')} in {title} {ctx.namespace}/{ref.get('name')}"
        )
    return items[str(ref["key"])].decode(errors="replace")


def container_env(ctx: PodContext, container: Obj) -> list[tuple[str, str]]:
    """The container's env in Kubernetes order: ``envFrom`` first, then ``env``.

    Raises :class:`ConfigError` (``CreateContainerConfigError``) when a referenced ConfigMap,
    Secret or key is missing and the reference is not optional.
    """
    result: dict[str, str] = {}
    for env_from in container.get("envFrom") or []:
        prefix = str(env_from.get("prefix") or "")
        for ref_field, kind in (("configMapRef", "configmap"), ("secretRef", "secret")):
            if ref_field not in env_from:
                continue
            items = _referenced_items(ctx, kind, env_from[ref_field])
            for key, value in (items or {}).items():
                result[prefix + key] = value.decode(errors="replace")
    for var in container.get("env") or []:
        name = str(var.get("name"))
        if "valueFrom" not in var:
            result[name] = expand(str(var.get("value") or ""), result)
            continue
        source = var["valueFrom"] or {}
        if "fieldRef" in source:
            result[name] = field_ref_value(ctx, str(source["fieldRef"].get("fieldPath")))
        elif "resourceFieldRef" in source:
            ref = source["resourceFieldRef"]
            target = container
            if ref.get("containerName"):
                for other in (ctx.pod.get("spec") or {}).get("containers") or []:
                    if other.get("name") == ref["containerName"]:
                        target = other
            result[name] = resource_field_value(ctx, target, ref)
        elif "configMapKeyRef" in source or "secretKeyRef" in source:
            kind = "configmap" if "configMapKeyRef" in source else "secret"
            ref = source["configMapKeyRef" if kind == "configmap" else "secretKeyRef"]
            key_value = _key_ref_value(ctx, kind, ref)
            if key_value is not None:
                result[name] = key_value
    return list(result.items())


# --- volumes ------------------------------------------------------------------------------------


@dataclass
class VolumePlan:
    """How one pod volume is materialised.

    ``files`` (relative path → (content, mode)) for ConfigMap/Secret/downwardAPI/projected;
    ``host_path`` for hostPath volumes (used in place); otherwise an empty writable directory
    (emptyDir, persistentVolumeClaim and anything unknown).
    """

    name: str
    kind: str
    files: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    host_path: str | None = None
    claim: str | None = None
    sources: tuple[tuple[str, str], ...] = ()  # ("configmap"|"secret", name) it depends on


def _select_items(
    all_items: dict[str, bytes], items: list[Obj] | None, default_mode: int, what: str
) -> dict[str, tuple[bytes, int]]:
    if not items:
        return {k: (v, default_mode) for k, v in all_items.items()}
    chosen = {}
    for item in items:
        key = str(item.get("key"))
        if key not in all_items:
            raise ConfigError(f"configuration key {key!r} not found in {what}", "ContainerCreating")
        chosen[str(item.get("path") or key)] = (all_items[key], int(item.get("mode", default_mode)))
    return chosen


def _downward_files(ctx: PodContext, items: list[Obj], default_mode: int) -> dict[str, Any]:
    files: dict[str, tuple[bytes, int]] = {}
    containers = (ctx.pod.get("spec") or {}).get("containers") or [{}]
    for item in items:
        if "fieldRef" in item:
            value = field_ref_value(ctx, str(item["fieldRef"].get("fieldPath")))
        else:
            ref = item.get("resourceFieldRef") or {}
            target = containers[0]
            for other in containers:
                if other.get("name") == ref.get("containerName"):
                    target = other
            value = resource_field_value(ctx, target, ref)
        files[str(item.get("path"))] = (value.encode(), int(item.get("mode", default_mode)))
    return files


def plan_volume(ctx: PodContext, volume: Obj) -> VolumePlan:
    """Plan one volume; a missing non-optional ConfigMap/Secret raises ``ContainerCreating``."""
    name = str(volume.get("name"))
    mode = 0o644
    if "configMap" in volume:
        src = volume["configMap"]
        cm_name = str(src.get("name"))
        cm = ctx.configmaps.get(cm_name)
        mode = int(src.get("defaultMode", mode))
        plan = VolumePlan(name, "configMap", sources=(("configmap", cm_name),))
        if cm is None:
            if src.get("optional"):
                return plan
            raise ConfigError(
                f'MountVolume.SetUp failed for volume "{name}" : configmap "{cm_name}" not found',
                "ContainerCreating",
            )
        plan.files = _select_items(
            configmap_items(cm), src.get("items"), mode, f"configmap {cm_name}"
        )
        return plan
    if "secret" in volume:
        src = volume["secret"]
        s_name = str(src.get("secretName"))
        secret = ctx.secrets.get(s_name)
        mode = int(src.get("defaultMode", mode))
        plan = VolumePlan(name, "secret", sources=(("secret", s_name),))
        if secret is None:
            if src.get("optional"):
                return plan
            raise ConfigError(
                f'MountVolume.SetUp failed for volume "{name}" : secret "{s_name}" not found',
                "ContainerCreating",
            )
        plan.files = _select_items(secret_items(secret), src.get("items"), mode, f"secret {s_name}")
        return plan
    if "downwardAPI" in volume:
        src = volume["downwardAPI"]
        files = _downward_files(ctx, src.get("items") or [], int(src.get("defaultMode", mode)))
        return VolumePlan(name, "downwardAPI", files=files)
    if "projected" in volume:
        src = volume["projected"]
        mode = int(src.get("defaultMode", mode))
        plan = VolumePlan(name, "projected")
        deps: list[tuple[str, str]] = []
        for source in src.get("sources") or []:
            if "configMap" in source:
                sub = {"name": name, "configMap": {**source["configMap"], "defaultMode": mode}}
                part = plan_volume(ctx, sub)
            elif "secret" in source:
                secret_src = dict(source["secret"])
                secret_src["secretName"] = secret_src.pop("name", None)
                part = plan_volume(
                    ctx, {"name": name, "secret": {**secret_src, "defaultMode": mode}}
                )
            elif "downwardAPI" in source:
                part = plan_volume(
                    ctx,
                    {"name": name, "downwardAPI": {**source["downwardAPI"], "defaultMode": mode}},
                )
            else:  # serviceAccountToken and others: nothing meaningful to project locally
                continue
            plan.files.update(part.files)
            deps.extend(part.sources)
        plan.sources = tuple(deps)
        return plan
    if "hostPath" in volume:
        return VolumePlan(name, "hostPath", host_path=str(volume["hostPath"].get("path")))
    if "persistentVolumeClaim" in volume:
        claim = str(volume["persistentVolumeClaim"].get("claimName"))
        return VolumePlan(name, "persistentVolumeClaim", claim=claim)
    return VolumePlan(name, "emptyDir")


# --- mount paths --------------------------------------------------------------------------------


def rewrite_path(value: str, mounts: Mapping[str, str]) -> str:
    """Map container paths under a ``mountPath`` to the local directory holding that volume.

    Applied by the kubelet to ``command``, ``args``, env values and ``workingDir``. Every
    occurrence of a mount path that stands as a path of its own - at the start, or after a
    space, quote, ``=``, ``:``, ``,`` or ``;`` and followed by ``/`` or a non-name character -
    is rewritten, so ``/etc/cfg/app.yaml``, ``--config=/etc/cfg/a`` and
    ``sh -c "cat /etc/cfg/a"`` all reach the volume, while ``/etc/cfgx`` and ``http://h/etc/cfg``
    are left alone. The longest matching mount wins.
    """
    if not mounts or "/" not in value:
        return value
    ordered = sorted((m.rstrip("/") for m in mounts if m.rstrip("/")), key=len, reverse=True)
    if not ordered:
        return value
    local = {m.rstrip("/"): v for m, v in mounts.items()}
    pattern = re.compile(
        r"(?<![^\s\"'=:,;(])(" + "|".join(re.escape(m) for m in ordered) + r")(?=/|$|[^\w.\-])"
    )
    return pattern.sub(lambda match: local[match.group(1)], value)
