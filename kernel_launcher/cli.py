"""``kubeflow-kernel-launcher``: the command every kernel pod runs.

The operator puts this command in the kernel pod; Enterprise Gateway's values arrive either
as flags (EG's launcher spellings, ``--RemoteProcessProxy.kernel-id {kernel_id}`` ...) or as
environment variables (names in ``env.py``). ``main`` validates all of it before anything
starts, so a mistake ends the process with one log line saying what is wrong and how to fix
it, then hands a ``LaunchConfig`` to ``launcher.launch``.

Usage::

    kubeflow-kernel-launcher [--kernel-id ID] [--response-address HOST:PORT]
        [--public-key KEY] [--port-range L..U] [-- KERNEL ARGV with {connection_file}]

The kernel argv is, in order of precedence: the arguments after ``--``, ``--kernel-argv`` /
``KERNEL_ARGV`` (a JSON list), else IPython with this launcher's interpreter.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import NoReturn

from . import env
from .errors import EXIT_NOT_FOUND, LauncherError
from .kernel_process import DEFAULT_STOP_TIMEOUT
from .launcher import LaunchConfig, launch
from .payload import DEFAULT_RESPONSE_TIMEOUT
from .ports import BIND_ALL, parse_port_range

log = logging.getLogger("elastic_jupyter.kernel_launcher")

PROG = "kubeflow-kernel-launcher"
LOG_FORMAT = "%(asctime)s.%(msecs)03d %(levelname)s kernel-launcher[%(process)d] %(message)s"


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors become one LauncherError line instead of usage + exit."""

    def error(self, message: str) -> NoReturn:
        raise LauncherError(f"{message}; run '{PROG} --help' for the accepted flags")


def build_parser() -> argparse.ArgumentParser:
    """The flags; each help text names the env variable used when the flag is absent."""
    parser = _Parser(
        prog=PROG,
        description=(
            "Start a Jupyter kernel inside a Kubernetes pod and report its connection info to "
            "Jupyter Enterprise Gateway (payload version 1). Every flag falls back to the "
            "environment variable named in its help."
        ),
        epilog=(
            "Kernel argv: arguments after '--' (e.g. '-- python -m bash_kernel -f "
            "{connection_file}'), else --kernel-argv/KERNEL_ARGV, else IPython "
            "('<this python> -m ipykernel_launcher -f {connection_file}'). "
            "See docs/kernel-images.md."
        ),
        allow_abbrev=False,
    )
    add = parser.add_argument
    add(
        "--RemoteProcessProxy.kernel-id",
        "--kernel-id",
        dest="kernel_id",
        metavar="ID",
        help=f"kernel id registered with the gateway (env {env.KERNEL_ID})",
    )
    add(
        "--RemoteProcessProxy.response-address",
        "--response-address",
        dest="response_address",
        metavar="HOST:PORT",
        help=f"gateway response address (env {env.RESPONSE_ADDRESS}, {env.EG_RESPONSE_ADDRESS})",
    )
    add(
        "--RemoteProcessProxy.public-key",
        "--public-key",
        dest="public_key",
        metavar="KEY",
        help=f"gateway RSA public key, base64 DER (env {env.PUBLIC_KEY}, {env.EG_PUBLIC_KEY})",
    )
    add(
        "--RemoteProcessProxy.port-range",
        "--port-range",
        dest="port_range",
        metavar="L..U",
        help=f"ports to use, 0..0 = any (env {env.PORT_RANGE}, {env.EG_PORT_RANGE}; default 0..0)",
    )
    add(
        "--RemoteProcessProxy.kernel-class-name",
        "--kernel-class-name",
        dest="kernel_class_name",
        metavar="CLASS",
        help=f"IPython kernel class, default argv only (env {env.KERNEL_CLASS_NAME})",
    )
    add(
        "--RemoteProcessProxy.spark-context-initialization-mode",
        "--spark-context-initialization-mode",
        dest="spark_mode",
        help=argparse.SUPPRESS,
    )
    add(
        "--kernel-argv",
        dest="kernel_argv",
        metavar="JSON",
        help=f"kernel argv as a JSON list with {{connection_file}} (env {env.KERNEL_ARGV})",
    )
    add(
        "--pod-ip",
        dest="pod_ip",
        metavar="IP",
        help=f"address reported as 'ip' (env {env.KERNEL_POD_IP}; default: route to gateway)",
    )
    add(
        "--bind-ip",
        dest="bind_ip",
        metavar="IP",
        help=f"address the kernel's sockets bind (env {env.KERNEL_BIND_IP}; default 0.0.0.0)",
    )
    add(
        "--response-timeout",
        dest="response_timeout",
        metavar="SECONDS",
        help=f"retry delivery for this long (env {env.KERNEL_LAUNCHER_RESPONSE_TIMEOUT}; "
        f"default {DEFAULT_RESPONSE_TIMEOUT:g})",
    )
    add(
        "--stop-timeout",
        dest="stop_timeout",
        metavar="SECONDS",
        help=f"SIGTERM→SIGKILL delay (env {env.KERNEL_LAUNCHER_STOP_TIMEOUT}; "
        f"default {DEFAULT_STOP_TIMEOUT:g})",
    )
    add(
        "--log-level",
        dest="log_level",
        metavar="LEVEL",
        help=f"DEBUG, INFO, WARNING, ERROR (env {env.KERNEL_LAUNCHER_LOG_LEVEL}; default INFO)",
    )
    return parser


