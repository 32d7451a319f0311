#!/usr/bin/env bash
# Build the container images (`make images`): with Docker where a Docker engine runs (`docker
# info` answers), else with podman. Usage:
#   scripts/build-images.sh [--push] [NAME...]      NAME: gateway operator kernel-py kernel-py-gpu
#                                                  notebook
# Environment:
#   IMAGE_PREFIX  repository prefix (default elastic-jupyter; e.g. registry.example.com/me)
#   TAG           image tag (default dev)
#   ENGINE        docker or podman (default: detected as above)
#   BASE_IMAGE    base of gateway/operator/kernel-py (default: the Dockerfiles' python:3.11-slim
#                 with Docker; with podman a base made here from Debian packages, see
#                 scripts/make-base-image.sh, as our CI machines reach no image registry)
#   GPU_BASE_IMAGE  base of kernel-py-gpu (default: the Dockerfile's CUDA image)
#   BUILD_CA_BUNDLE  CA bundle mounted (read-only, never copied) into podman builds so pip can
#                 reach the package index through this machine's TLS setup (default
#                 /etc/ssl/certs/ca-certificates.crt when it exists; set empty to disable)
# Without NAMEs: gateway, operator and kernel-py, plus kernel-py-gpu with Docker (or when
# GPU_BASE_IMAGE is set) and notebook with Docker (its base is the Jupyter Docker Stacks'
# base-notebook, which the Debian base made for podman cannot stand in for; NOTEBOOK_BASE_IMAGE
# names another). Every image gets the label org.elastic-jupyter.inputs, a hash of what
# it is built from; an image whose label matches is not rebuilt (the layer cache then covers
# partial changes: dependencies are installed before our wheel is copied in).
set -euo pipefail

HERE="$(cd "$(dirname "$0")/.." && pwd)"
cd "$HERE"
PREFIX="${IMAGE_PREFIX:-elastic-jupyter}"
TAG="${TAG:-dev}"
CONTEXT="$HERE/build/images/context"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$HERE/images/podman/containers.conf}"
PUSH=0
NAMES=()
for arg in "$@"; do
    case "$arg" in
        --push) PUSH=1 ;;
        gateway|operator|kernel-py|kernel-py-gpu|notebook) NAMES+=("$arg") ;;
        *) echo "build-images: unknown argument $arg" >&2; exit 2 ;;
    esac
done

say() { echo "build-images: $*"; }

ENGINE="${ENGINE:-}"
if [ -z "$ENGINE" ]; then
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        ENGINE=docker
    elif command -v podman >/dev/null 2>&1; then
        ENGINE=podman
    else
        say "neither a running Docker engine nor podman here (scripts/install-podman.sh)"
        exit 1
    fi
fi

