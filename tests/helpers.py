"""Small helpers every test may use: ``from tests.helpers import wait_for, free_port``.

Polling and ports come from :mod:`elastic_jupyter.harness.processes` (shared with the demo and
the benchmarks); ``wait_for`` is its test flavour (AssertionError, exceptions mean "not yet").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from elastic_jupyter.harness.processes import free_port, wait_until

__all__ = ["free_port", "pod_manifest", "wait_for"]

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str = "",
) -> T:
    """Call ``predicate`` until it returns something truthy and return that value.

    Exceptions raised by ``predicate`` count as "not yet" (the last one is reported). On
    timeout an AssertionError names ``message`` and the last value or exception seen.
    """
    what = message or getattr(predicate, "__name__", "condition")
    try:
        return wait_until(what, predicate, timeout, interval, ignore=(Exception,))
    except TimeoutError as error:
        raise AssertionError(str(error)) from None


def pod_manifest(
    name: str,
    command: list[str],
    *,
    image: str = "python:3.11",
    restart_policy: str = "Never",
    **container: Any,
) -> dict[str, Any]:
    """A one-container Pod running ``command`` (extra keyword arguments go to the container)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "restartPolicy": restart_policy,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": image, "command": command, **container}],
        },
    }
