#!/usr/bin/env bash
# Install what the image builds and tests (make images, tests/images, the sandbox's podman
# runtime) need when no Docker engine runs: Debian's podman, runc (crun cannot set rlimits on
# our CI machines, see images/podman/containers.conf) and mmdebstrap (the local base image).
# Skipped when all three exist; quiet; safe to call from `make` on every run.
set -euo pipefail

say() { echo "install-podman: $*"; }

missing=()
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || [ -x /usr/sbin/runc ] || missing+=(runc)
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    say "no apt-get here; install ${missing[*]} yourself (the image tests will skip)"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
        say "not root and no sudo: cannot install ${missing[*]} (the image tests will skip)"
        exit 0
    fi
fi
say "installing ${missing[*]} (apt-get)"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# uidmap, slirp4netns and fuse-overlayfs are podman's recommends that rootless use needs.
$SUDO apt-get install -y -qq --no-install-recommends podman runc mmdebstrap uidmap \
    slirp4netns fuse-overlayfs >/dev/null
