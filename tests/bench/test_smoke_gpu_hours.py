"""Smoke test of the GPU-hours replay (bench/gpu_hours.py): the model's rules on tiny traces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.smoke import ROOT, load_bench

gh = load_bench("gpu_hours.py")


def _trace(*sessions: tuple[str, float, float | None, float | None, list[tuple[float, float]]]):
    users = [
        gh.UserTrace(user=u, profile="", sessions=[gh.Session(o, c, d, list(ex))])
        for u, o, c, d, ex in sessions
    ]
    trace = gh.Trace(name="t", description="", start_clock="08:00", horizon=4 * 3600, users=users)
    gh.validate_trace(trace)
    return trace


def _elastic(timeout: float, connected: bool, gpus: int | None = None) -> object:
    return gh.Policy(
        "elastic",
        cull_idle_timeout=timeout,
        cull_interval=60,
        cull_connected=connected,
        start_latency=5,
        gpus=gpus,
    )


def test_static_holds_the_gpu_from_open_to_stop() -> None:
    trace = _trace(("u", 0, 3600, None, [(10, 60)]), ("v", 0, None, 100, []))
    out = gh.replay(trace, gh.Policy("static", start_latency=0))
    assert out.gpu_hours_held == pytest.approx(1 + 4)  # v never stops: held to the end
    assert out.gpu_hours_busy == pytest.approx(60 / 3600)
    assert out.culls == 0


def test_idle_kernel_is_culled_and_restarted_by_the_next_cell() -> None:
    trace = _trace(("u", 0, 3 * 3600, None, [(10, 20), (7200, 30)]))
    out = gh.replay(trace, _elastic(600, connected=True))
    assert out.culls == 2  # after the first cell, and after the second
    assert out.restarts_after_cull == 1
    assert out.executions_delayed_by_start >= 1
    static = gh.replay(trace, gh.Policy("static"))
    assert out.gpu_hours_held < static.gpu_hours_held / 4
    assert out.gpu_hours_busy == pytest.approx(static.gpu_hours_busy)


def test_culling_follows_jupyter_server_rules() -> None:
    # A connected tab protects its kernel unless cull_connected; a busy kernel is never culled.
    connected = _trace(("u", 0, 3 * 3600, None, [(10, 5)]))
    assert gh.replay(connected, _elastic(600, connected=False)).culls == 0
    tab_closed = _trace(("u", 0, 3 * 3600, 1800, [(10, 5)]))
    assert gh.replay(tab_closed, _elastic(600, connected=False)).culls == 1
    busy = _trace(("u", 0, 3 * 3600, 0, [(10, 2 * 3600)]))
    out = gh.replay(busy, _elastic(600, connected=True))
    assert out.culls == 1  # only after the long cell finished
    assert out.gpu_hours_busy == pytest.approx(2.0)


def test_full_node_blocks_the_next_user_until_a_gpu_frees() -> None:
    trace = _trace(
        ("a", 0, 3600, None, [(10, 5)]),
        ("b", 100, 3 * 3600, None, [(200, 5), (3 * 3600 - 60, 5)]),
    )
    static = gh.replay(trace, gh.Policy("static", start_latency=0, gpus=1))
    assert static.users_blocked == ["b"]
    assert static.max_wait_s == pytest.approx(3500)
    elastic = gh.replay(trace, _elastic(600, connected=True, gpus=1))
    assert elastic.users_blocked == ["b"]
    assert elastic.max_wait_s < static.max_wait_s


def test_cli_replays_a_trace_file_and_writes_json_and_markdown(tmp_path: Path) -> None:
    code = gh.main(
        [
            "--trace",
            str(ROOT / "bench" / "traces" / "tiny.json"),
            "--timeouts",
            "600,43200",
            "--cull-interval",
            "60",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    result = json.loads((tmp_path / "gpu_hours.json").read_text())
    static, *elastic = result["unlimited_gpus"]
    assert static["model"] == "static" and len(elastic) == 4
    assert all(e["gpu_hours_held"] <= static["gpu_hours_held"] for e in elastic)
    text = (tmp_path / "gpu_hours.md").read_text()
    assert "GPU-hours held" in text and "Command:" in text and "Machine:" in text


def test_default_trace_is_reproducible_from_its_seed() -> None:
    stored = json.loads((ROOT / "bench" / "traces" / "workday-8users.json").read_text())
    assert gh.dump_trace(gh.generate_default_trace()) == stored
