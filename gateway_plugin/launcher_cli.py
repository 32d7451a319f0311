"""``kubeflow-launcher``: the gateway-side launcher of the original project, kept for its argv.

Kernelspecs written for the original operator start with::

    kubeflow-launcher [--verbose] --RemoteProcessProxy.kernel-id {kernel_id}
        --RemoteProcessProxy.port-range {port_range}
        --RemoteProcessProxy.response-address {response_address}
        [--RemoteProcessProxy.public-key {public_key}]
        [--RemoteProcessProxy.spark-context-initialization-mode none]
        --kernel-template-name NAME --kernel-template-namespace NAMESPACE

``KubeflowProcessProxy`` parses this argv with :func:`parse_launcher_argv` and runs the launch
in-process (no subprocess per kernel); run as a program, the same code creates the
JupyterKernel from the arguments and the environment (``KERNEL_*``, ``EG_NAME``,
``EG_NAMESPACE``) and exits - useful for debugging a template::

    KERNEL_USERNAME=jovyan KUBECONFIG=... kubeflow-launcher --dry-run \\
        --RemoteProcessProxy.kernel-id 1e9b... \\
        --RemoteProcessProxy.response-address 10.0.0.1:8877 \\
        --RemoteProcessProxy.public-key MIGf... --kernel-template-name my-template

Without ``--RemoteProcessProxy.public-key`` (the form in the original article) the proxy uses
its gateway's own key, so the kernel still answers with payload version 1; the standalone CLI
reads ``PUBLIC_KEY``/``EG_PUBLIC_KEY`` instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from elastic_jupyter.kernel_launcher import env as launcher_env

from .kernel_manifest import build_kernel_manifest
from .kernel_resource import (
    GatewayRef,
    KernelRequestError,
    LaunchInput,
    plan_kernel,
)
from .settings import GatewaySettings, SettingsError, parse_template_ref

PROGRAM = "kubeflow-launcher"
MODULE = "elastic_jupyter.gateway_plugin.launcher_cli"
# EG's own kubernetes launchers take the same --RemoteProcessProxy.* flags.
_EG_LAUNCHERS = ("launch_kubernetes.py", "launch_custom_resource.py")
_PLACEHOLDER = re.compile(r"\{[A-Za-z0-9_]+\}")


class LauncherArgsError(ValueError):
    """The kernelspec's launcher argv cannot be used; the message names the argument."""


@dataclass(frozen=True)
class LauncherArgs:
    """The parsed launcher argv."""

    kernel_id: str
    response_address: str
    port_range: str = "0..0"
    public_key: str | None = None
    spark_context_init_mode: str | None = None
    template_name: str | None = None
    template_namespace: str | None = None
    verbose: bool = False
    dry_run: bool = False


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise LauncherArgsError(f"{PROGRAM}: {message}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROGRAM,
        description="Create a JupyterKernel for an Enterprise Gateway kernel launch.",
        allow_abbrev=False,
    )
    rpp = "--RemoteProcessProxy."
    parser.add_argument(f"{rpp}kernel-id", "--kernel-id", dest="kernel_id", required=True)
    parser.add_argument(f"{rpp}port-range", "--port-range", dest="port_range", default="0..0")
    parser.add_argument(
        f"{rpp}response-address", "--response-address", dest="response_address", required=True
    )
    parser.add_argument(f"{rpp}public-key", "--public-key", dest="public_key", default=None)
    parser.add_argument(
        f"{rpp}spark-context-initialization-mode",
        "--spark-context-initialization-mode",
        dest="spark_mode",
        default=None,
    )
    parser.add_argument("--kernel-template-name", dest="template_name", default=None)
    parser.add_argument("--kernel-template-namespace", dest="template_namespace", default=None)
    parser.add_argument("--verbose", action="store_true", help="log at DEBUG level")
    parser.add_argument("-t", "--toggle", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--dry-run", action="store_true", help="print the JupyterKernel instead of creating it"
    )
    return parser


