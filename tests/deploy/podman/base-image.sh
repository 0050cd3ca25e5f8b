#!/usr/bin/env bash
# Makes a stand-in for python:3.11-slim-bookworm from Debian's packages, since
# no registry image can be pulled: debootstrap bookworm, CPython 3.11 with pip,
# imported into podman's image store as TAG. The tests key TAG by a hash of
# this file, so an edited recipe builds a new base and an unchanged one is
# reused from the store.
#   base-image.sh TAG MIRROR      (MIRROR: the machine's own Debian mirror)
set -euo pipefail
tag=$1
mirror=$2

rootfs=$(mktemp -d /var/tmp/datadog-cnm-exporter-base.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
# mktemp makes it 0700; as the image's / that would lock out every non-root user.
chmod 0755 "$rootfs"

debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
chroot "$rootfs" sh -c '
  set -e
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    python3.11 python3-pip python3-venv ca-certificates >/dev/null
  apt-get clean
  rm -rf /var/lib/apt/lists/*
'
# What the official image has: python and pip on PATH, and pip allowed to
# install into the system interpreter (Debian refuses that by default).
ln -s /usr/bin/python3.11 "$rootfs/usr/local/bin/python"
ln -s /usr/bin/pip3 "$rootfs/usr/local/bin/pip"
rm -f "$rootfs/usr/lib/python3.11/EXTERNALLY-MANAGED"
# The build machine's resolver does not belong in the image.
: > "$rootfs/etc/resolv.conf"

tar -C "$rootfs" -c . | podman import --change 'CMD ["python"]' - "$tag" >/dev/null
