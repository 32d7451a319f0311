"""The fault switch of the reliability table (sandbox/faults.py), as an API client sees it."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
from collections import Counter
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest

from tests.sandbox.test_api_support import ServerThread, raw

CM = "/api/v1/namespaces/default/configmaps"


@pytest.fixture
def srv() -> Iterator[ServerThread]:
    thread = ServerThread()
    try:
        yield thread
    finally:
        thread.stop()


def test_error_codes_are_mixed_and_agents_can_be_exempt(srv: ServerThread) -> None:
    body = {"errorRate": 1.0, "errorCodes": [500, 503], "seed": 1, "resources": ["configmaps"]}
    assert raw(srv.url, "POST", "/sandbox/faults", body)[0] == 200
    codes = Counter(raw(srv.url, "GET", CM)[0] for _ in range(40))
    assert set(codes) == {500, 503}
    body["exemptUserAgents"] = ["observer"]
    raw(srv.url, "POST", "/sandbox/faults", body)
    assert raw(srv.url, "GET", CM, headers={"User-Agent": "observer/1.0"})[0] == 200
    assert raw(srv.url, "GET", CM)[0] in (500, 503)
    assert raw(srv.url, "POST", "/sandbox/faults", {"errorCodes": [200]})[0] == 400


def test_conflicts_on_updates_only(srv: ServerThread) -> None:
    assert raw(srv.url, "POST", CM, {"metadata": {"name": "c"}})[0] == 201
    raw(srv.url, "POST", "/sandbox/faults", {"conflictRate": 1.0})
    code, status, _ = raw(
        srv.url,
        "PATCH",
        CM + "/c",
        {"data": {"a": "b"}},
        content_type="application/merge-patch+json",
    )
    assert code == 409 and status["reason"] == "Conflict"
    assert raw(srv.url, "GET", CM + "/c")[1].get("data") is None  # nothing was written
    assert raw(srv.url, "POST", CM, {"metadata": {"name": "d"}})[0] == 201  # creates pass


def test_latency_is_added(srv: ServerThread) -> None:
    raw(srv.url, "POST", "/sandbox/faults", {"latencySeconds": 0.5})
    started = time.monotonic()
    assert raw(srv.url, "GET", CM)[0] == 200
    assert time.monotonic() - started >= 0.5


def _watch_lines(url: str, token: str, query: str) -> list[dict[str, object]]:
    parsed = urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    conn.request("GET", f"{CM}?watch=1&{query}", headers={"Authorization": f"Bearer {token}"})
    lines = [json.loads(line) for line in conn.getresponse().read().splitlines() if line]
    conn.close()
    return lines


def test_gone_on_every_resume(srv: ServerThread) -> None:
    raw(srv.url, "POST", CM, {"metadata": {"name": "g"}})
    rv = raw(srv.url, "GET", CM)[1]["metadata"]["resourceVersion"]
    raw(srv.url, "POST", "/sandbox/faults", {"goneOnResume": True})
    (event,) = _watch_lines(srv.url, srv.token, f"resourceVersion={rv}")
    assert event["type"] == "ERROR" and event["object"]["code"] == 410  # type: ignore[index]
    # a fresh watch (no resourceVersion) still works: it is the client's way back
    raw(srv.url, "POST", "/sandbox/faults", {"goneOnResume": True, "dropWatchesAfterSeconds": 0.3})
    events = _watch_lines(srv.url, srv.token, "")
    assert [e["type"] for e in events] == ["ADDED"]


def test_restart_keeps_state_and_cuts_connections(srv: ServerThread) -> None:
    raw(srv.url, "POST", CM, {"metadata": {"name": "kept"}})
    before = raw(srv.url, "GET", CM)[1]["metadata"]["resourceVersion"]
    parsed = urlparse(srv.url)
    watch = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    auth = {"Authorization": f"Bearer {srv.token}"}
    watch.request("GET", f"{CM}?watch=1&resourceVersion={before}", headers=auth)
    response = watch.getresponse()
    assert raw(srv.url, "POST", "/sandbox/restart", {"downSeconds": 1.5})[0] == 202
    assert response.read() == b""  # the watch was cut by the restart
    refused = 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            code, listed, _ = raw(srv.url, "GET", CM)
            if code == 200:
                break
        except (urllib.error.URLError, ConnectionError):
            refused += 1
        time.sleep(0.1)
    assert refused > 0  # it was down for a while
    assert [o["metadata"]["name"] for o in listed["items"]] == ["kept"]
    assert listed["metadata"]["resourceVersion"] == before  # same store, same versions


def test_watches_open_before_the_fault_are_dropped_too(srv: ServerThread) -> None:
    parsed = urlparse(srv.url)
    watch = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=15)
    auth = {"Authorization": f"Bearer {srv.token}"}
    watch.request("GET", f"{CM}?watch=1", headers=auth)
    response = watch.getresponse()
    raw(srv.url, "POST", "/sandbox/faults", {"dropWatchesAfterSeconds": 0.5})
    assert response.read() == b""  # cut within a few seconds, not at its own timeout
    assert raw(srv.url, "GET", "/sandbox/faults")[1]["injected"] == {"watchDrop": 1}