def launcher_args_start(argv: Sequence[str]) -> int | None:
    """Return where the launcher's own arguments begin in a kernelspec argv, or ``None``.

    Recognised: ``kubeflow-launcher ...`` (any path), ``python -m <this module> ...`` and EG's
    ``python .../launch_kubernetes.py ...``, whose flags are the same.
    """
    if not argv:
        return None
    if os.path.basename(argv[0]) == PROGRAM:
        return 1
    if len(argv) >= 3 and argv[1] == "-m" and argv[2] == MODULE:
        return 3
    for i, arg in enumerate(argv[:2]):
        if os.path.basename(arg) in _EG_LAUNCHERS:
            return i + 1
    return None


def config_template(config: Mapping[str, Any], default_namespace: str) -> tuple[str, str] | None:
    """The JupyterKernelTemplate a kernelspec's ``process_proxy``/``kernel_provisioner`` config
    names, if any: the operator's ``kernel_template_name``/``kernel_template_namespace``, or a
    hand-written ``kernel_template: "[namespace/]name"``. Both front ends call it per launch."""
    name = str(config.get("kernel_template_name") or "").strip()
    if name:
        namespace = str(config.get("kernel_template_namespace") or "").strip()
        return (namespace or default_namespace, name)
    text = str(config.get("kernel_template") or "").strip()
    return parse_template_ref(text, default_namespace) if text else None


@dataclass(frozen=True)
class ArgvLaunch:
    """What a kernelspec's argv decides about one launch (see :func:`read_kernelspec_argv`)."""

    response_address: str
    public_key: str
    port_range: str
    template: tuple[str, str] | None
    #: the kernel's own command for the pod, when the argv is not a launcher's
    kernel_argv: list[str] | None = None
    spark_context_init_mode: str | None = None


def read_kernelspec_argv(
    argv: Sequence[str],
    kernel_id: str,
    defaults: ArgvLaunch,
    default_namespace: str,
    connection_file: str = "",
) -> ArgvLaunch:
    """Read a launch's formatted kernelspec argv; ``defaults`` holds what the caller knows.

    Called per launch by the process proxy (gateway) and the kernel provisioner (direct mode).
    A launcher argv (``kubeflow-launcher ...``, see :func:`launcher_args_start`) gives the
    response address, port range, public key and template (raising :class:`KernelRequestError`
    500 naming a bad argument or a kernel id that is not this launch's); any other argv is the
    kernel's own command, with the caller's connection file path made a placeholder again (the
    pod has its own) and the caller's interpreter path back to ``python``.
    """
    start = launcher_args_start(argv)
    if start is None:
        kernel_argv = [
            a.replace(connection_file, "{connection_file}") if connection_file else a for a in argv
        ]
        if kernel_argv and kernel_argv[0] == sys.executable:
            kernel_argv[0] = "python"  # jupyter_client swapped 'python' for its own
        return dataclasses.replace(defaults, kernel_argv=kernel_argv)
    try:
        args = parse_launcher_argv(argv[start:])
    except LauncherArgsError as err:
        raise KernelRequestError(500, f"kernelspec argv: {err}") from None
    if args.kernel_id != kernel_id:
        raise KernelRequestError(
            500,
            f"kernelspec argv gives kernel id {args.kernel_id!r}, not {kernel_id!r}:"
            " use --RemoteProcessProxy.kernel-id {kernel_id}",
        )
    template = defaults.template
    if args.template_name:
        template = (args.template_namespace or default_namespace, args.template_name)
    return ArgvLaunch(
        response_address=args.response_address,
        public_key=args.public_key or defaults.public_key,
        port_range=args.port_range,
        template=template,
        spark_context_init_mode=args.spark_context_init_mode,
    )


