"""Decode the few protobuf request bodies kubectl sends for built-in kinds.

kubectl's typed clients (``kubectl create namespace|configmap|secret|serviceaccount|deployment|
role|rolebinding|clusterrole|clusterrolebinding``) send
``application/vnd.kubernetes.protobuf`` bodies: the magic ``k8s\\0`` followed by a
``runtime.Unknown`` envelope whose ``raw`` field holds the object. The API server calls
:func:`decode` for such bodies and answers in JSON (kubectl accepts JSON responses). Only the
kinds and fields listed in :data:`_TYPES` are understood; any other kind is answered with 415.
"""

from __future__ import annotations

import base64
from typing import Any

CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
_MAGIC = b"k8s\x00"

JsonObj = dict[str, Any]
# field number -> (json name, wire kind); kinds: s(tring), b(ytes→base64), i(nt), ?(bool),
# ms (map string→string), mb (map string→bytes), rs (repeated string),
# m:T / rm:T (message / repeated message)
Schema = dict[int, tuple[str, str]]

_TYPES: dict[str, Schema] = {
    "ObjectMeta": {
        1: ("name", "s"),
        2: ("generateName", "s"),
        3: ("namespace", "s"),
        5: ("uid", "s"),
        6: ("resourceVersion", "s"),
        7: ("generation", "i"),
        11: ("labels", "ms"),
        12: ("annotations", "ms"),
        13: ("ownerReferences", "rm:OwnerReference"),
        14: ("finalizers", "rs"),
    },
    "OwnerReference": {
        1: ("kind", "s"),
        3: ("name", "s"),
        4: ("uid", "s"),
        5: ("apiVersion", "s"),
        6: ("controller", "?"),
        7: ("blockOwnerDeletion", "?"),
    },
    "ObjectReference": {1: ("kind", "s"), 2: ("namespace", "s"), 3: ("name", "s"), 4: ("uid", "s")},
    "LocalObjectReference": {1: ("name", "s")},
    "NamespaceSpec": {1: ("finalizers", "rs")},
    "Namespace": {1: ("metadata", "m:ObjectMeta"), 2: ("spec", "m:NamespaceSpec")},
    "ConfigMap": {
        1: ("metadata", "m:ObjectMeta"),
        2: ("data", "ms"),
        3: ("binaryData", "mb"),
        4: ("immutable", "?"),
    },
    "Secret": {
        1: ("metadata", "m:ObjectMeta"),
        2: ("data", "mb"),
        3: ("type", "s"),
        4: ("stringData", "ms"),
        5: ("immutable", "?"),
    },
    "LabelSelector": {
        1: ("matchLabels", "ms"),
        2: ("matchExpressions", "rm:LabelSelectorRequirement"),
    },
    "LabelSelectorRequirement": {1: ("key", "s"), 2: ("operator", "s"), 3: ("values", "rs")},
    "ContainerPort": {
        1: ("name", "s"),
        2: ("hostPort", "i"),
        3: ("containerPort", "i"),
        4: ("protocol", "s"),
        5: ("hostIP", "s"),
    },
    "EnvVar": {1: ("name", "s"), 2: ("value", "s")},
    "Container": {
        1: ("name", "s"),
        2: ("image", "s"),
        3: ("command", "rs"),
        4: ("args", "rs"),
        5: ("workingDir", "s"),
        6: ("ports", "rm:ContainerPort"),
        7: ("env", "rm:EnvVar"),
        13: ("terminationMessagePath", "s"),
        14: ("imagePullPolicy", "s"),
    },
    "PodSpec": {
        2: ("containers", "rm:Container"),
        3: ("restartPolicy", "s"),
        4: ("terminationGracePeriodSeconds", "i"),
        6: ("dnsPolicy", "s"),
        7: ("nodeSelector", "ms"),
        8: ("serviceAccountName", "s"),
        10: ("nodeName", "s"),
    },
    "PodTemplateSpec": {1: ("metadata", "m:ObjectMeta"), 2: ("spec", "m:PodSpec")},
    "DeploymentSpec": {
        1: ("replicas", "i"),
        2: ("selector", "m:LabelSelector"),
        3: ("template", "m:PodTemplateSpec"),
        5: ("minReadySeconds", "i"),
        6: ("revisionHistoryLimit", "i"),
        7: ("paused", "?"),
        9: ("progressDeadlineSeconds", "i"),
    },
    "Deployment": {1: ("metadata", "m:ObjectMeta"), 2: ("spec", "m:DeploymentSpec")},
    "PolicyRule": {
        1: ("verbs", "rs"),
        2: ("apiGroups", "rs"),
        3: ("resources", "rs"),
        4: ("resourceNames", "rs"),
        5: ("nonResourceURLs", "rs"),
    },
    "Subject": {1: ("kind", "s"), 2: ("apiGroup", "s"), 3: ("name", "s"), 4: ("namespace", "s")},
    "RoleRef": {1: ("apiGroup", "s"), 2: ("kind", "s"), 3: ("name", "s")},
    "Role": {1: ("metadata", "m:ObjectMeta"), 2: ("rules", "rm:PolicyRule")},
    "ClusterRole": {1: ("metadata", "m:ObjectMeta"), 2: ("rules", "rm:PolicyRule")},
    "RoleBinding": {
        1: ("metadata", "m:ObjectMeta"),
        2: ("subjects", "rm:Subject"),
        3: ("roleRef", "m:RoleRef"),
    },
    "ClusterRoleBinding": {
        1: ("metadata", "m:ObjectMeta"),
        2: ("subjects", "rm:Subject"),
        3: ("roleRef", "m:RoleRef"),
    },
    "ServiceAccount": {
        1: ("metadata", "m:ObjectMeta"),
        2: ("secrets", "rm:ObjectReference"),
        3: ("imagePullSecrets", "rm:LocalObjectReference"),
        4: ("automountServiceAccountToken", "?"),
    },
    # access reviews (kubectl auth can-i, kubectl auth whoami)
    "ResourceAttributes": {
        1: ("namespace", "s"),
        2: ("verb", "s"),
        3: ("group", "s"),
        4: ("version", "s"),
        5: ("resource", "s"),
        6: ("subresource", "s"),
        7: ("name", "s"),
    },
    "NonResourceAttributes": {1: ("path", "s"), 2: ("verb", "s")},
    "SelfSubjectAccessReviewSpec": {
        1: ("resourceAttributes", "m:ResourceAttributes"),
        2: ("nonResourceAttributes", "m:NonResourceAttributes"),
    },
    "SubjectAccessReviewSpec": {
        1: ("resourceAttributes", "m:ResourceAttributes"),
        2: ("nonResourceAttributes", "m:NonResourceAttributes"),
        3: ("user", "s"),
        4: ("groups", "rs"),
        6: ("uid", "s"),
    },
    "SelfSubjectRulesReviewSpec": {1: ("namespace", "s")},
    "SelfSubjectAccessReview": {
        1: ("metadata", "m:ObjectMeta"),
        2: ("spec", "m:SelfSubjectAccessReviewSpec"),
    },
    "SubjectAccessReview": {
        1: ("metadata", "m:ObjectMeta"),
        2: ("spec", "m:SubjectAccessReviewSpec"),
    },
    "LocalSubjectAccessReview": {
        1: ("metadata", "m:ObjectMeta"),
        2: ("spec", "m:SubjectAccessReviewSpec"),
    },
    "SelfSubjectRulesReview": {
        1: ("metadata", "m:ObjectMeta"),
        2: ("spec", "m:SelfSubjectRulesReviewSpec"),
    },
    "SelfSubjectReview": {1: ("metadata", "m:ObjectMeta")},
}
_TOP_LEVEL = {
    "SelfSubjectAccessReview",
    "SubjectAccessReview",
    "LocalSubjectAccessReview",
    "SelfSubjectRulesReview",
    "SelfSubjectReview",
    "Namespace",
    "ConfigMap",
    "Secret",
    "ServiceAccount",
    "Deployment",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
}
_UNKNOWN: Schema = {
    1: ("typeMeta", "m:TypeMeta"),
    2: ("raw", "b!"),
    3: ("contentEncoding", "s"),
    4: ("contentType", "s"),
}
_TYPE_META: Schema = {1: ("apiVersion", "s"), 2: ("kind", "s")}


