"""Per-kind rules of the API server: the defaults kube-apiserver applies, and validation.

A mixin of :class:`.state.ApiState` (its ``_prepare``, ``_validate`` and ``_validate_update``
steps of the write pipeline) plus the pure functions behind them: Pods, Services, Namespaces,
Secrets, Deployments/ReplicaSets and ConfigMap/Secret immutability; CRDs are defaulted and
checked in :mod:`.crd_serving`.
"""

from __future__ import annotations

import base64
from typing import Any

from . import errors, validation
from .crd_serving import _crd_causes, _default_crd
from .errors import Cause
from .resources import ResKey, ResourceType
from .store import clone

JsonObj = dict[str, Any]

NAMESPACES: ResKey = ("", "namespaces")
PODS: ResKey = ("", "pods")
SERVICES: ResKey = ("", "services")
CRDS: ResKey = ("apiextensions.k8s.io", "customresourcedefinitions")

_POD_MUTABLE_NOTE = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
    "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set "
    "to 1 if it was previously negative)"
)


class KindRules:
    """The per-kind steps of :class:`.state.ApiState`'s write pipeline (they keep no state)."""

    def _validate(self, rt: ResourceType, obj: JsonObj) -> None:
        meta = obj["metadata"]
        rule = validation.NAME_RULES.get(rt.key, "subdomain")
        causes = validation.metadata_causes(meta, rule)
        if rt.key == PODS:
            causes += validation.pod_causes(obj)
        elif rt.key in (("apps", "deployments"), ("apps", "replicasets")):
            causes += _workload_causes(obj)
        elif rt.key == CRDS:
            causes += _crd_causes(obj)
        if causes:
            raise errors.invalid(rt.kind, rt.group, str(meta.get("name") or ""), causes)

    def _validate_update(self, rt: ResourceType, old: JsonObj, new: JsonObj) -> None:
        if rt.key in (("", "configmaps"), ("", "secrets")) and old.get("immutable"):
            for key in ("data", "binaryData", "stringData", "immutable"):
                if old.get(key) != new.get(key):
                    raise _invalid_update(
                        rt,
                        new,
                        Cause(
                            "FieldValueForbidden",
                            "Forbidden: field is immutable when `immutable` is set",
                            key,
                        ),
                    )
        if rt.key == PODS:
            if _pod_spec_frozen(old.get("spec")) != _pod_spec_frozen(new.get("spec")):
                raise _invalid_update(
                    rt, new, Cause("FieldValueForbidden", f"Forbidden: {_POD_MUTABLE_NOTE}", "spec")
                )
        elif rt.key == SERVICES:
            old_ip = (old.get("spec") or {}).get("clusterIP")
            new_ip = (new.get("spec") or {}).get("clusterIP")
            if old_ip and new_ip != old_ip:
                raise _invalid_update(
                    rt,
                    new,
                    Cause(
                        "FieldValueInvalid",
                        f'Invalid value: "{new_ip}": field is immutable',
                        "spec.clusterIPs[0]",
                    ),
                )

    def _prepare(self, rt: ResourceType, obj: JsonObj, old: JsonObj | None) -> None:
        """Defaults kube-apiserver applies per kind (on create and on update)."""
        key = rt.key
        if key == NAMESPACES:
            name = obj["metadata"].get("name")
            if name:
                obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            if old is None:
                obj["status"] = {"phase": "Active"}
        elif key == PODS:
            _default_pod(obj, old)
        elif key == SERVICES:
            _default_service(obj, old)
        elif key in (("apps", "deployments"), ("apps", "replicasets")):
            _default_workload(obj, key[1])
            if old is None:
                obj["status"] = {}  # the controller owns status from the start
        elif key == CRDS:
            _default_crd(obj, old)
        elif key == ("", "secrets"):
            if not obj.get("type"):
                obj["type"] = "Opaque"
            # stringData is write-only: kube-apiserver folds it into data (base64)
            string_data = obj.pop("stringData", None)
            if isinstance(string_data, dict) and string_data:
                data = obj.setdefault("data", {})
                for name, value in string_data.items():
                    data[name] = base64.b64encode(str(value).encode()).decode()


