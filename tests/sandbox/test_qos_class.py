"""A pod's QoS class: one rule, which the API server writes at create and the kubelet reports."""

from __future__ import annotations

from typing import Any

import pytest

from elastic_jupyter.sandbox.kinds import qos_class
from elastic_jupyter.sandbox.state import ApiState


def _spec(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"containers": [{"name": f"c{i}", "resources": r} for i, r in enumerate(resources)]}


FULL = {"cpu": "1", "memory": "1Gi"}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (_spec({}), "BestEffort"),
        (_spec({"limits": FULL}), "Guaranteed"),  # requests default to the limits
        (_spec({"requests": FULL, "limits": FULL}), "Guaranteed"),
        (_spec({"requests": FULL, "limits": FULL}, {}), "Burstable"),
        (_spec({"requests": FULL}), "Burstable"),
        (_spec({"limits": {"cpu": "1"}}), "Burstable"),  # no memory limit
        (_spec({"requests": {"cpu": "500m"}, "limits": FULL}), "Burstable"),
        (_spec({"limits": {"cpu": "1", "memory": None}}), "Burstable"),  # a null limit is none
        ({"containers": ["not-a-container"]}, "BestEffort"),
    ],
)
def test_qos_class(spec: dict[str, Any], expected: str) -> None:
    assert qos_class(spec) == expected


def test_the_api_server_writes_the_qos_class_at_create() -> None:
    state = ApiState()
    pods = state.rt(("", "pods"))
    created = state.create(
        pods,
        "default",
        {
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "x", "resources": {"limits": FULL}}]},
        },
    ).obj
    assert created["status"]["qosClass"] == "Guaranteed"
