#!/usr/bin/env bash
# Make the local base image for podman builds from Debian packages (no registry needed):
#   mmdebstrap --variant=minbase bookworm (python3, python3-venv, ca-certificates) | podman import
# Skipped when the image already exists (delete it with `podman rmi` to remake it).
# Usage: scripts/make-base-image.sh [IMAGE]   (default localhost/elastic-jupyter/debian-base:bookworm)
set -euo pipefail

IMAGE="${1:-localhost/elastic-jupyter/debian-base:bookworm}"
SUITE="${DEBIAN_SUITE:-bookworm}"
HERE="$(cd "$(dirname "$0")/.." && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$HERE/images/podman/containers.conf}"

say() { echo "make-base-image: $*"; }

if podman image exists "$IMAGE"; then
    exit 0
fi
command -v mmdebstrap >/dev/null || { say "mmdebstrap is missing (scripts/install-podman.sh)"; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
say "building $IMAGE from Debian $SUITE packages (mmdebstrap, minbase)"
start=$SECONDS
mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates \
    --aptopt='Acquire::Retries "3"' \
    --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
    "$SUITE" "$work/rootfs.tar"
podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    "$work/rootfs.tar" "$IMAGE" >/dev/null
say "made $IMAGE in $((SECONDS - start)) s"
