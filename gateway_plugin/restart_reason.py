"""Why a kernel restarts by itself, told on the kernel's websocket.

When a kernel's pod dies (deleted, evicted, its node lost), the operator records why on the
JupyterKernel (``Failed``, e.g. ``PodDeleted`` or ``ContainerStatusUnknown``, with a message),
``poll()`` reports the kernel dead, and jupyter_client's restarter starts a new one. Enterprise
Gateway then tells each websocket client only ``status: restarting`` (jupyter_server 1.24's
``ZMQChannelsHandler.on_kernel_restarted``): the notebook user reads "the kernel appears to have
died" and never why.

:func:`install` wraps that method once per process: after the ``restarting`` status it sends,
on the same websocket and in the same wire format, one ``stream`` message (``stderr``, no
parent: JupyterLab shows it in the notebook's log console) saying what happened, from the
JupyterKernel's status in the watch cache (the restarter calls back after ``poll()`` and before
the new launch, so the old status is still there). The status message itself is EG's own,
unchanged. A kernel that is not ours, or whose status says nothing, gets nothing extra.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

log = logging.getLogger(__name__)

_lock = threading.Lock()
#: Marks the wrapper on the handler class, so that a second install (another runtime) is a no-op.
_WRAPPED = "_elastic_jupyter_restart_reason"


def restart_text(kernel_id: str, phase: str, reason: str, message: str, pod: str) -> str:
    """The line the notebook user reads when a kernel restarts after its pod ended."""
    what = f"its pod {pod}" if pod and pod not in message else "its pod"
    text = f"Kernel {kernel_id} is restarting: {what} ended ({phase or 'gone'}"
    text += f", {reason})" if reason else ")"
    if message:
        text += f": {message.strip()}"
    return text + "\n"


def reason_for(handler: Any) -> str:
    """What to tell ``handler``'s client, or "" (not our kernel, nothing recorded)."""
    try:
        kernel = handler.kernel_manager.get_kernel(handler.kernel_id)
    except Exception:  # the kernel is gone already: nothing to say
        return ""
    proxy = getattr(kernel, "process_proxy", None)
    status_of = getattr(proxy, "_status", None)
    if not callable(status_of):
        return ""
    status = status_of()
    if status is None:
        name = getattr(proxy, "kernel_resource_name", "") or ""
        return restart_text(handler.kernel_id, "", "JupyterKernelDeleted", name, "")
    if not status.reason and not status.message:
        return ""
    return restart_text(
        handler.kernel_id, status.phase, status.reason, status.message, status.pod_name
    )


def _send_iopub(handler: Any, msg: dict[str, Any]) -> None:
    """Write one iopub message to the websocket the way EG's ``_send_status_message`` does."""
    # the same helpers that module uses (json_default differs between jupyter_client versions)
    from jupyter_server.services.kernels import handlers as eg_handlers

    handlers: Any = eg_handlers
    if handler.subprotocol == "v1.kernel.websocket.jupyter.org":
        wire = handlers.serialize_msg_to_ws_v1(msg, "iopub", handler.session.pack)
        handler.write_message(wire, binary=True)
        return
    msg["channel"] = "iopub"
    handler.write_message(json.dumps(msg, default=handlers.json_default))


def install() -> None:
    """Wrap ``ZMQChannelsHandler.on_kernel_restarted`` once per process (module docstring).

    Called by every runtime's ``start_services``; later calls change nothing. The wrapper reads
    each handler's own kernel manager, so it serves every gateway application in the process.
    """
    from jupyter_server.services.kernels.handlers import ZMQChannelsHandler

    handler_class: Any = ZMQChannelsHandler
    with _lock:
        original = handler_class.on_kernel_restarted
        if getattr(original, _WRAPPED, False):
            return
        _wrap(handler_class, original)


def _wrap(handler_class: Any, original: Any) -> None:

    def on_kernel_restarted(self: Any) -> None:
        original(self)
        try:
            text = reason_for(self)
            if text:
                msg = self.session.msg("stream", {"name": "stderr", "text": text})
                _send_iopub(self, msg)
        except Exception as err:  # telling why must never break the restart
            log.warning("could not send the restart reason of kernel %s: %r", self.kernel_id, err)

    setattr(on_kernel_restarted, _WRAPPED, True)
    handler_class.on_kernel_restarted = on_kernel_restarted
