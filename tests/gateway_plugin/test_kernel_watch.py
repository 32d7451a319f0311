"""The shared JupyterKernel watch: status reading, fail-fast verdicts, resume and re-list."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from elastic_jupyter import crds
from elastic_jupyter.gateway_plugin.kernel_watch import (
    KernelStatus,
    KernelWatch,
    StartJudge,
    describe_failure,
)
from elastic_jupyter.gateway_plugin.kube import ApiError, KubeApi


def kernel(name: str, rv: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "resourceVersion": rv,
            "labels": {crds.LABEL_KERNEL_ID: f"id-{name}"},
        },
        "spec": {"kernelId": f"id-{name}"},
        "status": status,
    }


def test_status_reading_and_verdicts() -> None:
    running = KernelStatus.from_object(kernel("a", "1", phase="Running", podIP="127.0.0.9"))
    assert running.running and running.alive and running.failure() is None
    assert running.kernel_id == "id-a"

    pulling = KernelStatus.from_object(
        kernel("b", "1", phase="Pending", reason="ErrImagePull", message="no such image")
    )
    assert pulling.alive and pulling.failure() == ("ErrImagePull", "no such image")

    unschedulable = KernelStatus.from_object(
        kernel(
            "c",
            "1",
            phase="Pending",
            conditions=[
                {"type": "Scheduled", "status": "False", "reason": "Unschedulable", "message": "m"}
            ],
        )
    )
    assert unschedulable.failure() is None
    assert unschedulable.waiting_reason() == ("Unschedulable", "m")

    exited = KernelStatus.from_object(kernel("d", "1", phase="Failed", exitCode=3))
    assert not exited.alive
    assert exited.failure() == ("Failed", "the kernel exited with code 3")

    condition_failed = KernelStatus.from_object(
        kernel(
            "e",
            "1",
            phase="Pending",
            conditions=[{"type": "Failed", "status": "True", "reason": "CrashLoopBackOff"}],
        )
    )
    assert condition_failed.failure() == ("CrashLoopBackOff", "")

    text = describe_failure("k1", "ImagePullBackOff", "back-off pulling image")
    assert "ImagePullBackOff" in text and "back-off pulling image" in text and "image" in text


class FakeApi(KubeApi):
    """Lists and watch streams scripted per call; counts requests."""

    def __init__(self, lists: list[dict[str, Any]], streams: list[list[Any]]) -> None:
        super().__init__("http://127.0.0.1:1")
        self.lists = lists
        self.streams = streams
        self.list_calls = 0
        self.watch_versions: list[str] = []
        self.done = threading.Event()

    def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        self.list_calls += 1
        return self.lists.pop(0)

    def stream(
        self, path: str, query: Mapping[str, str], read_timeout: float
    ) -> Iterator[dict[str, Any]]:
        self.watch_versions.append(query.get("resourceVersion", ""))
        if not self.streams:
            self.done.set()
            threading.Event().wait(30)
            return
        for item in self.streams.pop(0):
            if isinstance(item, Exception):
                raise item
            yield item


def test_watch_resumes_from_resource_version_and_relists_after_410() -> None:
    api = FakeApi(
        lists=[
            {"metadata": {"resourceVersion": "10"}, "items": [kernel("a", "9")]},
            {"metadata": {"resourceVersion": "50"}, "items": [kernel("c", "49")]},
        ],
        streams=[
            [
                {"type": "ADDED", "object": kernel("b", "11")},
                {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "12"}}},
            ],
            [
                {"type": "DELETED", "object": kernel("a", "13")},
                {"type": "ERROR", "object": {"code": 410, "reason": "Expired", "message": "old"}},
            ],
        ],
    )
    watch = KernelWatch(api, "ns", "sel")
    watch.start()
    try:
        assert api.done.wait(10)
        # first watch from the list's version, the second resumes after the bookmark,
        # then 410 forces a new list and a watch from its version
        assert api.watch_versions == ["10", "12", "50"]
        assert api.list_calls == 2
        assert watch.get("ns", "c") is not None
        assert watch.get("ns", "b") is None and watch.was_deleted("ns", "b")
        assert watch.was_deleted("ns", "a")
    finally:
        watch.stop()


def test_broken_streams_resume_without_listing_again() -> None:
    api = FakeApi(
        lists=[{"metadata": {"resourceVersion": "5"}, "items": []}],
        streams=[
            [{"type": "ADDED", "object": kernel("a", "6")}, ApiError(0, "Reset", "cut")],
            [{"type": "MODIFIED", "object": kernel("a", "7", phase="Running")}],
        ],
    )
    watch = KernelWatch(api, "ns", "sel")
    watch.start()
    try:
        assert api.done.wait(10)
        assert api.list_calls == 1
        assert api.watch_versions == ["5", "6", "7"]
        status = watch.get("ns", "a")
        assert status is not None and status.phase == "Running"
    finally:
        watch.stop()


def test_waiters_are_woken_from_the_watch_thread() -> None:
    api = FakeApi(
        lists=[{"metadata": {"resourceVersion": "1"}, "items": []}],
        streams=[[{"type": "ADDED", "object": kernel("a", "2", phase="Running")}]],
    )
    watch = KernelWatch(api, "ns", "sel")

    async def main() -> KernelStatus | None:
        event = asyncio.Event()
        watch.subscribe("ns", "a", event)
        watch.start()
        await asyncio.wait_for(event.wait(), 10)
        watch.unsubscribe("ns", "a", event)
        return watch.get("ns", "a")

    try:
        status = asyncio.run(main())
        assert status is not None and status.phase == "Running"
    finally:
        watch.stop()


def test_orphans_need_the_grace_period() -> None:
    api = FakeApi(
        lists=[
            {"metadata": {"resourceVersion": "1"}, "items": [kernel("a", "1"), kernel("b", "1")]}
        ],
        streams=[],
    )
    watch = KernelWatch(api, "ns", "sel")
    watch.start()
    try:
        assert watch.wait_synced(10)
        known = {"id-a"}
        assert watch.orphans(known.__contains__, grace=0.0) == [watch.get("ns", "b")]
        assert watch.orphans(known.__contains__, grace=60.0) == []
    finally:
        watch.stop()


@pytest.mark.parametrize("status", [0, 500])
def test_api_errors_carry_status(status: int) -> None:
    err = ApiError(status, "Reason", "message")
    assert err.status == status and "Reason" in str(err)


class DeleteApi(KubeApi):
    def __init__(self, status: int) -> None:
        super().__init__("http://127.0.0.1:1")
        self.status = status
        self.calls: list[tuple[str, str, Any]] = []

    def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        self.calls.append((method, path, kwargs.get("body")))
        if self.status >= 400:
            raise ApiError(self.status, "NotFound" if self.status == 404 else "Error", "x")
        return {}


def test_delete_is_background_and_404_counts_as_gone() -> None:
    from elastic_jupyter.gateway_plugin.launcher import delete_kernel

    api = DeleteApi(200)
    assert delete_kernel(api, "ns", "k") is True
    method, path, body = api.calls[0]
    assert method == "DELETE" and path.endswith("/namespaces/ns/jupyterkernels/k")
    assert body["propagationPolicy"] == "Background" and body["gracePeriodSeconds"] == 0
    assert delete_kernel(DeleteApi(404), "ns", "k") is False
    with pytest.raises(ApiError):
        delete_kernel(DeleteApi(500), "ns", "k")


def test_http_reasons_are_valid_status_lines() -> None:
    from elastic_jupyter.gateway_plugin.process_proxy import _http_reason

    reason = _http_reason("bad <image>\nname\t✓ ünïcode")
    assert "\n" not in reason and "<" not in reason
    reason.encode("latin-1")


def namespaced(name: str, namespace: str, rv: str, **status: Any) -> dict[str, Any]:
    obj = kernel(name, rv, **status)
    obj["metadata"]["namespace"] = namespace
    return obj


class NamespacedApi(KubeApi):
    """Per-namespace scripted lists and watch streams; records which paths were used."""

    def __init__(self, lists: dict[str, list[Any]], streams: dict[str, list[list[Any]]]) -> None:
        super().__init__("http://127.0.0.1:1")
        self.lists = lists
        self.streams = streams
        self.paths: list[str] = []
        self.idle: dict[str, threading.Event] = {ns: threading.Event() for ns in lists}

    @staticmethod
    def namespace_of(path: str) -> str:
        assert "/namespaces/" in path, f"cluster-wide request: {path}"
        return path.split("/namespaces/")[1].split("/")[0]

    def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        self.paths.append(path)
        answer = self.lists[self.namespace_of(path)].pop(0)
        if isinstance(answer, Exception):
            raise answer
        result: dict[str, Any] = answer
        return result

    def stream(
        self, path: str, query: Mapping[str, str], read_timeout: float
    ) -> Iterator[dict[str, Any]]:
        namespace = self.namespace_of(path)
        self.paths.append(path)
        pending = self.streams.get(namespace) or []
        if not pending:
            self.idle[namespace].set()
            threading.Event().wait(30)
            return
        for item in pending.pop(0):
            if isinstance(item, Exception):
                raise item
            yield item


def test_namespaces_are_watched_separately_into_one_cache() -> None:
    api = NamespacedApi(
        lists={
            "gw": [
                {"metadata": {"resourceVersion": "5"}, "items": [namespaced("a", "gw", "4")]},
                {"metadata": {"resourceVersion": "20"}, "items": []},
            ],
            "lab": [{"metadata": {"resourceVersion": "7"}, "items": [namespaced("b", "lab", "6")]}],
        },
        streams={
            # gw's history expires: its re-list must not forget lab's kernels
            "gw": [[{"type": "ERROR", "object": {"code": 410, "reason": "Expired"}}]],
        },
    )
    watch = KernelWatch(api, ["gw"], "sel")

    async def main() -> None:
        event = asyncio.Event()
        watch.subscribe("lab", "b", event)
        watch.start()
        assert api.idle["gw"].wait(10)
        assert watch.is_synced("gw") and not watch.is_synced("lab")
        assert watch.get("lab", "b") is None
        assert watch.ensure_namespace("lab") is True  # lazily, on the first launch there
        assert watch.ensure_namespace("lab") is False
        await asyncio.wait_for(event.wait(), 10)  # the same waiters serve every namespace
        watch.unsubscribe("lab", "b", event)

    try:
        asyncio.run(main())
        assert api.idle["lab"].wait(10)
        assert watch.namespaces == ["gw", "lab"]
        assert watch.wait_synced(5)
        assert watch.get("gw", "a") is None and watch.was_deleted("gw", "a")
        assert watch.get("lab", "b") is not None
        # every request named a namespace: namespaced Roles are enough
        assert all("/namespaces/" in p for p in api.paths)
    finally:
        watch.stop()


def test_a_forbidden_namespace_does_not_stop_the_others() -> None:
    api = NamespacedApi(
        lists={
            "gw": [{"metadata": {"resourceVersion": "1"}, "items": [namespaced("a", "gw", "1")]}],
            "secret": [ApiError(403, "Forbidden", "no RBAC"), ApiError(403, "Forbidden", "no")],
        },
        streams={},
    )
    watch = KernelWatch(api, ["gw", "secret"], "sel")
    watch.start()
    try:
        assert api.idle["gw"].wait(10)
        assert watch.is_synced("gw") and not watch.is_synced("secret")
        assert not watch.wait_synced(0.2)  # not every namespace is listed
        assert watch.wait_synced(0.2, "gw")
        # orphans are judged only where the watch has listed
        assert [s.name for s in watch.orphans(lambda kid: False, grace=0.0)] == ["a"]
    finally:
        watch.stop()


def test_creation_timestamps_are_read() -> None:
    obj = kernel("a", "1")
    obj["metadata"]["creationTimestamp"] = "2026-01-02T03:04:05Z"
    created = KernelStatus.from_object(obj).created
    assert created is not None and abs(created - 1767323045.0) < 1e-6
    assert KernelStatus.from_object(kernel("b", "1")).created is None


def test_a_silently_stalled_watch_is_resumed_in_seconds() -> None:
    """An API connection that stays open but goes silent (no events, no bookmarks) must not
    blind the gateway for minutes: the stream is resumed from its resourceVersion."""
    import http.server
    import time

    watches: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if "watch=true" in self.path:
                watches.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.flush()
                time.sleep(20)  # stalled: open, silent
                return
            body = b'{"kind": "List", "items": [], "metadata": {"resourceVersion": "7"}}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        api = KubeApi(f"http://127.0.0.1:{server.server_address[1]}")
        watch = KernelWatch(api, "ns", "a=b")
        watch.stall_seconds = 0.5
        watch.start()
        deadline = time.monotonic() + 10
        while len(watches) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        watch.stop()
        assert len(watches) >= 3, watches  # resumed twice within seconds
        assert all("resourceVersion=7" in w for w in watches)  # resumed, not re-listed
        assert watch.lists == 1
    finally:
        server.shutdown()


def test_start_judge_ends_a_start_at_each_dead_end() -> None:
    """The verdicts both front ends (process proxy, provisioner) act on while a kernel starts."""
    unschedulable = KernelStatus.from_object(
        kernel(
            "c",
            "1",
            phase="Pending",
            conditions=[
                {"type": "Scheduled", "status": "False", "reason": "Unschedulable", "message": "m"}
            ],
        )
    )
    judge = StartJudge(unschedulable_grace=10.0)
    assert judge.judge(None, False, 0.0) is None  # not in the watch yet
    assert judge.judge(unschedulable, False, 100.0) is None
    assert judge.judge(unschedulable, False, 109.9) is None
    assert judge.judge(unschedulable, False, 110.0) == (503, "Unschedulable", "m")
    running = KernelStatus.from_object(kernel("c", "2", phase="Running", podIP="127.0.0.9"))
    assert judge.judge(running, False, 111.0) is None and judge.unschedulable_since is None
    assert judge.judge(None, False, 112.0) == (
        500,
        crds.REASON_DELETED,
        "its JupyterKernel was deleted during start",
    )

    pulling = KernelStatus.from_object(
        kernel("b", "1", phase="Pending", reason="ErrImagePull", message="no such image")
    )
    assert StartJudge(10.0).judge(pulling, False, 0.0) == (500, "ErrImagePull", "no such image")
    assert StartJudge(10.0).judge(None, True, 0.0) is not None  # deleted before we saw it

    waiting = StartJudge(10.0)
    assert waiting.timed_out(30.0, "ns", "c")[2].endswith(
        "JupyterKernel ns/c: no status yet (is elastic-jupyter-operator running?)"
    )
    waiting.judge(unschedulable, False, 0.0)
    status, reason, message = waiting.timed_out(30.0, "ns", "c")
    assert (status, reason) == (500, "Timeout")
    assert message == (
        "waited too long (30.0s) to get connection info; "
        "JupyterKernel ns/c: phase Pending, Unschedulable"
    )