def _pick(flag: str | None, environ: Mapping[str, str], *names: str) -> tuple[str | None, str]:
    """The first value set among the flag and the env names, with where it came from."""
    if flag is not None:
        return flag, "command line"
    for name in names:
        value = environ.get(name)
        if value:
            return value, name
    return None, " / ".join(names)


def _seconds(value: str | None, source: str, default: float) -> float:
    if value is None:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise LauncherError(
            f"invalid duration {value!r} ({source}): give a positive number of seconds, e.g. 30"
        )
    return seconds


def _ipv4(value: str, source: str) -> str:
    """``value`` if it is a dotted IPv4 address; else a LauncherError saying what to give."""
    import socket  # already loaded by ports; imported here to keep this module's imports light

    try:
        socket.inet_pton(socket.AF_INET, value)
    except OSError:
        raise LauncherError(
            f"invalid bind address {value!r} ({source}): give an IPv4 address, e.g. 0.0.0.0 "
            "(every interface) or the pod's IP"
        ) from None
    return value


def find_executable(command: str) -> str | None:
    """``shutil.which`` without importing shutil (and bz2, lzma) on the launch path."""
    if os.sep in command:
        candidates = [command]
    else:
        path = os.environ.get("PATH", os.defpath)
        candidates = [os.path.join(entry or ".", command) for entry in path.split(os.pathsep)]
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def default_kernel_argv(kernel_class_name: str | None) -> list[str]:
    """IPython with the launcher's own interpreter, so one ``pip install`` makes a kernel image."""
    if importlib.machinery.PathFinder.find_spec("ipykernel_launcher") is None:
        raise LauncherError(
            f"kernel command not found: the default kernel is IPython but ipykernel is not "
            f"installed for {sys.executable}; pip install ipykernel, or choose another kernel "
            f"with {env.KERNEL_ARGV} or arguments after --",
            EXIT_NOT_FOUND,
        )
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", env.CONNECTION_FILE_PLACEHOLDER]
    if kernel_class_name:
        argv.append(f"--IPKernelApp.kernel_class={kernel_class_name}")
    return argv


def resolve_kernel_argv(
    after_dashes: Sequence[str], argv_json: str | None, source: str, class_name: str | None
) -> list[str]:
    """Choose and check the kernel argv; raise LauncherError when it cannot work."""
    if after_dashes:
        argv, origin = list(after_dashes), "the arguments after --"
    elif argv_json:
        origin = source
        try:
            parsed = json.loads(argv_json)
        except ValueError:
            parsed = None
        if not (isinstance(parsed, list) and parsed and all(isinstance(a, str) for a in parsed)):
            raise LauncherError(
                f"invalid kernel argv ({source}): expected a JSON list of strings, e.g. "
                '\'["python", "-m", "bash_kernel", "-f", "{connection_file}"]\''
            )
        argv = parsed
    else:
        return default_kernel_argv(class_name)
    if not any(env.CONNECTION_FILE_PLACEHOLDER in arg for arg in argv):
        raise LauncherError(
            f"the kernel argv ({origin}) has no {env.CONNECTION_FILE_PLACEHOLDER}: the kernel "
            "must read the connection file the launcher writes; add e.g. "
            f"'-f {env.CONNECTION_FILE_PLACEHOLDER}'"
        )
    if find_executable(argv[0]) is None:
        where = "does not exist" if os.sep in argv[0] else "is not on PATH"
        raise LauncherError(
            f"kernel command not found: {argv[0]!r} {where}; install the kernel in the image or "
            f"fix the kernel argv ({origin})",
            EXIT_NOT_FOUND,
        )
    return argv


