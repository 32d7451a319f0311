"""Warm pools without a cluster: pool kernels' manifests, the pool key, the pool plan."""

from __future__ import annotations

import pytest

from elastic_jupyter import crds
from elastic_jupyter.crds import warm_pool
from elastic_jupyter.gateway_plugin.kernel_manifest import build_kernel_manifest
from elastic_jupyter.gateway_plugin.kernel_resource import (
    GatewayRef,
    KernelRequestError,
    LaunchInput,
    plan_kernel,
)
from elastic_jupyter.gateway_plugin.settings import GatewaySettings
from elastic_jupyter.operator import warm_pool_objects as objects
from elastic_jupyter.operator.warm_pools import claimed_since_pooled, pooled_phase

IMAGE = "elastic-jupyter/kernel-py:dev"
TEMPLATE = {
    "spec": {
        "template": {
            "metadata": {"labels": {"team": "a"}},
            "spec": {
                "nodeSelector": {"pool": "cpu"},
                "volumes": [{"name": "data", "emptyDir": {}}],
                "containers": [
                    {
                        "name": "kernel",
                        "env": [{"name": "FROM_TEMPLATE", "value": "1"}],
                        "resources": {"limits": {"cpu": "2"}},
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    }
                ],
            },
        }
    }
}


def kernelspec(**spec: object) -> dict[str, object]:
    return {
        "metadata": {"name": "py", "namespace": "team-a", "uid": "ks-uid"},
        "spec": {"image": IMAGE, "template": {"name": "t"}, **spec},
    }


def cold_template(client_env: dict[str, str] | None = None) -> dict[str, object]:
    """The pod template the gateway builds for a plain start request of that kernelspec."""
    settings = GatewaySettings.from_env(
        {"EG_NAMESPACE": "team-a", "EG_NAME": "gw", "EJ_ALLOW_KERNEL_UID_GID": "true"}
    )
    env = {"KERNEL_USERNAME": "alice", **(client_env or {})}
    inp = LaunchInput(
        kernel_id="k1",
        kernelspec_name="py",
        response_address="10.0.0.1:8877",
        public_key="KEY",
        port_range="0..0",
        env=env,
        client_env=env,
        image_name=IMAGE,
        template=("team-a", "t"),
        resources={"requests": {"memory": "1Gi"}},
    )
    plan = plan_kernel(inp, settings)
    manifest = build_kernel_manifest(plan, TEMPLATE, GatewayRef("gw", "team-a", "gw-uid"))
    template: dict[str, object] = manifest["spec"]["template"]
    return template


