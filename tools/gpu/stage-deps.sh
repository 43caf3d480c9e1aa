#!/usr/bin/env bash
# Run HERE (Debian 12, with network): downloads the Debian packages the build needs that the
# GPU machine lacks and unpacks them under .deps/ (git-ignored). Name .deps in `carry`; the GPU
# scripts point CMake at .deps/usr. Idempotent.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
deps=$root/.deps
[[ -f $deps/.complete ]] && exit 0
pkgs=(libsimdjson-dev libsimdjson14 libpcre2-dev libpcre2-8-0 libutf8proc-dev libutf8proc2 librange-v3-dev catch2)
tmp=$(mktemp -d)
(cd "$tmp" && apt-get download "${pkgs[@]}" >/dev/null)
mkdir -p "$deps"
for f in "$tmp"/*.deb; do dpkg-deb -x "$f" "$deps"; done
rm -rf "$tmp" "$deps"/usr/share/doc "$deps"/usr/share/man
touch "$deps/.complete"
du -sh "$deps"