def parse_config(args: Sequence[str], environ: Mapping[str, str]) -> LaunchConfig:
    """Validate flags and env into a LaunchConfig; raise LauncherError on the first mistake."""
    from .payload import load_public_key, parse_response_address  # crypto import is lazy

    args = list(args)
    after_dashes: list[str] = []
    if "--" in args:
        split = args.index("--")
        args, after_dashes = args[:split], args[split + 1 :]
    ns = build_parser().parse_args(args)

    kernel_id, source = _pick(ns.kernel_id, environ, env.KERNEL_ID)
    if not kernel_id or kernel_id.strip() != kernel_id or kernel_id.startswith("{"):
        raise LauncherError(
            f"no usable kernel id ({source}): pass --kernel-id {{kernel_id}} or set "
            f"{env.KERNEL_ID} to the id the gateway registered"
        )
    address, source = _pick(
        ns.response_address, environ, env.RESPONSE_ADDRESS, env.EG_RESPONSE_ADDRESS
    )
    if address is None:
        raise LauncherError(
            f"no response address: pass --response-address {{response_address}} or set "
            f"{env.RESPONSE_ADDRESS} to the gateway's host:port (usually port 8877)"
        )
    response_address = parse_response_address(address, source)
    key_text, source = _pick(ns.public_key, environ, env.PUBLIC_KEY, env.EG_PUBLIC_KEY)
    if key_text is None:
        raise LauncherError(
            f"no public key: pass --public-key {{public_key}} or set {env.PUBLIC_KEY} to the "
            "gateway's key; this launcher only sends encrypted connection info (payload v1)"
        )
    public_key = load_public_key(key_text, source)
    range_text, source = _pick(ns.port_range, environ, env.PORT_RANGE, env.EG_PORT_RANGE)
    port_range = parse_port_range(range_text or "0..0", source)
    class_name, _ = _pick(ns.kernel_class_name, environ, env.KERNEL_CLASS_NAME)
    argv_json, source = _pick(ns.kernel_argv, environ, env.KERNEL_ARGV)
    kernel_argv = resolve_kernel_argv(after_dashes, argv_json, source, class_name)
    if ns.spark_mode not in (None, "", "none"):
        log.warning("spark context initialization mode %r is not supported; ignored", ns.spark_mode)
    timeout_text, source = _pick(ns.response_timeout, environ, env.KERNEL_LAUNCHER_RESPONSE_TIMEOUT)
    response_timeout = _seconds(timeout_text, source, DEFAULT_RESPONSE_TIMEOUT)
    stop_text, source = _pick(ns.stop_timeout, environ, env.KERNEL_LAUNCHER_STOP_TIMEOUT)
    stop_timeout = _seconds(stop_text, source, DEFAULT_STOP_TIMEOUT)
    pod_ip, _ = _pick(ns.pod_ip, environ, env.KERNEL_POD_IP)
    bind_ip, source = _pick(ns.bind_ip, environ, env.KERNEL_BIND_IP)
    bind_ip = _ipv4(bind_ip, source) if bind_ip else BIND_ALL
    launch_token = _launch_token(environ.get(env.KERNEL_LAUNCH_TOKEN_FILE))
    return LaunchConfig(
        kernel_id=kernel_id,
        response_address=response_address,
        public_key=public_key,
        port_range=port_range,
        kernel_argv=tuple(kernel_argv),
        pod_ip=pod_ip,
        bind_ip=bind_ip,
        response_timeout=response_timeout,
        stop_timeout=stop_timeout,
        launch_token=launch_token,
    )


