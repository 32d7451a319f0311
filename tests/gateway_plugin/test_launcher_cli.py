"""The kubeflow-launcher argv: the original's forms, EG's own launcher form, and errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from elastic_jupyter.gateway_plugin import launcher_cli
from elastic_jupyter.gateway_plugin.kernel_resource import KernelRequestError
from elastic_jupyter.gateway_plugin.launcher_cli import (
    LauncherArgsError,
    launcher_args_start,
    parse_launcher_argv,
)

KID = "3f0c9a52-8a1e-4c4e-9f57-0f6f0c1b2d3e"
ORIGINAL = [
    "kubeflow-launcher",
    "--verbose",
    "--RemoteProcessProxy.kernel-id",
    KID,
    "--RemoteProcessProxy.port-range",
    "0..0",
    "--RemoteProcessProxy.response-address",
    "10.0.0.1:8877",
    "--RemoteProcessProxy.public-key",
    "MIGfMA0",
    "--kernel-template-name",
    "tpl",
    "--kernel-template-namespace",
    "team",
]


def test_original_argv_with_public_key() -> None:
    start = launcher_args_start(ORIGINAL)
    assert start == 1
    args = parse_launcher_argv(ORIGINAL[start:])
    assert args.kernel_id == KID
    assert args.response_address == "10.0.0.1:8877"
    assert args.public_key == "MIGfMA0"
    assert args.port_range == "0..0"
    assert (args.template_namespace, args.template_name) == ("team", "tpl")
    assert args.verbose


def test_article_form_without_public_key_and_with_spark_mode() -> None:
    argv = [a for a in ORIGINAL if a not in ("--RemoteProcessProxy.public-key", "MIGfMA0")]
    argv += ["--RemoteProcessProxy.spark-context-initialization-mode", "none", "-t"]
    args = parse_launcher_argv(argv[1:])
    assert args.public_key is None
    assert args.spark_context_init_mode == "none"


@pytest.mark.parametrize(
    ("argv", "start"),
    [
        (["/usr/local/bin/kubeflow-launcher", "--kernel-id", KID], 1),
        (["python", "-m", "elastic_jupyter.gateway_plugin.launcher_cli", "x"], 3),
        (["python", "/usr/local/share/jupyter/kernels/k/scripts/launch_kubernetes.py"], 2),
        (["python", "-m", "ipykernel_launcher", "-f", "/tmp/c.json"], None),
        ([], None),
    ],
)
def test_launcher_argv_detection(argv: list[str], start: int | None) -> None:
    assert launcher_args_start(argv) == start


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--RemoteProcessProxy.response-address", "a:1"], "kernel-id"),
        ([*ORIGINAL[1:], "--unknown-flag"], "unrecognized arguments: --unknown-flag"),
        (
            ["--RemoteProcessProxy.kernel-id", "{kernel_id}", "--response-address", "a:1"],
            "placeholder",
        ),
        (
            ["--kernel-id", KID, "--response-address", "a:1", "--kernel-template-namespace", "x"],
            "--kernel-template-name",
        ),
    ],
)
def test_bad_argv_names_the_argument(argv: list[str], words: str) -> None:
    with pytest.raises(LauncherArgsError) as err:
        parse_launcher_argv(argv)
    assert words in str(err.value)


def launcher_bin() -> str:
    return str(Path(sys.executable).with_name("kubeflow-launcher"))


def test_cli_dry_run_prints_the_jupyterkernel_without_a_cluster() -> None:
    argv = [a for a in ORIGINAL[1:] if a not in ("--kernel-template-name", "tpl")]
    argv = [a for a in argv if a not in ("--kernel-template-namespace", "team")]
    env = {
        **os.environ,
        "KERNEL_USERNAME": "jovyan",
        "KERNEL_IMAGE": "elastic-jupyter/kernel-py:dev",
        "EG_NAME": "gw",
        "EG_NAMESPACE": "team",
    }
    out = subprocess.run(
        [launcher_bin(), "--dry-run", *argv], env=env, capture_output=True, text=True, check=True
    )
    manifest = json.loads(out.stdout)
    assert manifest["kind"] == "JupyterKernel"
    assert manifest["metadata"]["namespace"] == "team"
    assert manifest["spec"]["kernelId"] == KID


def test_cli_usage_errors_exit_2_with_the_reason() -> None:
    out = subprocess.run(
        [launcher_bin(), "--RemoteProcessProxy.kernel-id", KID],
        capture_output=True,
        text=True,
        env={**os.environ, "KERNEL_USERNAME": "jovyan"},
    )
    assert out.returncode == 2
    assert "response-address" in out.stderr

    no_key = [a for a in ORIGINAL[1:] if a not in ("--RemoteProcessProxy.public-key", "MIGfMA0")]
    env = {k: v for k, v in os.environ.items() if k not in ("PUBLIC_KEY", "EG_PUBLIC_KEY")}
    out = subprocess.run(
        [launcher_bin(), "--dry-run", *no_key],
        capture_output=True,
        text=True,
        env={**env, "KERNEL_USERNAME": "jovyan"},
    )
    assert out.returncode == 2
    assert "no public key" in out.stderr


def test_both_front_ends_read_a_kernelspec_argv_the_same_way() -> None:
    """The process proxy and the kernel provisioner share this reading of a launch's argv."""
    defaults = launcher_cli.ArgvLaunch("10.0.0.1:8877", "KEY", "0..0", ("team", "from-config"))
    seed = [
        "kubeflow-launcher",
        "--verbose",
        "--RemoteProcessProxy.kernel-id",
        "k1",
        "--RemoteProcessProxy.port-range",
        "40000..41999",
        "--RemoteProcessProxy.response-address",
        "10.0.0.9:9000",
    ]
    launch = launcher_cli.read_kernelspec_argv(seed, "k1", defaults, "team")
    assert (launch.response_address, launch.public_key, launch.port_range) == (
        "10.0.0.9:9000",
        "KEY",
        "40000..41999",
    )
    assert launch.template == ("team", "from-config") and launch.kernel_argv is None
    named = launcher_cli.read_kernelspec_argv(
        [*seed, "--kernel-template-name", "t"], "k1", defaults, "team"
    )
    assert named.template == ("team", "t")

    with pytest.raises(KernelRequestError, match="kernel-id") as error:
        launcher_cli.read_kernelspec_argv(seed, "k2", defaults, "team")
    assert error.value.status == 500

    own = [sys.executable, "-m", "ipykernel_launcher", "-f", "/srv/runtime/kernel-k1.json"]
    plain = launcher_cli.read_kernelspec_argv(
        own, "k1", defaults, "team", connection_file="/srv/runtime/kernel-k1.json"
    )
    assert plain.kernel_argv == ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    assert plain.response_address == "10.0.0.1:8877"


def test_config_template_reads_the_operator_keys_and_a_hand_written_reference() -> None:
    assert launcher_cli.config_template({"kernel_template_name": "t"}, "ns") == ("ns", "t")
    assert launcher_cli.config_template(
        {"kernel_template_name": "t", "kernel_template_namespace": "x"}, "ns"
    ) == ("x", "t")
    assert launcher_cli.config_template({"kernel_template": "other/t"}, "ns") == ("other", "t")
    assert launcher_cli.config_template({}, "ns") is None
