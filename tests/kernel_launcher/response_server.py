"""Enterprise Gateway 3.3's own ResponseManager, alone in a process, driven over stdin/stdout.

Used by the launcher tests (``conftest.py``) and by ``bench/launcher_overhead.py``; run it with
the gateway venv's Python (``.venv``), where EG is installed. It creates the manager the way
EG does — ``ResponseManager.instance()`` inside the running tornado/asyncio loop, as the first
``RemoteProcessProxy.__init__`` does — so the payload is received, decrypted and routed by EG's
real code. A process of its own keeps EG's process-wide singleton away from other tests.

Protocol (JSON lines):

* first line out: ``{"public_key": ..., "response_address": "127.0.0.1:PORT"}``
* in: ``{"register": KERNEL_ID}`` → EG's ``register_event``; out ``{"registered": KERNEL_ID}``;
  with ``"launch_token": T`` as well, the gateway plugin's ``kernel_secret.expect`` first (the
  plugin's check of launch tokens is installed when ``EJ_GUARD_RESPONSES=1``)
* out, when EG has accepted a payload for a registered id:
  ``{"kernel_id": ..., "connection_info": {...}, "received_at": <time.monotonic()>}``
  (``received_at`` is taken when EG's event fires; on Linux ``time.monotonic`` is one clock for
  every process, which the benchmark relies on)
* stdin closed → exit.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from typing import Any

# EG reads these at import time: answer on loopback, on a random port so that parallel test
# runs (and a real EG on 8877) do not collide; EG itself retries nearby ports when taken.
os.environ.setdefault("EG_RESPONSE_IP", "127.0.0.1")
os.environ.setdefault("EG_RESPONSE_PORT", str(random.randint(20000, 45000)))

from enterprise_gateway.services.processproxies.processproxy import (
    ResponseManager,
)


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _await_connection_info(manager: Any, kernel_id: str) -> None:
    # EG's confirm_remote_startup polls get_connection_info; waiting on the same event directly
    # gives the exact moment EG accepted the payload.
    await manager._response_registry[kernel_id].wait()
    received_at = time.monotonic()
    info = await manager.get_connection_info(kernel_id)
    _emit({"kernel_id": kernel_id, "connection_info": info, "received_at": received_at})


async def main() -> None:
    """Serve until stdin closes."""
    if os.environ.get("EJ_GUARD_RESPONSES") == "1":
        import logging

        from elastic_jupyter.gateway_plugin import kernel_secret

        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        kernel_secret.install()
    manager = ResponseManager.instance()
    _emit({"public_key": manager.public_key, "response_address": manager.response_address})
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        command = json.loads(line)
        kernel_id = command["register"]
        if command.get("launch_token"):
            from elastic_jupyter.gateway_plugin import kernel_secret

            kernel_secret.expect(kernel_id, command["launch_token"])
        manager.register_event(kernel_id)
        task = asyncio.ensure_future(_await_connection_info(manager, kernel_id))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        _emit({"registered": kernel_id})
    manager.stop_response_manager()


if __name__ == "__main__":
    asyncio.run(main())
