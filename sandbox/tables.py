"""Server-side printing: ``meta.k8s.io/v1`` ``Table`` responses for ``kubectl get``.

kubectl asks for ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` and prints the
columns the server chooses. The API server calls :func:`table` for list and get requests that
ask for it: CRDs get their ``additionalPrinterColumns`` (so ``kubectl get jk`` shows phase,
pod, node/IP), a few built-in kinds get kubectl's familiar columns, everything else NAME + AGE.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from .resources import ResourceType

JsonObj = dict[str, Any]
Column = tuple[str, str, str, int, Callable[[JsonObj], Any]]  # name, type, format, priority, fn


def wants_table(accept: str) -> bool:
    """Whether the client asked for a Table."""
    return "as=Table" in accept


def age(timestamp: Any) -> str:
    """kubectl's short human duration since an RFC 3339 timestamp (``5s``, ``3m2s``, ``4d``)."""
    if not isinstance(timestamp, str) or not timestamp:
        return "<unknown>"
    try:
        then = dt.datetime.strptime(timestamp[:19], "%Y-%m-%dT%H:%M:%S").replace(
            tzinfo=dt.timezone.utc
        )
    except ValueError:
        return "<invalid>"
    seconds = int((dt.datetime.now(dt.timezone.utc) - then).total_seconds())
    if seconds < 0:
        return "0s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y"


def _meta(obj: JsonObj) -> JsonObj:
    meta: JsonObj = obj.get("metadata") or {}
    return meta


def _name(obj: JsonObj) -> Any:
    return _meta(obj).get("name", "")


def _age(obj: JsonObj) -> Any:
    return age(_meta(obj).get("creationTimestamp"))


_NAME: Column = ("Name", "string", "name", 0, _name)
_AGE: Column = ("Age", "string", "", 0, _age)


def _pod_status(pod: JsonObj) -> str:
    if _meta(pod).get("deletionTimestamp"):
        return "Terminating"
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for cs in status.get("containerStatuses") or ():
        state = cs.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated"):
            term = state["terminated"]
            reason = term.get("reason") or f"ExitCode:{term.get('exitCode')}"
    return str(reason)


def _pod_ready(pod: JsonObj) -> str:
    total = len((pod.get("spec") or {}).get("containers") or ())
    ready = sum(
        1 for cs in (pod.get("status") or {}).get("containerStatuses") or () if cs.get("ready")
    )
    return f"{ready}/{total}"


def _restarts(pod: JsonObj) -> int:
    return sum(
        int(cs.get("restartCount") or 0)
        for cs in (pod.get("status") or {}).get("containerStatuses") or ()
    )


def _ports(svc: JsonObj) -> str:
    parts = []
    for p in (svc.get("spec") or {}).get("ports") or ():
        text = f"{p.get('port')}"
        if p.get("nodePort"):
            text += f":{p['nodePort']}"
        parts.append(f"{text}/{p.get('protocol', 'TCP')}")
    return ",".join(parts) or "<none>"


def _involved(event: JsonObj) -> str:
    ref = event.get("involvedObject") or event.get("regarding") or {}
    return f"{str(ref.get('kind', '')).lower()}/{ref.get('name', '')}"


def _status(obj: JsonObj) -> JsonObj:
    status: JsonObj = obj.get("status") or {}
    return status


