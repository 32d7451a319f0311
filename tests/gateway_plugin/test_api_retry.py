"""gateway_plugin/api_retry.py: transient API failures are retried, others are final."""

from __future__ import annotations

from typing import Any

import pytest

from elastic_jupyter.gateway_plugin.api_retry import create_once, retrying
from elastic_jupyter.gateway_plugin.kube import ApiError


class FakeApi:
    """Answers from a script: an ``ApiError`` to raise, or an object to return."""

    def __init__(self, answers: list[Any], existing: dict[str, Any] | None = None) -> None:
        self.answers = answers
        self.existing = existing
        self.calls: list[tuple[str, str]] = []

    def request(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        self.calls.append((method, path))
        if method == "GET":
            if self.existing is None:
                raise ApiError(404, "NotFound", "not found")
            return self.existing
        answer = self.answers.pop(0)
        if isinstance(answer, ApiError):
            raise answer
        return dict(answer)


MANIFEST = {"metadata": {"name": "k-1"}, "spec": {"kernelId": "abc"}}


def test_transient_errors_are_retried_until_success() -> None:
    api = FakeApi([ApiError(503, "ServiceUnavailable", ""), ApiError(0, "Conn", ""), MANIFEST])
    obj = create_once(api, "/k", MANIFEST, lambda o: True, sleep=lambda _s: None)  # type: ignore[arg-type]
    assert obj["metadata"]["name"] == "k-1" and len(api.calls) == 3


def test_final_errors_are_not_retried() -> None:
    api = FakeApi([ApiError(403, "Forbidden", "no")])
    with pytest.raises(ApiError) as err:
        create_once(api, "/k", MANIFEST, lambda o: True, sleep=lambda _s: None)  # type: ignore[arg-type]
    assert err.value.status == 403 and len(api.calls) == 1


def test_a_create_that_landed_before_its_answer_was_lost_is_accepted() -> None:
    ours = {"metadata": {"name": "k-1"}, "spec": {"kernelId": "abc"}}
    api = FakeApi([ApiError(500, "InternalError", ""), ApiError(409, "AlreadyExists", "")], ours)

    def is_ours(obj: dict[str, Any]) -> bool:
        return bool(obj["spec"]["kernelId"] == "abc")

    assert create_once(api, "/k", MANIFEST, is_ours, sleep=lambda _s: None) == ours  # type: ignore[arg-type]


def test_a_conflict_on_the_first_try_stays_a_conflict() -> None:
    api = FakeApi([ApiError(409, "AlreadyExists", "")], {"spec": {"kernelId": "abc"}})
    with pytest.raises(ApiError) as err:
        create_once(api, "/k", MANIFEST, lambda o: True, sleep=lambda _s: None)  # type: ignore[arg-type]
    assert err.value.status == 409 and api.calls == [("POST", "/k")]


def test_the_budget_bounds_the_retries() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    def always() -> None:
        raise ApiError(503, "ServiceUnavailable", "")

    with pytest.raises(ApiError):
        retrying(always, budget=5.0, sleep=sleep, clock=lambda: now[0])
    assert 3.0 <= now[0] <= 5.0