if [ ${#NAMES[@]} -eq 0 ]; then
    NAMES=(gateway operator kernel-py)
    if [ "$ENGINE" = docker ] || [ -n "${GPU_BASE_IMAGE:-}" ]; then NAMES+=(kernel-py-gpu); fi
    if [ "$ENGINE" = docker ] || [ -n "${NOTEBOOK_BASE_IMAGE:-}" ]; then NAMES+=(notebook); fi
fi

BASE="${BASE_IMAGE:-}"
if [ -z "$BASE" ] && [ "$ENGINE" = podman ]; then
    BASE=localhost/elastic-jupyter/debian-base:bookworm
    scripts/make-base-image.sh "$BASE"
fi

inputs_hash() {  # what an image is built from: our sources, its Dockerfile, its base, the engine
    local name="$1" base="$2" base_id=""
    if [ -n "$base" ]; then base_id="$($ENGINE image inspect --format '{{.Id}}' "$base" 2>/dev/null || true)"; fi
    {
        git ls-files -co --exclude-standard -- pyproject.toml README.md crds gateway_plugin \
            operator kernel_launcher sandbox provisioner "images/$name/Dockerfile" | sort | xargs sha256sum
        echo "base=$base $base_id engine=$ENGINE"
    } | sha256sum | cut -c1-16
}

# Hash the inputs before building the wheel: sources edited during the build then count as
# changed next time instead of being taken as built.
declare -A HASHES
UP_TO_DATE=()
for name in "${NAMES[@]}"; do
    base="$BASE"
    if [ "$name" = kernel-py-gpu ]; then base="${GPU_BASE_IMAGE:-}"; fi
    if [ "$name" = notebook ]; then base="${NOTEBOOK_BASE_IMAGE:-}"; fi
    HASHES[$name]="$(inputs_hash "$name" "$base")"
    have="$($ENGINE image inspect --format '{{index .Config.Labels "org.elastic-jupyter.inputs"}}' \
        "$PREFIX/$name:$TAG" 2>/dev/null || true)"
    if [ "$have" = "${HASHES[$name]}" ]; then UP_TO_DATE+=("$name"); fi
done
if [ "$PUSH" = 0 ] && [ ${#UP_TO_DATE[@]} -eq ${#NAMES[@]} ]; then
    say "up to date: ${NAMES[*]}"
    exit 0
fi

# The build context: our wheel (built once for every image) and one requirements file per extra.
rm -rf "$CONTEXT"
mkdir -p "$CONTEXT"
PY="$HERE/.venv/bin/python"
[ -x "$PY" ] || PY="$(command -v python3)"
"$PY" -m pip wheel --quiet --disable-pip-version-check --no-deps -w "$CONTEXT" "$HERE" 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" || true
ls "$CONTEXT"/elastic_jupyter-*.whl >/dev/null
"$PY" - "$CONTEXT" <<'PY'
import sys, tomllib
from pathlib import Path
extras = tomllib.loads(Path("pyproject.toml").read_text())["project"]["optional-dependencies"]
for extra, requirements in extras.items():
    Path(sys.argv[1], f"requirements-{extra}.txt").write_text("".join(f"{r}\n" for r in requirements))
PY

for name in "${NAMES[@]}"; do
    image="$PREFIX/$name:$TAG"
    base="$BASE"
    if [ "$name" = kernel-py-gpu ]; then base="${GPU_BASE_IMAGE:-}"; fi
    if [ "$name" = notebook ]; then base="${NOTEBOOK_BASE_IMAGE:-}"; fi
    hash="${HASHES[$name]}"
    have="$($ENGINE image inspect --format '{{index .Config.Labels "org.elastic-jupyter.inputs"}}' \
        "$image" 2>/dev/null || true)"
    if [ "$have" = "$hash" ]; then
        say "$image is up to date ($hash)"
    else
        args=(build -f "images/$name/Dockerfile" -t "$image" --label "org.elastic-jupyter.inputs=$hash")
        if [ -n "$base" ]; then args+=(--build-arg "BASE=$base"); fi
        ca="${BUILD_CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}"
        if [ "$ENGINE" = podman ] && [ -n "$ca" ] && [ -f "$ca" ]; then
            args+=(-v "$ca:/run/build-ca.crt:ro")
        fi
        # A base made here exists only locally: never try a registry for it.
        case "$base" in localhost/*) args+=(--pull=never) ;; esac
        old="$($ENGINE image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"
        say "building $image with $ENGINE${base:+ on $base}"
        start=$SECONDS
        $ENGINE "${args[@]}" "$CONTEXT"
        size="$($ENGINE image inspect --format '{{.Size}}' "$image")"
        say "built $image in $((SECONDS - start)) s, $((size / 1000000)) MB"
        # The image this one replaces would stay behind untagged: remove it (not its layers
        # that the new image or the build cache still use).
        new="$($ENGINE image inspect --format '{{.Id}}' "$image")"
        if [ -n "$old" ] && [ "$old" != "$new" ]; then $ENGINE rmi "$old" >/dev/null 2>&1 || true; fi
    fi
    if [ "$PUSH" = 1 ]; then
        say "pushing $image"
        $ENGINE push "$image"
    fi
done
