"""The resource types the sandbox serves: built-in ones and those registered by CRDs.

:class:`Registry` is consulted by the HTTP layer to resolve ``/api/v1/...`` and
``/apis/<group>/<version>/...`` URLs, by :mod:`.discovery` to describe them, and by
:mod:`.state` when a CustomResourceDefinition is created, updated or deleted. Objects of one
resource are stored once per ``(group, plural)`` whatever version they are requested in (the
sandbox does no conversion, as a CRD with ``conversion.strategy: None``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

JsonObj = dict[str, Any]
ResKey = tuple[str, str]  # (group, plural)

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass
class ResourceType:
    """One served resource of one group/version (one line of ``kubectl api-resources``)."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    list_kind: str = ""
    schema: JsonObj | None = None  # the served version's openAPIV3Schema (CRDs only)
    crd_name: str | None = None
    printer_columns: list[JsonObj] = field(default_factory=list)
    scale_paths: JsonObj | None = None  # a CRD's subresources.scale

    def __post_init__(self) -> None:
        if not self.list_kind:
            self.list_kind = f"{self.kind}List"

    @property
    def key(self) -> ResKey:
        """Storage key shared by every version of the resource."""
        return (self.group, self.plural)

    @property
    def api_version(self) -> str:
        """``v1`` for core, ``<group>/<version>`` otherwise."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``pods`` or ``jupyterkernels.kubeflow.tkestack.io`` as used in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def is_custom(self) -> bool:
        """Whether a CRD declared this resource."""
        return self.crd_name is not None


def _core(plural: str, kind: str, namespaced: bool = True, **kw: Any) -> ResourceType:
    return ResourceType("", "v1", plural, kind.lower(), kind, namespaced, **kw)


_AUTHZ = "authorization.k8s.io"


def builtin_resources() -> list[ResourceType]:
    """Everything the sandbox serves before any CRD exists (no ``kopf.dev`` group on purpose:
    without it kopf makes no peering requests)."""
    apps = "apps"
    rbac = "rbac.authorization.k8s.io"
    return [
        _core(
            "namespaces",
            "Namespace",
            False,
            short_names=("ns",),
            subresources=("status",),
            verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
        ),
        _core(
            "pods",
            "Pod",
            short_names=("po",),
            categories=("all",),
            subresources=("status", "binding", "log"),
        ),
        _core("nodes", "Node", False, short_names=("no",), subresources=("status",)),
        _core("configmaps", "ConfigMap", short_names=("cm",)),
        _core("secrets", "Secret"),
        _core(
            "services",
            "Service",
            short_names=("svc",),
            categories=("all",),
            subresources=("status",),
        ),
        _core("endpoints", "Endpoints", short_names=("ep",)),
        _core("serviceaccounts", "ServiceAccount", short_names=("sa",), subresources=("token",)),
        _core("events", "Event", short_names=("ev",)),
        _core(
            "persistentvolumeclaims",
            "PersistentVolumeClaim",
            short_names=("pvc",),
            subresources=("status",),
        ),
        ResourceType(
            apps,
            "v1",
            "deployments",
            "deployment",
            "Deployment",
            True,
            short_names=("deploy",),
            categories=("all",),
            subresources=("status", "scale"),
        ),
        ResourceType(
            apps,
            "v1",
            "replicasets",
            "replicaset",
            "ReplicaSet",
            True,
            short_names=("rs",),
            categories=("all",),
            subresources=("status", "scale"),
        ),
        ResourceType("coordination.k8s.io", "v1", "leases", "lease", "Lease", True),
        # Stored and served, not enforced: the sandbox's pods share the host network.
        ResourceType(
            "networking.k8s.io",
            "v1",
            "networkpolicies",
            "networkpolicy",
            "NetworkPolicy",
            True,
            short_names=("netpol",),
        ),
        ResourceType(rbac, "v1", "roles", "role", "Role", True),
        ResourceType(rbac, "v1", "rolebindings", "rolebinding", "RoleBinding", True),
        ResourceType(rbac, "v1", "clusterroles", "clusterrole", "ClusterRole", False),
        ResourceType(
            rbac, "v1", "clusterrolebindings", "clusterrolebinding", "ClusterRoleBinding", False
        ),
        ResourceType(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "customresourcedefinition",
            "CustomResourceDefinition",
            False,
            short_names=("crd", "crds"),
            subresources=("status",),
        ),
        ResourceType("events.k8s.io", "v1", "events", "event", "Event", True, short_names=("ev",)),
        # answered, never stored (see .access): what `kubectl auth can-i` and `whoami` ask
        *(
            ResourceType(group, "v1", plural, plural[:-1], kind, namespaced, verbs=("create",))
            for group, plural, kind, namespaced in (
                (_AUTHZ, "selfsubjectaccessreviews", "SelfSubjectAccessReview", False),
                (_AUTHZ, "subjectaccessreviews", "SubjectAccessReview", False),
                (_AUTHZ, "localsubjectaccessreviews", "LocalSubjectAccessReview", True),
                (_AUTHZ, "selfsubjectrulesreviews", "SelfSubjectRulesReview", False),
                ("authentication.k8s.io", "selfsubjectreviews", "SelfSubjectReview", False),
            )
        ),
    ]


class Registry:
    """Served resources indexed by ``(group, version, plural)`` and by group.

    Groups keep the order in which they first appeared so discovery output is stable.
    """

    def __init__(self, resources: Iterable[ResourceType] = ()) -> None:
        self._by_gvr: dict[tuple[str, str, str], ResourceType] = {}
        self._groups: dict[str, list[str]] = {}  # group -> versions, preferred first
        for rt in resources:
            self.add(rt)

    def add(self, rt: ResourceType) -> None:
        """Serve ``rt`` (replacing a previous definition of the same group/version/plural)."""
        self._by_gvr[(rt.group, rt.version, rt.plural)] = rt
        versions = self._groups.setdefault(rt.group, [])
        if rt.version not in versions:
            versions.append(rt.version)

    def remove_crd(self, crd_name: str) -> list[ResourceType]:
        """Stop serving every version a CRD declared; returns what was removed."""
        gone = [rt for rt in self._by_gvr.values() if rt.crd_name == crd_name]
        for rt in gone:
            del self._by_gvr[(rt.group, rt.version, rt.plural)]
        for rt in gone:
            if not any(k[0] == rt.group and k[1] == rt.version for k in self._by_gvr):
                versions = self._groups.get(rt.group, [])
                if rt.version in versions:
                    versions.remove(rt.version)
                if not versions:
                    self._groups.pop(rt.group, None)
        return gone

    def set_preferred(self, group: str, version: str) -> None:
        """Make ``version`` the group's preferred version (a CRD's storage version)."""
        versions = self._groups.get(group)
        if versions and version in versions:
            versions.remove(version)
            versions.insert(0, version)

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        """Resolve a URL's resource segment (``None`` → 404)."""
        return self._by_gvr.get((group, version, plural))

    def groups(self) -> dict[str, list[str]]:
        """Group name → served versions, preferred first (core group is ``""``)."""
        return {g: list(v) for g, v in self._groups.items() if v}

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        """Every resource served at ``/apis/<group>/<version>`` (or ``/api/v1``)."""
        return [rt for (g, v, _), rt in self._by_gvr.items() if g == group and v == version]

    def all(self) -> list[ResourceType]:
        """Every served resource of every version."""
        return list(self._by_gvr.values())

    def any_version(self, key: ResKey) -> ResourceType | None:
        """Some served version of a stored resource (used by GC to name dependents)."""
        for rt in self._by_gvr.values():
            if rt.key == key:
                return rt
        return None