def test_pool_kernel_has_the_key_of_a_plain_start_request() -> None:
    ks = kernelspec(resources={"requests": {"memory": "1Gi"}}, warmPool={"size": 2})
    manifest = objects.pool_kernel_manifest(ks, TEMPLATE, "py-pool-abc")
    labels = manifest["metadata"]["labels"]
    assert labels[warm_pool.LABEL_POOL_STATE] == warm_pool.POOL_STATE_POOLED
    assert labels[warm_pool.LABEL_POOL_KEY] == warm_pool.pool_key(cold_template())
    assert labels[warm_pool.LABEL_POOL_KEY] == warm_pool.pool_key(manifest["spec"]["template"])
    assert manifest["metadata"]["ownerReferences"][0]["kind"] == "JupyterKernelSpec"
    env = {
        e["name"]: e["value"] for e in manifest["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["KERNEL_WARM_POOL"] == "1"
    assert "KERNEL_ID" not in env and "KERNEL_USERNAME" not in env  # identity comes at claim


@pytest.mark.parametrize(
    ("client_env", "field"),
    [
        ({"KERNEL_CPUS": "500m"}, "spec.containers[kernel].resources"),
        ({"KERNEL_UID": "2000"}, "spec.securityContext"),
    ],
)
def test_a_request_that_differs_names_the_field(client_env: dict[str, str], field: str) -> None:
    ks = kernelspec(resources={"requests": {"memory": "1Gi"}})
    pool = objects.pool_kernel_manifest(ks, TEMPLATE, "p")["spec"]["template"]
    request = cold_template(client_env)
    assert warm_pool.pool_key(request) != warm_pool.pool_key(pool)
    found = warm_pool.first_difference(
        warm_pool.pool_key_fields(request), warm_pool.pool_key_fields(pool)
    )
    assert found is not None and found.startswith(field)


def test_identity_env_is_not_part_of_the_key() -> None:
    assert warm_pool.pool_key(cold_template({"KERNEL_MY_SETTING": "x"})) == warm_pool.pool_key(
        cold_template()
    )


def test_claim_key_secret_is_owned_by_the_kernel() -> None:
    kernel = {"metadata": {"name": "py-pool-abc", "namespace": "team-a", "uid": "u1"}}
    secret = objects.claim_key_secret(kernel, objects.new_claim_key())
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "u1"
    assert set(secret["data"]) == {warm_pool.SECRET_CLAIM_KEY}


def member(name: str, **kw: object) -> objects.Member:
    base: dict[str, object] = {"state": "pooled", "phase": crds.PHASE_POOLED, "created": 100.0}
    return objects.Member(name=name, **{**base, **kw})  # type: ignore[arg-type]


def test_plan_refills_replaces_failed_and_old_and_ends_cut_claims() -> None:
    pool = objects.PoolSpec(size=3, max_idle_seconds=60)
    members = [
        member("ok"),
        member("failed", phase=crds.PHASE_FAILED),
        member("old", created=10.0),
        member("cut", state="claimed", claimed_at=100.0),
        member("in-use", state="claimed", claimed_at=100.0, has_session=True),
    ]
    plan = objects.plan_pool(pool, members, now=150.0, claim_timeout=30)
    assert sorted(n for n, _ in plan.delete) == ["cut", "failed", "old"]
    assert plan.create == 2  # 3 wanted, "ok" waits; claimed kernels never count


def test_plan_turned_off_or_shrunk() -> None:
    members = [member("a", created=1.0), member("b", created=2.0)]
    assert sorted(n for n, _ in objects.plan_pool(None, members, 10.0).delete) == ["a", "b"]
    plan = objects.plan_pool(objects.PoolSpec(1, None), members, 10.0)
    assert [n for n, _ in plan.delete] == ["a"] and plan.create == 0


def test_gpu_cap_limits_pooled_gpu_kernels() -> None:
    pool = objects.PoolSpec(size=4, max_idle_seconds=None)
    plan = objects.plan_pool(pool, [], 0.0, gpus_per_kernel=1, gpu_budget=2)
    assert plan.create == 2 and plan.gpu_limited
    plan = objects.plan_pool(pool, [], 0.0, gpus_per_kernel=1, gpu_budget=0)
    assert plan.create == 0
    assert objects.plan_pool(pool, [], 0.0, gpus_per_kernel=0, gpu_budget=0).create == 4


def test_pool_spec_and_durations() -> None:
    assert objects.pool_spec(kernelspec()) is None
    assert objects.pool_spec(kernelspec(warmPool={"size": 0})) is None
    spec = objects.pool_spec(kernelspec(warmPool={"size": 3, "maxIdleAge": "30m"}))
    assert spec == objects.PoolSpec(3, 1800.0)
    with pytest.raises(ValueError, match="maxIdleAge"):
        warm_pool.parse_duration("soon")


def test_status_of_a_waiting_pool_kernel_is_pooled_until_claimed() -> None:
    pooled = {"metadata": {"labels": {warm_pool.LABEL_POOL_STATE: "pooled"}}}
    claimed = {"metadata": {"labels": {warm_pool.LABEL_POOL_STATE: "claimed"}}}
    running = {"phase": crds.PHASE_RUNNING, "podIP": "1.2.3.4"}
    assert pooled_phase(pooled, running)["phase"] == crds.PHASE_POOLED
    assert pooled_phase(claimed, running)["phase"] == crds.PHASE_RUNNING
    assert pooled_phase({"metadata": {}}, running)["phase"] == crds.PHASE_RUNNING
    assert claimed_since_pooled(claimed, {"phase": crds.PHASE_POOLED})
    assert not claimed_since_pooled(pooled, {"phase": crds.PHASE_POOLED})


def test_policy_still_applies_before_a_claim() -> None:
    with pytest.raises(KernelRequestError):
        cold_template({"KERNEL_UID": "0"})


def test_member_reads_the_claim_and_its_completion() -> None:
    claim = '{"at": 50.0, "gateway": "g", "kernelId": "k"}'
    body = {
        "metadata": {
            "name": "p",
            "labels": {warm_pool.LABEL_POOL_STATE: "claimed"},
            "annotations": {warm_pool.ANNOTATION_CLAIM: claim},
        }
    }
    cut = objects.Member.from_object(body, created=1.0)
    assert cut.claimed_at == 50.0 and not cut.has_session
    body["metadata"]["annotations"][warm_pool.ANNOTATION_CLAIM] = claim[:-1] + ', "completed": 51}'
    assert objects.Member.from_object(body, created=1.0).has_session


def test_pool_pods_take_ingress_from_gateway_pods_only_and_may_answer_gateways() -> None:
    from elastic_jupyter.operator import network_policy

    policy = objects.pool_network_policy(kernelspec(portRange="40000..41999"))
    assert policy["metadata"]["name"] == "py-pool"
    assert policy["spec"]["podSelector"]["matchLabels"][warm_pool.LABEL_POOL] == "py"
    rule = policy["spec"]["ingress"][0]
    assert rule["from"][0]["podSelector"]["matchLabels"][crds.LABEL_COMPONENT] == "gateway"
    assert {"protocol": "TCP", "port": warm_pool.DEFAULT_CLAIM_PORT} in rule["ports"]
    gateway = {"metadata": {"name": "gw", "namespace": "team-a", "uid": "u"}, "spec": {}}
    peers = network_policy.gateway_policy(gateway)["spec"]["ingress"][0]["from"]
    pool_peers = [p for p in peers if "matchExpressions" in p["podSelector"]]
    assert pool_peers[0]["podSelector"]["matchExpressions"][0]["key"] == warm_pool.LABEL_POOL
