"""Small helpers every test may use: ``from tests.helpers import wait_for``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

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
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last = value
        except Exception as err:  # the condition may be unreachable for a while
            last = err
        if time.monotonic() >= deadline:
            what = message or getattr(predicate, "__name__", "condition")
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


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