def pool_common(args: Sequence[str], environ: Mapping[str, str]) -> dict[str, object]:
    """The settings a pool kernel shares with any launch (no kernel id, address or key yet)."""
    args = list(args)
    after_dashes: list[str] = []
    if "--" in args:
        split = args.index("--")
        args, after_dashes = args[:split], args[split + 1 :]
    ns = build_parser().parse_args(args)
    range_text, source = _pick(ns.port_range, environ, env.PORT_RANGE, env.EG_PORT_RANGE)
    class_name, _ = _pick(ns.kernel_class_name, environ, env.KERNEL_CLASS_NAME)
    argv_json, source_argv = _pick(ns.kernel_argv, environ, env.KERNEL_ARGV)
    warm = not after_dashes and not argv_json and not class_name
    kernel_argv = resolve_kernel_argv(after_dashes, argv_json, source_argv, class_name)
    timeout_text, t_source = _pick(
        ns.response_timeout, environ, env.KERNEL_LAUNCHER_RESPONSE_TIMEOUT
    )
    stop_text, s_source = _pick(ns.stop_timeout, environ, env.KERNEL_LAUNCHER_STOP_TIMEOUT)
    pod_ip, _ = _pick(ns.pod_ip, environ, env.KERNEL_POD_IP)
    bind_ip, b_source = _pick(ns.bind_ip, environ, env.KERNEL_BIND_IP)
    return {
        "port_range": parse_port_range(range_text or "0..0", source),
        "kernel_argv": tuple(kernel_argv),
        "warm": warm,
        "pod_ip": pod_ip,
        "bind_ip": _ipv4(bind_ip, b_source) if bind_ip else BIND_ALL,
        "response_timeout": _seconds(timeout_text, t_source, DEFAULT_RESPONSE_TIMEOUT),
        "stop_timeout": _seconds(stop_text, s_source, DEFAULT_STOP_TIMEOUT),
    }


def _launch_token(path: str | None) -> str | None:
    """The launch token from the kernel's mounted Secret, or None when none is configured."""
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            token = handle.read().strip()
    except OSError as exc:
        raise LauncherError(
            f"cannot read the launch token {path!r} ({env.KERNEL_LAUNCH_TOKEN_FILE}): "
            f"{exc.strerror}; the kernel's Secret must be mounted there (the operator does this "
            "for kernels the gateway starts)"
        ) from None
    if not token:
        raise LauncherError(f"the launch token file {path!r} is empty")
    return token


def _log_level(args: Sequence[str], environ: Mapping[str, str]) -> int:
    """The log level, read before full parsing so that parsing errors are logged too."""
    value = environ.get(env.KERNEL_LAUNCHER_LOG_LEVEL, "INFO")
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--log-level" and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--log-level="):
            value = arg.split("=", 1)[1]
    level = logging.getLevelName(value.upper())
    return level if isinstance(level, int) else logging.INFO


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point; returns the exit code (the kernel's, or an error's)."""
    args = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=_log_level(args, os.environ),
        format=LOG_FORMAT,
        datefmt="%Y-%m-%dT%H:%M:%S",
        stream=sys.stderr,
    )
    try:
        if os.environ.get(env.KERNEL_WARM_POOL, "") in ("1", "true"):
            from . import warm  # only pool kernels need it

            pool = warm.parse_pool_config(args, os.environ, pool_common)
            log.info("pool kernel (claim port %d), waiting to be claimed", pool.claim_port)
            return warm.launch_pooled(pool)
        config = parse_config(args, os.environ)
        log.info(
            "launching kernel %s (name %r, language %r, user %r), gateway %s:%d, ports %s",
            config.kernel_id,
            os.environ.get(env.KERNEL_NAME, ""),
            os.environ.get(env.KERNEL_LANGUAGE, ""),
            os.environ.get(env.KERNEL_USERNAME, ""),
            *config.response_address,
            config.port_range,
        )
        return launch(config)
    except LauncherError as exc:
        log.error("%s", exc)
        return exc.exit_code
    except KeyboardInterrupt:
        log.error("interrupted before the kernel started")
        return 130
