"""Why a kernel restarts by itself reaches its websocket (gateway_plugin/restart_reason.py).

The end-to-end claim (a notebook user reads the reason through the notebook server after a pod
deletion storm or a node loss) is tests/faults/test_process_faults.py; this pins the text and
what happens for kernels the plugin knows nothing about, with a fake handler."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from elastic_jupyter.gateway_plugin import restart_reason
from elastic_jupyter.gateway_plugin.kernel_watch import KernelStatus


@dataclass
class Proxy:
    status: KernelStatus | None
    kernel_resource_name: str = "alice-k1-abcde"

    def _status(self) -> KernelStatus | None:
        return self.status


@dataclass
class Kernel:
    process_proxy: Any


@dataclass
class Manager:
    kernels: dict[str, Kernel]

    def get_kernel(self, kernel_id: str) -> Kernel:
        return self.kernels[kernel_id]


class Session:
    def msg(self, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
        return {"header": {"msg_type": msg_type}, "parent_header": {}, "content": content}


@dataclass
class Handler:
    kernel_manager: Manager
    kernel_id: str = "k1"
    subprotocol: str | None = None
    session: Session = field(default_factory=Session)
    sent: list[Any] = field(default_factory=list)

    def write_message(self, message: Any, binary: bool = False) -> None:
        self.sent.append(message)

    def on_kernel_restarted(self) -> None:  # what EG's handler does: the bare status
        self.write_message(json.dumps({"content": {"execution_state": "restarting"}}))


def failed(reason: str, message: str) -> KernelStatus:
    return KernelStatus(
        name="alice-k1-abcde",
        namespace="ns",
        kernel_id="k1",
        phase="Failed",
        reason=reason,
        message=message,
        pod_name="alice-k1-abcde",
    )


def test_the_text_names_phase_reason_and_message_once() -> None:
    status = failed("PodDeleted", "pod alice-k1-abcde was deleted")
    handler = Handler(Manager({"k1": Kernel(Proxy(status))}))
    text = restart_reason.reason_for(handler)
    assert text == (
        "Kernel k1 is restarting: its pod ended (Failed, PodDeleted): "
        "pod alice-k1-abcde was deleted\n"
    )
    gone = Handler(Manager({"k1": Kernel(Proxy(None))}))
    assert "JupyterKernelDeleted" in restart_reason.reason_for(gone)


def test_nothing_extra_for_kernels_that_are_not_ours_or_say_nothing() -> None:
    assert restart_reason.reason_for(Handler(Manager({}))) == ""  # kernel already gone
    assert restart_reason.reason_for(Handler(Manager({"k1": Kernel(object())}))) == ""
    quiet = Handler(Manager({"k1": Kernel(Proxy(failed("", "")))}))
    assert restart_reason.reason_for(quiet) == ""


def test_installed_handler_sends_the_status_then_the_reason_on_iopub(monkeypatch: Any) -> None:
    from jupyter_server.services.kernels.handlers import ZMQChannelsHandler

    monkeypatch.setattr(ZMQChannelsHandler, "on_kernel_restarted", Handler.on_kernel_restarted)
    restart_reason.install()
    status = failed("ContainerStatusUnknown", "the node was lost")
    handler = Handler(Manager({"k1": Kernel(Proxy(status))}))
    ZMQChannelsHandler.on_kernel_restarted(handler)  # type: ignore[arg-type]
    first, second = (json.loads(m) for m in handler.sent)
    assert first["content"] == {"execution_state": "restarting"}
    assert second["channel"] == "iopub" and second["header"]["msg_type"] == "stream"
    assert second["content"]["name"] == "stderr"
    assert "ContainerStatusUnknown" in second["content"]["text"]
