"""Readiness and liveness probes of a pod's containers: httpGet, tcpSocket, exec.

A part of :class:`.podworker.PodWorker` (startup and grpc probes are not emulated).
"""

from __future__ import annotations

import asyncio
import shutil
import signal
from typing import Any

import aiohttp

from .kubeclient import Obj
from .podstate import ContainerRun, PodState, _kill_group


class PodProbes(PodState):
    """Probing one pod's containers; readiness feeds the pod status, liveness kills."""

    async def _probe_loop(
        self, c: ContainerRun, probe: Obj, env: dict[str, str], kind: str
    ) -> None:
        await asyncio.sleep(float(probe.get("initialDelaySeconds") or 0))
        period = float(probe.get("periodSeconds") or 10)
        success_needed = int(probe.get("successThreshold") or 1)
        failure_limit = int(probe.get("failureThreshold") or 3)
        successes = failures = 0
        while True:
            ok = await self._probe_once(c, probe, env)
            if ok:
                successes, failures = successes + 1, 0
            else:
                successes, failures = 0, failures + 1
            if kind == "readiness":
                ready = c.ready
                if ok and successes >= success_needed:
                    ready = True
                elif not ok and failures >= failure_limit:
                    ready = False
                if ready != c.ready:
                    c.ready = ready
                    self.mark_dirty()
            elif not ok and failures >= failure_limit and c.process is not None:
                await self.kubelet.event(
                    self.pod,
                    "Normal",
                    "Killing",
                    f"Container {c.name} failed liveness probe, will be restarted",
                )
                _kill_group(c.process.pid, signal.SIGKILL)
                return
            await asyncio.sleep(period)

    def _named_port(self, c: ContainerRun, port: Any) -> int:
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        for p in c.spec.get("ports") or []:
            if p.get("name") == port:
                return int(p["containerPort"])
        raise ValueError(f"named port {port!r} not found")

    async def _probe_once(self, c: ContainerRun, probe: Obj, env: dict[str, str]) -> bool:
        timeout = float(probe.get("timeoutSeconds") or 1)
        try:
            if "httpGet" in probe:
                get = probe["httpGet"]
                scheme = str(get.get("scheme") or "HTTP").lower()
                host = str(get.get("host") or self.ip)
                port = self._named_port(c, get.get("port"))
                url = f"{scheme}://{host}:{port}{get.get('path') or '/'}"
                headers = {str(h["name"]): str(h["value"]) for h in get.get("httpHeaders") or []}
                async with self.kubelet.probe_session.get(
                    url, headers=headers, ssl=False, timeout=aiohttp.ClientTimeout(total=timeout)
                ) as resp:
                    return 200 <= resp.status < 400
            if "tcpSocket" in probe:
                sock = probe["tcpSocket"]
                host = str(sock.get("host") or self.ip)
                port = self._named_port(c, sock.get("port"))
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
                writer.close()
                return True
            if "exec" in probe:
                command = [str(a) for a in probe["exec"].get("command") or []]
                exe = shutil.which(command[0], path=env["PATH"]) if command else None
                if exe is None:
                    return False
                uid, gid, groups = self._security(c.spec)
                kwargs: dict[str, Any] = {}
                if uid is not None:
                    kwargs.update(user=uid, group=gid, extra_groups=groups)
                proc = await asyncio.create_subprocess_exec(
                    exe,
                    *command[1:],
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                    **kwargs,
                )
                try:
                    return await asyncio.wait_for(proc.wait(), timeout) == 0
                except asyncio.TimeoutError:
                    proc.kill()
                    await proc.wait()
                    return False
        except (OSError, asyncio.TimeoutError, aiohttp.ClientError, ValueError):
            return False
        return True  # grpc and unknown handlers: not emulated, treated as passing
