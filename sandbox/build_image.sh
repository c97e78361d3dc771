#!/usr/bin/env bash
# Build the docker sandbox image from Debian packages: a minimal bookworm root file system with
# python3 and pytest, made by debootstrap and loaded with `docker import` (no registry needed).
#
# usage: bash sandbox/build_image.sh [--force] [--image NAME]
#   --image NAME  image to create (default: $ORCH_SANDBOX_IMAGE, else orchestrator-sandbox:latest)
#   --force       rebuild even when the image already exists
# Needs root (debootstrap), a running Docker engine and a Debian mirror; takes about two minutes.
set -euo pipefail

image="${ORCH_SANDBOX_IMAGE:-orchestrator-sandbox:latest}"
force=0
suite=bookworm
packages=python3,python3-pytest

while [ $# -gt 0 ]; do
    case "$1" in
        --force) force=1 ;;
        --image) image="${2:?--image needs a name}"; shift ;;
        -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build_image.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
    shift
done

die() { echo "build_image.sh: $*" >&2; exit 1; }

command -v docker >/dev/null || die "the docker command is missing; install Docker first"
docker info >/dev/null 2>&1 || die "no Docker engine answers; start it (e.g. 'service docker start') and retry"

if [ "$force" = 0 ] && docker image inspect "$image" >/dev/null 2>&1; then
    echo "image $image already exists (use --force to rebuild)"
    exit 0
fi

[ "$(id -u)" = 0 ] || die "debootstrap needs root; run this script as root (e.g. with sudo)"

# The mirror comes from apt's own configuration, so the build uses whatever mirror this machine
# already reaches: the first Debian archive URI in deb822 .sources files, else in sources.list.
mirror_from_apt() {
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri=$(awk 'tolower($1)=="uris:" {for (i=2;i<=NF;i++) print $i}' "$f" \
              | grep -v -- '-security' | grep '/debian/\?$' | head -n1 || true)
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        uri=$(awk '$1=="deb" {for (i=2;i<=NF;i++) if ($i ~ /^[a-z+]+:\/\//) {print $i; break}}' "$f" \
              | grep -v -- '-security' | grep '/debian/\?$' | head -n1 || true)
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
    echo "http://deb.debian.org/debian"
}

if ! command -v debootstrap >/dev/null; then
    echo "installing debootstrap with apt-get"
    apt-get install -y debootstrap >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y debootstrap >/dev/null; } \
        || die "could not install debootstrap; install it with your package manager"
fi

mirror=$(mirror_from_apt)
rootfs=$(mktemp -d /var/tmp/orchestrator-rootfs.XXXXXX)
trap 'rm -rf "$rootfs" "$rootfs.log"' EXIT

started=$(date +%s)
echo "debootstrap $suite from $mirror into $rootfs (packages: $packages)"
debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
    || { tail -n 20 "$rootfs.log" >&2; die "debootstrap failed (log above)"; }

# What the sandbox never needs: package caches and lists, docs; keeps the image small.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
       "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
[ -x "$rootfs/usr/bin/python3" ] || die "the root file system has no python3"

previous=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
tar -C "$rootfs" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
    --change 'LABEL org.orchestrator.sandbox=1' \
    --change 'WORKDIR /work' \
    - "$image" >/dev/null
docker run --rm --network none "$image" python3 -c 'import pytest, sys; print("python", sys.version.split()[0], "pytest", pytest.__version__)'
if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect --format '{{.Id}}' "$image")" ]; then
    docker rmi "$previous" >/dev/null 2>&1 || true  # the replaced build, unless something still uses it
fi
echo "built $image in $(( $(date +%s) - started )) s"