def parse_launcher_argv(args: Sequence[str]) -> LauncherArgs:
    """Parse the launcher's arguments (without the program); raise :class:`LauncherArgsError`."""
    ns = _parser().parse_args(list(args))
    for flag, value in (
        ("--RemoteProcessProxy.kernel-id", ns.kernel_id),
        ("--RemoteProcessProxy.response-address", ns.response_address),
        ("--RemoteProcessProxy.port-range", ns.port_range),
        ("--RemoteProcessProxy.public-key", ns.public_key),
    ):
        if value is not None and _PLACEHOLDER.fullmatch(value.strip()):
            raise LauncherArgsError(
                f"{PROGRAM}: {flag} is still the placeholder {value}: Enterprise Gateway fills "
                "it only when the process proxy derives from RemoteProcessProxy"
            )
    if ns.template_namespace and not ns.template_name:
        raise LauncherArgsError(
            f"{PROGRAM}: --kernel-template-namespace needs --kernel-template-name"
        )
    return LauncherArgs(
        kernel_id=ns.kernel_id,
        response_address=ns.response_address,
        port_range=ns.port_range,
        public_key=ns.public_key or None,
        spark_context_init_mode=ns.spark_mode,
        template_name=ns.template_name,
        template_namespace=ns.template_namespace,
        verbose=ns.verbose,
        dry_run=ns.dry_run,
    )


def standalone_input(args: LauncherArgs, env: Mapping[str, str], namespace: str) -> LaunchInput:
    """The launch the CLI performs: arguments plus the environment EG (or a user) gave it."""
    public_key = (
        args.public_key
        or env.get(launcher_env.PUBLIC_KEY)
        or env.get(launcher_env.EG_PUBLIC_KEY)
        or ""
    )
    if not public_key:
        raise LauncherArgsError(
            f"{PROGRAM}: no public key: pass --RemoteProcessProxy.public-key {{public_key}} or "
            "set PUBLIC_KEY (only the in-gateway launch can supply the gateway's key itself)"
        )
    template = None
    if args.template_name:
        template = (args.template_namespace or namespace, args.template_name)
    return LaunchInput(
        kernel_id=args.kernel_id,
        kernelspec_name=env.get(launcher_env.KERNEL_NAME, "") or "unknown",
        response_address=args.response_address,
        public_key=public_key,
        port_range=args.port_range,
        env=dict(env),
        image_name=env.get("KERNEL_IMAGE") or None,
        kernelspec_language=env.get(launcher_env.KERNEL_LANGUAGE, ""),
        template=template,
        spark_context_init_mode=args.spark_context_init_mode,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``kubeflow-launcher``; returns the exit status."""
    try:
        args = parse_launcher_argv(sys.argv[1:] if argv is None else argv)
    except LauncherArgsError as err:
        print(err, file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = GatewaySettings.from_env(os.environ)
        inp = standalone_input(args, os.environ, settings.gateway_namespace)
        if args.dry_run and not args.template_name:
            plan = plan_kernel(inp, settings)
            ref = GatewayRef(settings.gateway_name, settings.gateway_namespace)
            print(json.dumps(build_kernel_manifest(plan, None, ref), indent=2))
            return 0
        from .kube import KubeApi
        from .launcher import create_kernel, gateway_ref, read_template

        api = KubeApi.from_environment()
        if args.dry_run:
            plan = plan_kernel(inp, settings)
            template = read_template(api, plan.template) if plan.template else None
            manifest = build_kernel_manifest(plan, template, gateway_ref(api, settings))
            print(json.dumps(manifest, indent=2))
            return 0
        created = create_kernel(api, settings, inp)
    except (LauncherArgsError, SettingsError) as err:
        print(err, file=sys.stderr)
        return 2
    except KernelRequestError as err:
        print(f"{PROGRAM}: {err.message}", file=sys.stderr)
        return 1
    print(f"jupyterkernel/{created.plan.name} created in namespace {created.plan.namespace}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
