"""Retrying the gateway's Kubernetes API calls through transient failures.

A kernel start makes a few API calls (read the template and the JupyterGateway, create the
JupyterKernel and its Secret). Without retries one ``500``/``503``/``429`` answer, or a refused
connection while the API server restarts, failed the user's start (measured in
``docs/reliability.md``, row ``api-5pct-5xx``). Here such failures are retried with back-off for
a bounded time; every other answer (403, 404, 409, 422...) is final at once.

A retried *create* may have reached the server before its answer was lost (a timeout, a 5xx
from a proxy): :func:`create_once` then reads the object by name and accepts it when it is the
one this call meant to create, instead of failing on ``409 AlreadyExists``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from .kube import ApiError, KubeApi

T = TypeVar("T")
Obj = dict[str, Any]

#: 0 is "no answer" (refused, reset, timed out): the API server restarting or unreachable.
TRANSIENT = frozenset({0, 429, 500, 502, 503, 504})


def retrying(
    call: Callable[[], T],
    *,
    budget: float = 20.0,
    first_delay: float = 0.2,
    max_delay: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    retry_on: frozenset[int] = TRANSIENT,
) -> T:
    """``call()``, retried while it raises an :class:`ApiError` whose status is in
    ``retry_on`` (transient ones by default) and ``budget`` seconds are left; the last error
    is raised as it came."""
    deadline = clock() + budget
    delay = first_delay
    while True:
        try:
            return call()
        except ApiError as err:
            if err.status not in retry_on or clock() + delay > deadline:
                raise
        sleep(delay)
        delay = min(delay * 2, max_delay)


def create_once(
    api: KubeApi,
    path: str,
    manifest: Mapping[str, Any],
    is_ours: Callable[[Obj], bool],
    *,
    timeout: float = 10.0,
    budget: float = 20.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Obj:
    """POST ``manifest`` to ``path``, retried through transient failures. A ``409`` after a
    failed attempt reads ``path/<name>`` and returns it when ``is_ours`` (our earlier attempt
    landed); otherwise the ``409`` is raised as usual."""
    name = str(manifest["metadata"]["name"])
    tried = False

    def attempt() -> Obj:
        nonlocal tried
        try:
            return api.request("POST", path, body=dict(manifest), timeout=timeout)
        except ApiError as err:
            if err.status == 409 and tried:
                existing = api.request("GET", f"{path}/{name}", timeout=timeout)
                if is_ours(existing):
                    return existing
            tried = tried or err.status in TRANSIENT
            raise

    return retrying(attempt, budget=budget, sleep=sleep)
