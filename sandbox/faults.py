"""The sandbox API server's fault switch: what the reliability table (``make faults``) breaks.

``POST /sandbox/faults`` takes one JSON object; ``{}`` turns every fault off. Beyond the original
``errorRate``/``errorCode``/``dropWatchesAfterSeconds``/``resources`` of
:class:`~.stats.FaultConfig` it understands:

* ``errorCodes``: answer a failed request with one of these codes, picked at random per request
  (``[500, 503]``: "5 % of requests answer 500 or 503"); 503 and 429 carry ``Retry-After: 1``;
* ``conflictRate``: that share of updates (PUT and PATCH of a resource, status included) answer
  ``409 Conflict`` as for a stale ``resourceVersion``, without writing anything;
* ``latencySeconds``: every resource request waits that long before it is served (a watch: before
  its stream opens);
* ``goneOnResume``: every watch that names a ``resourceVersion`` (a resume) gets a ``410 Gone``
  ERROR event at once, as after a compaction, so the client must list again;
* ``exemptUserAgents``: user-agent products never faulted (the sandbox's own kubelet, scheduler
  and controllers, or a test's observer), so a table measures the product, not the sandbox.

``POST /sandbox/restart`` with ``{"downSeconds": 3}`` restarts the API server with its state
kept: every listener closes and every connection (watches included) is cut, connections are
refused for ``downSeconds``, then the same addresses listen again over the same store (objects,
resource versions and watch history), as a kube-apiserver restarted over its etcd.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from .errors import ApiError
from .stats import FaultConfig

log = logging.getLogger(__name__)
JsonObj = dict[str, Any]

#: Set by ``start_apiserver``: the runner whose sites a restart closes and reopens.
RUNNER: web.AppKey[web.AppRunner] = web.AppKey("sandbox_runner", web.AppRunner)

_REASONS = {
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
}
_WRITE_METHODS = ("PUT", "PATCH")


@dataclass
class Faults(FaultConfig):
    """:class:`FaultConfig` plus the faults of the reliability table (see the module doc)."""

    error_codes: list[int] = field(default_factory=list)
    conflict_rate: float = 0.0
    latency_seconds: float = 0.0
    gone_on_resume: bool = False
    exempt_user_agents: list[str] = field(default_factory=list)
    #: What was injected so far, by kind ("500", "409", "410", "watchDrop", "restart"...)
    injected: Counter[str] = field(default_factory=Counter)
    #: When these faults were switched on (``time.monotonic()``, the event loop's clock)
    since: float = field(default_factory=time.monotonic)

    @classmethod
    def from_json(cls, data: JsonObj) -> Faults:
        """Parse the ``POST /sandbox/faults`` body (raises ``ValueError`` naming the field)."""
        base = FaultConfig.from_json(data)
        codes = data.get("errorCodes") or []
        if not isinstance(codes, list) or not all(400 <= int(c) <= 599 for c in codes):
            raise ValueError("errorCodes must be a list of HTTP error codes")
        conflict = float(data.get("conflictRate", 0.0))
        if not 0.0 <= conflict <= 1.0:
            raise ValueError("conflictRate must be between 0 and 1")
        latency = float(data.get("latencySeconds", 0.0))
        if not 0.0 <= latency <= 60.0:
            raise ValueError("latencySeconds must be between 0 and 60")
        exempt = data.get("exemptUserAgents") or []
        if not isinstance(exempt, list):
            raise ValueError("exemptUserAgents must be a list of user-agent products")
        return cls(
            base.error_rate,
            base.error_code,
            base.drop_watches_after_seconds,
            base.resources,
            base.seed,
            [int(c) for c in codes],
            conflict,
            latency,
            bool(data.get("goneOnResume", False)),
            [str(a) for a in exempt],
        )

    @classmethod
    def extending(cls, base: FaultConfig) -> Faults:
        """The same faults as ``base``, none of the new ones."""
        return cls(
            base.error_rate,
            base.error_code,
            base.drop_watches_after_seconds,
            base.resources,
            base.seed,
        )

    def to_json(self) -> JsonObj:
        """The ``GET /sandbox/faults`` document."""
        return super().to_json() | {
            "errorCodes": list(self.error_codes),
            "conflictRate": self.conflict_rate,
            "latencySeconds": self.latency_seconds,
            "goneOnResume": self.gone_on_resume,
            "exemptUserAgents": list(self.exempt_user_agents),
            "injected": dict(self.injected),
        }

    def exempt(self, agent: str) -> bool:
        """Whether requests from this user-agent product are never faulted."""
        return agent in self.exempt_user_agents

    async def before(self, method: str, plural: str, agent: str) -> ApiError | None:
        """Called by the middleware before a resource request is served: wait the added
        latency, then the error to answer instead (``None``: serve it)."""
        if self.exempt(agent) or not self.applies_to(plural):
            return None
        if self.latency_seconds > 0:
            self.injected["delayed"] += 1
            await asyncio.sleep(self.latency_seconds)
        if self.should_fail(plural):
            code = self._rng.choice(self.error_codes) if self.error_codes else self.error_code
            self.injected[str(code)] += 1
            return ApiError(
                code,
                _REASONS.get(code, "InternalError"),
                f"injected fault ({code}) for {plural}",
                {},
                {"Retry-After": "1"} if code in (429, 503) else {},
            )
        conflict = method in _WRITE_METHODS and self.conflict_rate > 0
        if conflict and self._rng.random() < self.conflict_rate:
            self.injected["409"] += 1
            return ApiError(
                409,
                "Conflict",
                f"Operation cannot be fulfilled on {plural}: the object has been modified; "
                "please apply your changes to the latest version and try again "
                "(injected fault)",
                {"kind": plural},
            )
        return None

    def drop_deadline(self, plural: str, agent: str, opened: float) -> float | None:
        """When a watch opened at ``opened`` (monotonic) is cut; ``None``: never. A watch open
        before the faults were switched on counts from then."""
        drop = self.drop_watches_after_seconds
        if not drop or not self.applies_to(plural) or self.exempt(agent):
            return None
        return max(opened, self.since) + drop

    def gone_for_resume(self, plural: str, agent: str, resource_version: str) -> bool:
        """Whether this watch resume answers 410 Gone (``goneOnResume``)."""
        gone = (
            self.gone_on_resume
            and resource_version not in ("", "0")
            and self.applies_to(plural)
            and not self.exempt(agent)
        )
        if gone:
            self.injected["410"] += 1
        return gone


class Restartable(Protocol):
    """What a restart needs of the API server: its faults and a way to end its watches."""

    faults: Faults

    def cut_watches(self) -> None: ...


async def restart(app: web.Application, down_seconds: float, server: Restartable) -> None:
    """Close every listener and connection of ``app``, wait, listen again on the same
    addresses; the server's open watch streams end first."""
    runner = app[RUNNER]
    sites = list(runner.sites)
    addresses = []
    for site in sites:
        listener = getattr(site, "_server", None)
        sockets = getattr(listener, "sockets", None) or []
        port = sockets[0].getsockname()[1] if sockets else 0
        addresses.append((getattr(site, "_host", "127.0.0.1"), port, site._ssl_context))
        await site.stop()
    server.cut_watches()
    server.faults.injected["restart"] += 1
    if runner.server is not None:
        await runner.server.shutdown(1.0)  # cut keep-alive connections too
    log.warning("sandbox apiserver: restarting, down for %.1f s", down_seconds)
    await asyncio.sleep(down_seconds)
    for host, port, ssl_context in addresses:
        await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
    log.warning("sandbox apiserver: back after a restart, state kept")


_RUNNING: set[asyncio.Future[None]] = set()


def _keep(task: asyncio.Future[None]) -> None:
    """Hold a reference to a background restart until it ends (the loop keeps weak ones)."""
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)


def restart_handler(server: Restartable) -> Any:
    """``POST /sandbox/restart``: answer 202, then restart in the background."""

    async def handle(request: web.Request) -> web.Response:
        try:
            body = await request.json() if request.can_read_body else {}
            down = float((body or {}).get("downSeconds", 3.0))
        except ValueError as exc:
            return web.json_response({"message": f"bad restart request: {exc}"}, status=400)
        if not 0.0 <= down <= 300.0:
            return web.json_response({"message": "downSeconds must be 0..300"}, status=400)
        app = request.app
        loop = asyncio.get_running_loop()
        # after this response is written: the restart closes the socket it travels on
        loop.call_later(0.2, lambda: _keep(asyncio.ensure_future(restart(app, down, server))))
        return web.json_response({"restarting": True, "downSeconds": down}, status=202)

    return handle