def _invalid_update(rt: ResourceType, new: JsonObj, cause: Cause) -> errors.ApiError:
    """422 for an update that changes what may not change."""
    return errors.invalid(rt.kind, rt.group, new["metadata"]["name"], [cause])


def _pod_spec_frozen(spec: Any) -> Any:
    """A pod spec minus the fields an update may change."""
    if not isinstance(spec, dict):
        return spec
    frozen = clone(spec)
    for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
        frozen.pop(key, None)
    for kind in ("containers", "initContainers"):
        for c in frozen.get(kind) or ():
            if isinstance(c, dict):
                c.pop("image", None)
    if not spec.get("nodeName"):
        frozen.pop("nodeName", None)
    return frozen


def _default_pod(pod: JsonObj, old: JsonObj | None) -> None:
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return
    if old is not None and not spec.get("nodeName") and (old.get("spec") or {}).get("nodeName"):
        spec["nodeName"] = old["spec"]["nodeName"]
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("securityContext", {})
    spec.setdefault("priority", 0)
    spec.setdefault("enableServiceLinks", True)
    for kind in ("initContainers", "containers"):
        for c in spec.get(kind) or ():
            if not isinstance(c, dict):
                continue
            image = str(c.get("image") or "")
            tagged = ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")
            c.setdefault("imagePullPolicy", "IfNotPresent" if tagged or "@" in image else "Always")
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("resources", {})
            for port in c.get("ports") or ():
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")
    if old is None:
        pod["status"] = {"phase": "Pending", "qosClass": qos_class(spec)}


def qos_class(spec: JsonObj) -> str:
    """A pod's QoS class from its containers' requests and limits (the API server sets it at
    create, the kubelet reports it in every status)."""
    containers = [c for c in spec.get("containers") or () if isinstance(c, dict)]
    requests_any = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            requests_any = True
        for name in ("cpu", "memory"):
            limit = lim.get(name)
            if limit is None or req.get(name, limit) != limit:
                guaranteed = False
    if not requests_any:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _default_service(svc: JsonObj, old: JsonObj | None) -> None:
    spec = svc.setdefault("spec", {})
    old_spec = (old or {}).get("spec") or {}
    if old_spec.get("clusterIP") and "clusterIP" not in spec:
        spec["clusterIP"] = old_spec["clusterIP"]
        spec["clusterIPs"] = old_spec.get("clusterIPs", [old_spec["clusterIP"]])
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["type"] != "ExternalName":
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or ():
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if "port" in port:
                port.setdefault("targetPort", port["port"])
    svc.setdefault("status", {"loadBalancer": {}})


def _default_workload(obj: JsonObj, plural: str) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("replicas", 1)
    if plural == "deployments":
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        spec.setdefault(
            "strategy",
            {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
            },
        )
    template = spec.get("template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        pod_like = {"spec": template["spec"]}
        _default_pod(pod_like, {"spec": {}})


def _workload_causes(obj: JsonObj) -> list[Cause]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [Cause("FieldValueRequired", "Required value", "spec")]
    selector = spec.get("selector")
    if not isinstance(selector, dict) or not (
        selector.get("matchLabels") or selector.get("matchExpressions")
    ):
        return [Cause("FieldValueRequired", "Required value", "spec.selector")]
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    wanted = selector.get("matchLabels") or {}
    if any(labels.get(k) != v for k, v in wanted.items()):
        shown = (
            "map[string]string{"
            + ", ".join(f'"{k}":"{v}"' for k, v in sorted(labels.items()))
            + "}"
        )
        return [
            Cause(
                "FieldValueInvalid",
                f"Invalid value: {shown}: `selector` does not match template `labels`",
                "spec.template.metadata.labels",
            )
        ]
    return []
