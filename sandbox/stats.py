"""Request accounting and fault injection for the sandbox API server.

The API server's middleware calls :meth:`RequestStats.record` once per request; benchmarks read
the counters at ``GET /sandbox/stats`` and the recent requests at ``GET /sandbox/requests``.
:class:`FaultConfig` (``POST /sandbox/faults`` or ``--faults``) makes a share of resource
requests fail and cuts watch streams, for reliability tests. Both are off/empty by default.
"""

from __future__ import annotations

import random
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from typing import Any

JsonObj = dict[str, Any]


@dataclass
class RequestRecord:
    """One request as kept in the bounded request log."""

    time: float
    method: str
    path: str
    query: str
    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str
    name: str
    user_agent: str
    status: int
    duration_ms: float
    user: str = ""  # the authenticated (or impersonated) user; "" when refused before that

    def to_json(self) -> JsonObj:
        """camelCase JSON like the rest of the API."""
        data = asdict(self)
        return {
            "time": data["time"],
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "verb": self.verb,
            "group": self.group,
            "resource": self.resource,
            "subresource": self.subresource,
            "namespace": self.namespace,
            "name": self.name,
            "userAgent": self.user_agent,
            "status": self.status,
            "durationMs": round(self.duration_ms, 3),
            "user": self.user,
        }


def user_agent_product(user_agent: str) -> str:
    """The product part of a User-Agent: ``kubectl/v1.32 (linux)`` → ``kubectl``."""
    product = user_agent.split(" ", 1)[0].split("/", 1)[0]
    return product or "unknown"


class RequestStats:
    """Counters per (verb, group/resource, subresource, user-agent product) + request log."""

    def __init__(self, log_size: int = 10000) -> None:
        self.started = time.time()
        self.counts: Counter[tuple[str, str, str, str]] = Counter()
        self.log: deque[RequestRecord] = deque(maxlen=log_size)
        self.total = 0

    def count(self, verb: str, group: str, resource: str, subresource: str, agent: str) -> None:
        """Count a request as it arrives (so open watches are counted too)."""
        self.total += 1
        qualified = f"{resource}.{group}" if group else resource
        self.counts[(verb, qualified, subresource, agent)] += 1

    def record(self, rec: RequestRecord) -> None:
        """Log a finished request (called by the middleware)."""
        self.log.append(rec)

    def reset(self) -> None:
        """Forget everything (``POST /sandbox/stats/reset``)."""
        self.counts.clear()
        self.log.clear()
        self.total = 0
        self.started = time.time()

    def to_json(self, watches_open: int) -> JsonObj:
        """The ``/sandbox/stats`` document."""
        by_verb: Counter[str] = Counter()
        by_resource: Counter[str] = Counter()
        by_agent: Counter[str] = Counter()
        rows = []
        for (verb, resource, sub, agent), n in sorted(self.counts.items()):
            by_verb[verb] += n
            by_resource[resource + (f"/{sub}" if sub else "")] += n
            by_agent[agent] += n
            rows.append(
                {
                    "verb": verb,
                    "resource": resource,
                    "subresource": sub,
                    "userAgent": agent,
                    "count": n,
                }
            )
        return {
            "since": self.started,
            "total": self.total,
            "watchesOpen": watches_open,
            "byVerb": dict(by_verb),
            "byResource": dict(by_resource),
            "byUserAgent": dict(by_agent),
            "counts": rows,
        }

    def recent(self, limit: int) -> list[JsonObj]:
        """The last ``limit`` requests, oldest first."""
        items = list(self.log)[-limit:] if limit > 0 else list(self.log)
        return [r.to_json() for r in items]


@dataclass
class FaultConfig:
    """What to break. ``resources`` limits faults to those plurals (empty: all resources)."""

    error_rate: float = 0.0
    error_code: int = 500
    drop_watches_after_seconds: float | None = None
    resources: list[str] = field(default_factory=list)
    seed: int | None = None

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    @classmethod
    def from_json(cls, data: JsonObj) -> FaultConfig:
        """Parse ``{"errorRate": 0.1, "errorCode": 500, "dropWatchesAfterSeconds": 5,
        "resources": [...]}`` (raises ``ValueError``)."""
        if not isinstance(data, dict):
            raise ValueError("faults must be a JSON object")
        rate = float(data.get("errorRate", 0.0))
        if not 0.0 <= rate <= 1.0:
            raise ValueError("errorRate must be between 0 and 1")
        code = int(data.get("errorCode", 500))
        if not 400 <= code <= 599:
            raise ValueError("errorCode must be an HTTP error code")
        drop = data.get("dropWatchesAfterSeconds")
        resources = data.get("resources") or []
        if not isinstance(resources, list):
            raise ValueError("resources must be a list of resource names")
        seed = data.get("seed")
        return cls(
            rate,
            code,
            float(drop) if drop is not None else None,
            [str(r) for r in resources],
            int(seed) if seed is not None else None,
        )

    @classmethod
    def parse(cls, text: str) -> FaultConfig:
        """A ``--faults`` option value: inline JSON, or ``@path`` to a JSON file."""
        import json
        from pathlib import Path

        raw = Path(text[1:]).read_text(encoding="utf-8") if text.startswith("@") else text
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"faults must be JSON: {exc}") from exc
        return cls.from_json(data)

    def to_json(self) -> JsonObj:
        """The ``GET /sandbox/faults`` document."""
        return {
            "errorRate": self.error_rate,
            "errorCode": self.error_code,
            "dropWatchesAfterSeconds": self.drop_watches_after_seconds,
            "resources": list(self.resources),
        }

    def applies_to(self, resource: str) -> bool:
        """Whether faults target ``resource`` (a plural)."""
        return not self.resources or resource in self.resources

    def should_fail(self, resource: str) -> bool:
        """Roll the dice for one request."""
        return (
            self.error_rate > 0
            and self.applies_to(resource)
            and self._rng.random() < self.error_rate
        )
