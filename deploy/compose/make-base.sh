#!/bin/sh
# A Debian bookworm base image made from Debian's own packages, for machines that cannot pull from Docker Hub:
#   deploy/compose/make-base.sh [TAG]     (default handover-base:bookworm; needs root or the docker group, and
#                                          mmdebstrap: apt-get install mmdebstrap)
# then build with --build-arg BASE_IMAGE=TAG (`make compose-check` does both by itself).
set -eu
tag="${1:-handover-base:bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
command -v mmdebstrap > /dev/null || { echo "mmdebstrap is missing: apt-get install mmdebstrap" >&2; exit 2; }
# --variant=minbase: Essential packages and apt only; the Dockerfile installs what else each image needs.
mmdebstrap --quiet --variant=minbase bookworm - "deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main" | docker import - "$tag"
echo "made $tag"
