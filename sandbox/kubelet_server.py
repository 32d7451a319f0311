"""The kubelet's HTTP server: ``/containerLogs`` (what the API server proxies ``pods/log``
to), ``/healthz`` and ``/pods``.

A mixin of :class:`.kubelet.Kubelet`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from .podworker import PodWorker


class KubeletServer:
    """The node's HTTP endpoints, over the kubelet's pod workers."""

    # what this mixin uses of Kubelet
    workers: dict[str, PodWorker]

    def _find(self, namespace: str, pod: str) -> PodWorker | None:
        for worker in self.workers.values():
            if worker.namespace == namespace and worker.name == pod:
                return worker
        return None

    async def _healthz(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok")

    async def _pods(self, request: web.Request) -> web.StreamResponse:
        items = [w.pod for w in self.workers.values()]
        return web.json_response({"kind": "PodList", "apiVersion": "v1", "items": items})

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        ns = request.match_info["namespace"]
        worker = self._find(ns, request.match_info["pod"])
        name = request.match_info["container"]
        if worker is None:
            raise web.HTTPNotFound(text=f'pod "{request.match_info["pod"]}" not found on node')
        run = next((c for c in worker.all_containers if c.name == name), None)
        if run is None:
            raise web.HTTPNotFound(
                text=f'container "{name}" in pod "{worker.name}" is not valid for pod'
            )
        query = request.query
        follow = query.get("follow", "false").lower() in ("true", "1")
        previous = query.get("previous", "false").lower() in ("true", "1")
        tail = int(query["tailLines"]) if query.get("tailLines", "").lstrip("-").isdigit() else -1
        if not previous and not run.started and run.restart_count == 0 and not run.done:
            reason = str((run.state.get("waiting") or {}).get("reason") or "ContainerCreating")
            raise web.HTTPBadRequest(
                text=f'container "{name}" in pod "{worker.name}" is waiting to start: {reason}'
            )
        if previous:
            if run.restart_count == 0:
                raise web.HTTPBadRequest(
                    text=f'previous terminated container "{name}" in pod "{worker.name}" not found'
                )
            path = run.log_path(run.restart_count - 1)
            follow = False
        else:
            path = run.log_path()
        response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        await response.prepare(request)
        data = path.read_bytes() if path.exists() else b""
        if tail >= 0:
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-tail:]) if tail else b""
        await response.write(data)
        offset = path.stat().st_size if path.exists() else 0
        restart = run.restart_count
        while follow:
            running = run.process is not None and run.process.returncode is None
            if path.exists() and path.stat().st_size > offset:
                with path.open("rb") as handle:
                    handle.seek(offset)
                    chunk = handle.read()
                offset += len(chunk)
                await response.write(chunk)
                continue
            if worker.terminating or run.restart_count != restart or (run.started and not running):
                break
            if not run.started and run.done:
                break
            await asyncio.sleep(0.1)
        await response.write_eof()
        return response
