"""Prometheus metrics of the operator, served on ``--metrics-port`` by :func:`serve`.

Who updates what:

* ``elastic_jupyter_kernels{phase}`` — a gauge computed at scrape time from the kernel tracker of
  :mod:`kernels` (the phases the operator last saw or wrote), so it cannot drift;
* ``elastic_jupyter_kernel_start_seconds`` — histogram of JupyterKernel creation → its pod seen
  Running, observed by :mod:`kernels` once per kernel (only for kernels this process saw start);
* ``elastic_jupyter_reconcile_errors_total{kind}`` — API calls or builds that failed in a
  handler, by custom resource kind;
* ``elastic_jupyter_api_writes_total{verb,resource}`` — writes the operator made itself (kopf's
  own event posts are not included).

Each operator run registers into its own :class:`CollectorRegistry` (no module-level global
metric objects), so that several operators can run in one test process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from elastic_jupyter import crds

#: Buckets for kernel start latency: sub-second on a warm node up to minutes for image pulls.
START_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class _PhaseCollector(Collector):
    def __init__(self, phases: Callable[[], Mapping[str, int]]) -> None:
        self._phases = phases

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "elastic_jupyter_kernels", "JupyterKernels by status.phase", labels=["phase"]
        )
        counts = dict(self._phases())
        for phase in (*crds.KERNEL_PHASES, ""):
            family.add_metric([phase], counts.get(phase, 0))
        yield family


class Metrics:
    """The metric objects of one operator run."""

    def __init__(self, phases: Callable[[], Mapping[str, int]]) -> None:
        self.registry = CollectorRegistry()
        self.start_seconds = Histogram(
            "elastic_jupyter_kernel_start_seconds",
            "JupyterKernel creation to its pod seen Running, in seconds",
            buckets=START_BUCKETS,
            registry=self.registry,
        )
        self.reconcile_errors = Counter(
            "elastic_jupyter_reconcile_errors_total",
            "Failed API calls or builds in the operator's handlers",
            ["kind"],
            registry=self.registry,
        )
        self.api_writes = Counter(
            "elastic_jupyter_api_writes_total",
            "API writes made by the operator's handlers",
            ["verb", "resource"],
            registry=self.registry,
        )
        self.registry.register(_PhaseCollector(phases))
        self._server: Any = None

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        """Start the scrape endpoint in a background thread (no-op for port 0)."""
        if port:
            self._server = start_http_server(port, addr=addr, registry=self.registry)

    def stop(self) -> None:
        """Stop the scrape endpoint, if any (the cleanup handler calls it)."""
        if self._server is not None:
            server, _thread = self._server
            server.shutdown()
            server.server_close()
            self._server = None
