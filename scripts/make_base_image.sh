#!/usr/bin/env bash
# A stand-in for the Python base image the Dockerfiles name (PYTHON_IMAGE, by default
# python:3.11.14-slim-bookworm), built from Debian's own packages, for a Docker host
# that cannot pull from a registry. `make images` uses it only when the real base is
# neither present nor pullable; everyone else builds on the real one.
#
#   scripts/make_base_image.sh [TAG]      # default TAG: percept/python-base:3.11-bookworm
#
# What it holds: Debian bookworm (debootstrap --variant=minbase) + python3.11,
# python3.11-venv and python3-distutils (ensurepip, so `python -m venv` works),
# ca-certificates plus the CAs the host added to its own trust store, passwd
# (groupadd/useradd for the images' non-root user), and `python`/`python3` on the
# PATH, as the official image has them. No compiler. Needs root, debootstrap and a
# Debian mirror (DEBIAN_MIRROR); about a minute.
set -euo pipefail

TAG=${1:-percept/python-base:3.11-bookworm}
SUITE=${DEBIAN_SUITE:-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if docker image inspect "$TAG" >/dev/null 2>&1 && [[ -z ${FORCE:-} ]]; then
    echo "$TAG is already here (FORCE=1 rebuilds it)"
    exit 0
fi
command -v debootstrap >/dev/null || {
    echo "debootstrap is missing: apt-get install -y debootstrap" >&2
    exit 1
}

root=$(mktemp -d /tmp/percept-base.XXXXXX)
trap 'rm -rf "$root"' EXIT

debootstrap --variant=minbase \
    --include=python3.11,python3.11-venv,python3-distutils,ca-certificates,passwd \
    "$SUITE" "$root" "$MIRROR"

ln -sf /usr/bin/python3.11 "$root/usr/local/bin/python"
ln -sf /usr/bin/python3.11 "$root/usr/local/bin/python3"
# The host's own added CAs (e.g. a TLS-inspecting proxy between it and PyPI): pip in a
# build trusts what the host trusts.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >/dev/null
fi
# As small as a slim image: no package lists, caches, docs or man pages.
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/*.log \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/tmp/*

tar -C "$root" --numeric-owner -c . |
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        --message "stand-in for python:3.11-slim-bookworm, from Debian packages" \
        - "$TAG"
docker image ls "$TAG"
