"""A kernel's session write that fails transiently is retried off EG's loop until it lands (it
is what a restarted gateway adopts the kernel from); found under 5 % API 500/503 answers."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

from elastic_jupyter.gateway_plugin.kube import ApiError, KubeApi
from elastic_jupyter.gateway_plugin.session_store import KubeflowKernelSessionManager

SESSION: dict[str, Any] = {
    "kernel_id": "k-1",
    "kernel_name": "python-kubernetes",
    "connection_info": {"ip": "10.0.0.7", "shell_port": 5001, "key": b"secret"},
    "process_info": {"kernel_resource": {"namespace": "ns", "name": "jk-1", "uid": "u-1"}},
}


class Flaky(KubeApi):
    """Fails the first ``failures`` writes with ``status``, then accepts everything."""

    def __init__(self, failures: int, status: int) -> None:
        super().__init__("http://127.0.0.1:1")
        self.failures = failures
        self.status = status
        self.writes: list[tuple[str, str]] = []

    def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        if self.failures > 0:
            self.failures -= 1
            raise ApiError(self.status, "Injected", path)
        self.writes.append((method, path))
        return {}


def _manager(api: KubeApi) -> Any:
    manager: Any = KubeflowKernelSessionManager.__new__(KubeflowKernelSessionManager)
    manager.enable_persistence = True
    manager._sessions = {"k-1": SESSION}
    # the application's runtime, as far as the session write uses it
    manager.runtime = SimpleNamespace(api=api, replica="gateway-0")
    manager._tasks = set()
    manager.log = logging.getLogger("test")
    return manager


def test_a_transient_failure_is_retried_in_the_background() -> None:
    api = Flaky(failures=2, status=503)

    async def run() -> None:
        manager = _manager(api)
        manager.save_session("k-1")  # on EG's loop: returns at once
        await asyncio.wait_for(asyncio.gather(*manager._tasks), 10)

    asyncio.run(run())
    # the Secret (merged into the one the launch created), then the JupyterKernel's annotation
    assert [m for m, _ in api.writes] == ["PATCH", "PATCH"]
    assert "/secrets/" in api.writes[0][1]
    assert api.writes[1][1].endswith("/jupyterkernels/jk-1")


def test_a_final_failure_is_not_retried() -> None:
    api = Flaky(failures=1, status=403)

    async def run() -> int:
        manager = _manager(api)
        manager.save_session("k-1")
        return len(manager._tasks)

    assert asyncio.run(run()) == 0 and api.writes == []