class ProtobufError(ValueError):
    """The body is not a protobuf object this module can read."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) triples; length-delimited values stay bytes."""
    out: list[tuple[int, int, Any]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


def _message(data: bytes, schema: Schema) -> JsonObj:
    obj: JsonObj = {}
    for number, _, value in _fields(data):
        spec = schema.get(number)
        if spec is None:
            continue  # a field this sandbox does not model (status, managedFields, …)
        name, kind = spec
        if kind == "s":
            # Go writes every non-pointer string, empty ones too; JSON would omit them
            if value:
                obj[name] = value.decode()
        elif kind == "b":
            obj[name] = base64.b64encode(value).decode()
        elif kind == "b!" or kind == "i":
            obj[name] = value
        elif kind == "?":
            obj[name] = bool(value)
        elif kind == "rs":
            obj.setdefault(name, []).append(value.decode())
        elif kind in ("ms", "mb"):
            entry = {n: v for n, _, v in _fields(value)}
            key = entry.get(1, b"").decode()
            raw = entry.get(2, b"")
            obj.setdefault(name, {})[key] = (
                raw.decode() if kind == "ms" else base64.b64encode(raw).decode()
            )
        elif kind.startswith("m:"):
            obj[name] = _message(value, _sub(kind[2:]))
        elif kind.startswith("rm:"):
            obj.setdefault(name, []).append(_message(value, _sub(kind[3:])))
    return obj


def _sub(type_name: str) -> Schema:
    return _TYPE_META if type_name == "TypeMeta" else _TYPES[type_name]


def decode(body: bytes) -> JsonObj:
    """The JSON form of a ``k8s\\0``-framed protobuf object (raises :class:`ProtobufError`)."""
    if not body.startswith(_MAGIC):
        raise ProtobufError("missing the k8s protobuf magic number")
    envelope = _message(body[len(_MAGIC) :], _UNKNOWN)
    type_meta = envelope.get("typeMeta") or {}
    kind = str(type_meta.get("kind", ""))
    if kind not in _TOP_LEVEL:
        raise ProtobufError(f"protobuf bodies of kind {kind or '?'} are not supported, send JSON")
    obj = _message(envelope.get("raw") or b"", _TYPES[kind])
    obj["apiVersion"] = type_meta.get("apiVersion", "v1")
    obj["kind"] = kind
    return obj
