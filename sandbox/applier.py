"""``kubectl apply -f`` for ``elastic-jupyter-sandbox up --apply DIR_OR_FILE``.

Called by :mod:`.cli` before the sandbox reports ready, so that ``--apply crds/`` means the
CRDs are established when the ready line appears. It reads YAML/JSON files (a directory means
its ``*.yaml``, ``*.yml`` and ``*.json`` files, not recursive, as kubectl without ``-R``), orders
CRDs and Namespaces first, resolves kinds through API discovery and creates each object or
replaces it when it exists (keeping its status). It is a plain API client over HTTP.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import yaml

from .kubeclient import ApiError, KubeClient, Obj, resource_path

_FIRST = {"CustomResourceDefinition": 0, "Namespace": 1}


def read_documents(path: Path) -> list[Obj]:
    """Every Kubernetes object in a file or directory (``List`` kinds expanded)."""
    files = (
        sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
        if path.is_dir()
        else [path]
    )
    docs: list[Obj] = []
    for file in files:
        text = file.read_text(encoding="utf-8")
        loaded: list[Any] = (
            [json.loads(text)] if file.suffix == ".json" else list(yaml.safe_load_all(text))
        )
        for doc in loaded:
            if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
                continue
            if str(doc["kind"]).endswith("List") and isinstance(doc.get("items"), list):
                docs.extend(i for i in doc["items"] if isinstance(i, dict))
            else:
                docs.append(doc)
    return docs


class Applier:
    """Applies objects through discovery; one instance per ``up``."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client
        self._kinds: dict[tuple[str, str], tuple[str, bool]] = {}

    async def discover(self) -> None:
        kinds: dict[tuple[str, str], tuple[str, bool]] = {}
        versions = ["v1"]
        groups = await self.client.get("/apis")
        for group in groups.get("groups") or []:
            versions += [str(v["groupVersion"]) for v in group.get("versions") or []]
        for gv in versions:
            try:
                listing = await self.client.get("/api/v1" if gv == "v1" else f"/apis/{gv}")
            except ApiError:
                continue
            for res in listing.get("resources") or []:
                if "/" in str(res.get("name")):
                    continue
                kinds[(gv, str(res["kind"]))] = (str(res["name"]), bool(res.get("namespaced")))
        self._kinds = kinds

    async def _resolve(self, obj: Obj) -> tuple[str, bool]:
        key = (str(obj["apiVersion"]), str(obj["kind"]))
        if key not in self._kinds:
            # A CRD applied moments ago may take a moment to appear in discovery.
            for _ in range(50):
                await self.discover()
                if key in self._kinds:
                    break
                await asyncio.sleep(0.1)
        if key not in self._kinds:
            raise ValueError(
                f'resource mapping not found for kind "{key[1]}" in version "{key[0]}": '
                "ensure CRDs are installed first"
            )
        return self._kinds[key]

    async def apply(self, obj: Obj, default_namespace: str = "default") -> str:
        """Create or replace one object; return kubectl's one-line report."""
        plural, namespaced = await self._resolve(obj)
        meta = obj.setdefault("metadata", {})
        namespace = str(meta.get("namespace") or default_namespace) if namespaced else None
        if namespace:
            meta["namespace"] = namespace
        name = str(meta["name"])
        api_version = str(obj["apiVersion"])
        group = api_version.split("/")[0] if "/" in api_version else ""
        label = f"{obj['kind'].lower()}{'.' + group if group else ''}/{name}"
        existing = await self.client.get_or_none(
            resource_path(api_version, plural, namespace, name)
        )
        if existing is None:
            await self.client.create(resource_path(api_version, plural, namespace), obj)
            return f"{label} created"
        body = dict(obj)
        body["metadata"] = {**meta, "resourceVersion": existing["metadata"]["resourceVersion"]}
        if "status" in existing:
            body["status"] = existing["status"]
        updated = await self.client.replace(
            resource_path(api_version, plural, namespace, name), body
        )
        same = updated["metadata"].get("resourceVersion") == existing["metadata"]["resourceVersion"]
        return f"{label} {'unchanged' if same else 'configured'}"

    async def wait_established(self, name: str, timeout: float = 15.0) -> None:
        path = resource_path("apiextensions.k8s.io/v1", "customresourcedefinitions", name=name)
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            crd = await self.client.get(path)
            conditions = (crd.get("status") or {}).get("conditions") or []
            if any(
                c.get("type") == "Established" and c.get("status") == "True" for c in conditions
            ):
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"CRD {name} not established after {timeout}s")

    async def apply_paths(self, paths: list[Path]) -> list[str]:
        docs = [doc for path in paths for doc in read_documents(path)]
        docs.sort(key=lambda d: _FIRST.get(str(d.get("kind")), 2))
        await self.discover()
        lines = []
        for doc in docs:
            lines.append(await self.apply(doc))
            if doc.get("kind") == "CustomResourceDefinition":
                await self.wait_established(str(doc["metadata"]["name"]))
        return lines