_BUILTIN: dict[tuple[str, str], list[Column]] = {
    ("", "pods"): [
        _NAME,
        ("Ready", "string", "", 0, _pod_ready),
        ("Status", "string", "", 0, _pod_status),
        ("Restarts", "string", "", 0, _restarts),
        _AGE,
        ("IP", "string", "", 1, lambda o: _status(o).get("podIP") or "<none>"),
        ("Node", "string", "", 1, lambda o: (o.get("spec") or {}).get("nodeName") or "<none>"),
    ],
    ("", "namespaces"): [
        _NAME,
        ("Status", "string", "", 0, lambda o: _status(o).get("phase", "")),
        _AGE,
    ],
    ("", "nodes"): [
        _NAME,
        (
            "Status",
            "string",
            "",
            0,
            lambda o: next(
                (
                    "Ready" if c.get("status") == "True" else "NotReady"
                    for c in _status(o).get("conditions") or ()
                    if c.get("type") == "Ready"
                ),
                "Unknown",
            ),
        ),
        ("Roles", "string", "", 0, lambda o: "<none>"),
        _AGE,
        (
            "Version",
            "string",
            "",
            0,
            lambda o: (_status(o).get("nodeInfo") or {}).get("kubeletVersion", ""),
        ),
    ],
    ("", "configmaps"): [
        _NAME,
        (
            "Data",
            "integer",
            "",
            0,
            lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {}),
        ),
        _AGE,
    ],
    ("", "secrets"): [
        _NAME,
        ("Type", "string", "", 0, lambda o: o.get("type", "Opaque")),
        ("Data", "integer", "", 0, lambda o: len(o.get("data") or {})),
        _AGE,
    ],
    ("", "services"): [
        _NAME,
        ("Type", "string", "", 0, lambda o: (o.get("spec") or {}).get("type", "")),
        ("Cluster-IP", "string", "", 0, lambda o: (o.get("spec") or {}).get("clusterIP", "<none>")),
        ("External-IP", "string", "", 0, lambda o: "<none>"),
        ("Port(s)", "string", "", 0, _ports),
        _AGE,
    ],
    ("apps", "deployments"): [
        _NAME,
        (
            "Ready",
            "string",
            "",
            0,
            lambda o: (
                f"{_status(o).get('readyReplicas', 0)}/{(o.get('spec') or {}).get('replicas', 0)}"
            ),
        ),
        ("Up-to-date", "integer", "", 0, lambda o: _status(o).get("updatedReplicas", 0)),
        ("Available", "integer", "", 0, lambda o: _status(o).get("availableReplicas", 0)),
        _AGE,
    ],
    ("", "events"): [
        (
            "Last Seen",
            "string",
            "",
            0,
            lambda o: age(
                o.get("lastTimestamp") or o.get("eventTime") or _meta(o).get("creationTimestamp")
            ),
        ),
        ("Type", "string", "", 0, lambda o: o.get("type", "")),
        ("Reason", "string", "", 0, lambda o: o.get("reason", "")),
        ("Object", "string", "", 0, _involved),
        ("Message", "string", "", 0, lambda o: o.get("message", "")),
    ],
    ("apiextensions.k8s.io", "customresourcedefinitions"): [
        _NAME,
        ("Created At", "date", "", 0, lambda o: _meta(o).get("creationTimestamp", "")),
    ],
}

_INDEX = re.compile(r"^(.*)\[(\d+)\]$")


def jsonpath(obj: Any, path: str) -> Any:
    """The subset of JSONPath used by printer columns: ``.a.b``, ``.a[0].b``, ``.a['x.y']``."""
    cur = obj
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    tokens = re.findall(r"\['([^']*)'\]|\[(\d+)\]|\.?([^.\[\]]+)", text)
    for quoted, index, plain in tokens:
        if index:
            if not isinstance(cur, list) or int(index) >= len(cur):
                return None
            cur = cur[int(index)]
        else:
            key = quoted or plain
            if not isinstance(cur, dict):
                return None
            cur = cur.get(key)
        if cur is None:
            return None
    return cur


def _crd_columns(rt: ResourceType) -> list[Column]:
    if not rt.printer_columns:
        return [_NAME, _AGE]
    cols: list[Column] = [_NAME]
    for spec in rt.printer_columns:
        path = str(spec.get("jsonPath", ""))
        ctype = str(spec.get("type", "string"))

        def cell(obj: JsonObj, path: str = path, ctype: str = ctype) -> Any:
            value = jsonpath(obj, path)
            if ctype == "date":
                return age(value) if value else "<unknown>"
            if value is None:
                return None
            return (
                value
                if isinstance(value, (int, float, bool))
                else (value if isinstance(value, str) else str(value))
            )

        cols.append(
            (
                str(spec.get("name", path)),
                "string" if ctype == "date" else ctype,
                str(spec.get("format", "")),
                int(spec.get("priority", 0)),
                cell,
            )
        )
    return cols


def columns_for(rt: ResourceType) -> list[Column]:
    """The columns printed for a resource."""
    if rt.is_custom:
        return _crd_columns(rt)
    return _BUILTIN.get(rt.key, [_NAME, _AGE])


def table(
    rt: ResourceType, items: list[JsonObj], rv: int, include: str | None, single: bool = False
) -> JsonObj:
    """Render ``items`` as a ``meta.k8s.io/v1`` Table (``includeObject``: None/Metadata/Object)."""
    cols = columns_for(rt)
    rows = []
    for obj in items:
        row: JsonObj = {"cells": [fn(obj) for *_, fn in cols]}
        if include == "Object":
            row["object"] = obj
        elif include != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata") or {},
            }
        rows.append(row)
    meta: JsonObj = {"resourceVersion": str(rv)}
    if single and items:
        meta = {"resourceVersion": str(_meta(items[0]).get("resourceVersion", rv))}
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": [
            {"name": name, "type": ctype, "format": fmt, "description": "", "priority": prio}
            for name, ctype, fmt, prio, _ in cols
        ],
        "rows": rows,
    }
