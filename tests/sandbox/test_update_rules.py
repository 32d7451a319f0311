"""Updates of what may not change get a 422 naming the field; bad numeric query
parameters get a 400 naming the parameter (ApiState and the request parser, no server)."""

from __future__ import annotations

from typing import Any

import pytest

from elastic_jupyter.sandbox.errors import ApiError
from elastic_jupyter.sandbox.routing import _float_param, _int_param
from elastic_jupyter.sandbox.state import ApiState


def _update(state: ApiState, plural: str, body: dict[str, Any], change: dict[str, Any]) -> None:
    rt = state.rt(("", plural))
    stored = state.create(rt, "default", body).obj
    new = dict(stored, **change)
    state.update(rt, "default", stored["metadata"]["name"], new)


def test_an_immutable_configmap_keeps_its_data() -> None:
    body = {"metadata": {"name": "cm"}, "data": {"a": "1"}, "immutable": True}
    with pytest.raises(ApiError) as err:
        _update(ApiState(), "configmaps", body, {"data": {"a": "2"}})
    assert err.value.code == 422
    causes = err.value.details["causes"]
    assert causes[0]["field"] == "data" and "immutable" in causes[0]["message"]


def test_a_service_keeps_its_cluster_ip() -> None:
    body = {"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}]}}
    state = ApiState()
    rt = state.rt(("", "services"))
    stored = state.create(rt, "default", body).obj
    new = dict(stored, spec=dict(stored["spec"], clusterIP="127.96.255.1"))
    with pytest.raises(ApiError) as err:
        state.update(rt, "default", "svc", new)
    assert err.value.code == 422
    assert err.value.details["causes"][0]["field"] == "spec.clusterIPs[0]"


def test_numeric_query_parameters() -> None:
    assert _int_param(None, "limit", 7) == 7
    assert _int_param("", "limit", 7) == 7
    assert _int_param("0", "limit", 7) == 0
    assert _float_param(None, "timeoutSeconds") is None
    assert _float_param("2.5", "timeoutSeconds") == 2.5
    for parse in (
        lambda: _int_param("ten", "limit", 0),
        lambda: _float_param("x", "timeoutSeconds"),
    ):
        with pytest.raises(ApiError) as err:
            parse()
        assert err.value.code == 400 and "invalid value" in err.value.message
