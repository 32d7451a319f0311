"""What drives elastic-jupyter from the outside, as a notebook user and an operator of it would.

Used by ``make demo`` (``examples/demo_session.py``), the end-to-end tests and the benchmarks;
no product part imports it (``tests/test_layering.py``):

* :mod:`.notebook_client` - a jupyter_server 2 notebook server's REST API and kernel websocket.
* :mod:`.kubectl` - kubectl as a user types it; :class:`StepFailedError`.
* :mod:`.user_view` - what a user sees and waits for (printing, kubectl, Running objects).
* :mod:`.user_path` - the user's path, one method a step (:class:`UserPath`).
* :mod:`.processes` - the operator CLI as a subprocess, free ports, polling.
"""

from __future__ import annotations

from elastic_jupyter.harness.kubectl import Kubectl, StepFailedError
from elastic_jupyter.harness.notebook_client import (
    ExecutionResult,
    KernelChannel,
    NotebookAPIError,
    NotebookClient,
)
from elastic_jupyter.harness.processes import (
    NO_PORTS,
    free_port,
    operator_env,
    operator_process,
    start_operator,
    stop_process,
    wait_until,
)
from elastic_jupyter.harness.user_path import (
    ELASTIC_EXAMPLE,
    GPU_EXAMPLE,
    Pod,
    UserPath,
    run_script,
)

__all__ = [
    "ELASTIC_EXAMPLE",
    "GPU_EXAMPLE",
    "NO_PORTS",
    "ExecutionResult",
    "KernelChannel",
    "Kubectl",
    "NotebookAPIError",
    "NotebookClient",
    "Pod",
    "StepFailedError",
    "UserPath",
    "free_port",
    "operator_env",
    "operator_process",
    "run_script",
    "start_operator",
    "stop_process",
    "wait_until",
]
