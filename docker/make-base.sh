#!/usr/bin/env bash
# Make a local base image (Debian bookworm, minbase, with python3 and venv) where no image can be
# pulled: debootstrap from the Debian mirror, then `docker import`. About 40 s. Needs root.
#   bash docker/make-base.sh [TAG]          # default TAG: agentgym-base:bookworm
set -euo pipefail
tag=${1:-agentgym-base:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv bookworm "$root" "$mirror" >/dev/null
tar -C "$root" -c . | docker import - "$tag" >/dev/null
echo "$tag"
