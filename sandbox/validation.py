"""Validation of metadata and of the few built-in fields the sandbox checks like a real cluster.

Called by :mod:`.state` before every write. Messages are kube-apiserver's, so code that shows
them to users (kubectl, the operator's status reasons) behaves as against a real cluster.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import Cause

JsonObj = dict[str, Any]

OBJECT_META_FIELDS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)
"""The fields of ObjectMeta the sandbox knows; others are unknown fields."""

_DNS1123_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_DNS1035_LABEL = "[a-z]([-a-z0-9]*[a-z0-9])?"
_LABEL_VALUE = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"
_QUALIFIED_NAME = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"

_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    f"for validation is '{_DNS1123_SUBDOMAIN}')"
)
_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    f"used for validation is '{_DNS1123_LABEL}')"
)
_DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    f"'abc-123', regex used for validation is '{_DNS1035_LABEL}')"
)
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    f"'my_value',  or '12345', regex used for validation is '{_LABEL_VALUE}')"
)
_QUALIFIED_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    f"validation is '{_QUALIFIED_NAME}')"
)

# name rule per (group, plural); everything else is a DNS-1123 subdomain
NAME_RULES: dict[tuple[str, str], str] = {
    ("", "namespaces"): "label",
    ("", "services"): "dns1035",
    ("", "nodes"): "subdomain",
    ("rbac.authorization.k8s.io", "roles"): "path",
    ("rbac.authorization.k8s.io", "rolebindings"): "path",
    ("rbac.authorization.k8s.io", "clusterroles"): "path",
    ("rbac.authorization.k8s.io", "clusterrolebindings"): "path",
}


def _full(rx: str, value: str) -> bool:
    return re.fullmatch(rx, value) is not None


def name_causes(name: str, rule: str = "subdomain", path: str = "metadata.name") -> list[Cause]:
    """Errors for an object name under one of the naming rules."""
    if rule == "path":
        bad = name in (".", "..") or "/" in name or "%" in name
        msg = "may not contain '/'" if bad else ""
        return [Cause("FieldValueInvalid", f'Invalid value: "{name}": {msg}', path)] if bad else []
    causes: list[Cause] = []
    if rule == "label":
        limit, rx, msg = 63, _DNS1123_LABEL, _LABEL_MSG
    elif rule == "dns1035":
        limit, rx, msg = 63, _DNS1035_LABEL, _DNS1035_MSG
    else:
        limit, rx, msg = 253, _DNS1123_SUBDOMAIN, _SUBDOMAIN_MSG
    if len(name) > limit:
        causes.append(
            Cause(
                "FieldValueInvalid",
                f'Invalid value: "{name}": must be no more than {limit} characters',
                path,
            )
        )
    if not _full(rx, name):
        causes.append(Cause("FieldValueInvalid", f'Invalid value: "{name}": {msg}', path))
    return causes


def _qualified_name_causes(key: str, path: str) -> list[Cause]:
    prefix, slash, name = key.rpartition("/")
    causes: list[Cause] = []
    if slash and (not prefix or not _full(_DNS1123_SUBDOMAIN, prefix) or len(prefix) > 253):
        causes.append(
            Cause(
                "FieldValueInvalid", f'Invalid value: "{key}": prefix part {_SUBDOMAIN_MSG}', path
            )
        )
    if not name or len(name) > 63 or not _full(_QUALIFIED_NAME, name):
        causes.append(Cause("FieldValueInvalid", f'Invalid value: "{key}": {_QUALIFIED_MSG}', path))
    return causes


def owner_reference_causes(refs: Any) -> list[Cause]:
    """Every owner reference needs apiVersion, kind, name and uid; one controller at most."""
    path = "metadata.ownerReferences"
    if refs is None:
        return []
    if not isinstance(refs, list):
        return [Cause("FieldValueTypeInvalid", "Invalid value: must be a list", path)]
    causes: list[Cause] = []
    controllers = 0
    for ref in refs:
        if not isinstance(ref, dict):
            causes.append(Cause("FieldValueTypeInvalid", "Invalid value: must be an object", path))
            continue
        if not ref.get("apiVersion"):
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    'Invalid value: "": version must not be empty',
                    f"{path}.apiVersion",
                )
            )
        if not ref.get("kind"):
            causes.append(
                Cause(
                    "FieldValueInvalid", 'Invalid value: "": kind must not be empty', f"{path}.kind"
                )
            )
        if not ref.get("name"):
            causes.append(
                Cause(
                    "FieldValueInvalid", 'Invalid value: "": name must not be empty', f"{path}.name"
                )
            )
        if not ref.get("uid"):
            causes.append(
                Cause(
                    "FieldValueInvalid", 'Invalid value: "": uid must not be empty', f"{path}.uid"
                )
            )
        if ref.get("controller"):
            controllers += 1
    if controllers > 1:
        causes.append(
            Cause(
                "FieldValueInvalid",
                "Invalid value: only one reference can have Controller set to true",
                path,
            )
        )
    return causes


def metadata_causes(meta: JsonObj, name_rule: str) -> list[Cause]:
    """Errors in ``metadata``: the name, labels, annotations and owner references."""
    causes: list[Cause] = owner_reference_causes(meta.get("ownerReferences"))
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        causes.append(
            Cause(
                "FieldValueRequired",
                "Required value: name or generateName is required",
                "metadata.name",
            )
        )
    else:
        causes.extend(name_causes(name, name_rule))
    labels = meta.get("labels")
    if labels is not None and not isinstance(labels, dict):
        causes.append(
            Cause("FieldValueTypeInvalid", "Invalid value: must be a map", "metadata.labels")
        )
    for key, value in (labels or {}).items():
        causes.extend(_qualified_name_causes(key, "metadata.labels"))
        if not isinstance(value, str):
            causes.append(
                Cause(
                    "FieldValueTypeInvalid",
                    f"Invalid value: {value!r}: must be a string",
                    "metadata.labels",
                )
            )
        elif len(value) > 63 or not _full(_LABEL_VALUE, value):
            detail = "must be no more than 63 characters" if len(value) > 63 else _LABEL_VALUE_MSG
            causes.append(
                Cause("FieldValueInvalid", f'Invalid value: "{value}": {detail}', "metadata.labels")
            )
    annotations = meta.get("annotations")
    for key, value in (annotations or {}).items() if isinstance(annotations, dict) else ():
        causes.extend(_qualified_name_causes(key, "metadata.annotations"))
        if not isinstance(value, str):
            causes.append(
                Cause(
                    "FieldValueTypeInvalid",
                    "Invalid value: must be a string",
                    f"metadata.annotations[{key}]",
                )
            )
    return causes


def pod_causes(pod: JsonObj) -> list[Cause]:
    """The pod-spec checks that catch real mistakes early: containers with names and images."""
    causes: list[Cause] = []
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return [Cause("FieldValueRequired", "Required value", "spec.containers")]
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        return [Cause("FieldValueRequired", "Required value", "spec.containers")]
    seen: set[str] = set()
    for kind in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(kind) or ()):
            base = f"spec.{kind}[{i}]"
            if not isinstance(c, dict):
                causes.append(
                    Cause("FieldValueTypeInvalid", "Invalid value: must be an object", base)
                )
                continue
            cname = c.get("name")
            if not cname:
                causes.append(Cause("FieldValueRequired", "Required value", f"{base}.name"))
            else:
                causes.extend(name_causes(str(cname), "label", f"{base}.name"))
                if cname in seen:
                    causes.append(
                        Cause("FieldValueDuplicate", f'Duplicate value: "{cname}"', f"{base}.name")
                    )
                seen.add(str(cname))
            if not c.get("image"):
                causes.append(Cause("FieldValueRequired", "Required value", f"{base}.image"))
    restart = spec.get("restartPolicy")
    if restart is not None and restart not in ("Always", "OnFailure", "Never"):
        causes.append(
            Cause(
                "FieldValueNotSupported",
                f'Unsupported value: "{restart}": supported values: "Always", "OnFailure", "Never"',
                "spec.restartPolicy",
            )
        )
    return causes
