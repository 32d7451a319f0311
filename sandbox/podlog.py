"""``pods/log``: the API server proxies it to the kubelet of the pod's node, found by the
Node's ``status.addresses`` InternalIP and ``status.daemonEndpoints.kubeletEndpoint``.

A mixin of :class:`.apiserver.ApiServer`.
"""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web

from . import errors
from .errors import ApiError
from .responses import _STATUS_REASONS
from .routing import PathInfo
from .state import ApiState

JsonObj = dict[str, Any]


class PodLogProxy:
    """``GET pods/{name}/log`` → ``GET /containerLogs/{ns}/{pod}/{container}`` on the kubelet."""

    # what this mixin uses of ApiServer
    state: ApiState
    http: aiohttp.ClientSession | None

    async def _pod_log(self, request: web.Request, info: PathInfo) -> web.StreamResponse:
        """Proxy to the kubelet of the pod's node: ``GET /containerLogs/{ns}/{pod}/{container}``."""
        st = self.state
        pod = st.get(st.rt(("", "pods")), info.namespace, info.name or "")
        name = pod["metadata"]["name"]
        ns = pod["metadata"]["namespace"]
        containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or ()]
        init = [c.get("name") for c in (pod.get("spec") or {}).get("initContainers") or ()]
        container = request.query.get("container")
        if not container:
            if len(containers) != 1:
                raise errors.bad_request(
                    f"a container name must be specified for pod {name}, choose one of: "
                    f"[{' '.join(str(c) for c in containers)}]"
                )
            container = str(containers[0])
        elif container not in containers + init:
            raise errors.bad_request(f"container {container} is not valid for pod {name}")
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            raise errors.bad_request(
                f'container "{container}" in pod "{name}" is waiting to start: pod is not '
                "scheduled to a node yet"
            )
        node = st.store.get(("", "nodes"), "", node_name)
        if node is None:
            raise errors.not_found("", "nodes", node_name)
        address, port = _kubelet_address(node)
        params = {
            k: v
            for k, v in request.query.items()
            if k in ("follow", "tailLines", "timestamps", "previous", "sinceSeconds", "limitBytes")
        }
        url = f"http://{address}:{port}/containerLogs/{quote(ns)}/{quote(name)}/{quote(container)}"
        if self.http is None:
            self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, connect=5))
        try:
            upstream = await self.http.get(url, params=params)
        except (aiohttp.ClientError, OSError) as exc:
            raise errors.bad_request(
                f'Get "{url}": the kubelet of node "{node_name}" is unreachable: {exc}'
            ) from exc
        async with upstream:
            if upstream.status != 200:
                text = (await upstream.text()).strip()
                code = upstream.status if upstream.status in (400, 404) else 500
                raise ApiError(
                    code,
                    _STATUS_REASONS.get(code, "InternalError"),
                    text or f"kubelet answered {upstream.status}",
                    {},
                )
            resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            with contextlib.suppress(ConnectionResetError, aiohttp.ClientError):
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
            return resp


def _kubelet_address(node: JsonObj) -> tuple[str, int]:
    status = node.get("status") or {}
    addresses = status.get("addresses") or []
    address = next((a.get("address") for a in addresses if a.get("type") == "InternalIP"), None)
    address = address or next((a.get("address") for a in addresses), None) or "127.0.0.1"
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port") or 10250
    return str(address), int(port)
