#!/usr/bin/env bash
# Installs the Debian 12 packages mii builds against, but only those that are missing,
# so that a second run costs nothing. Needs root (or sudo) when something is missing.
set -euo pipefail

# package -> a file that proves it is installed
declare -A probe=(
  [cmake]=/usr/bin/cmake
  [g++]=/usr/bin/g++
  [pkg-config]=/usr/bin/pkg-config
  [ninja-build]=/usr/bin/ninja
  [npm]=/usr/bin/npm
  [libboost1.81-dev]=/usr/include/boost/hana.hpp
  [librange-v3-dev]=/usr/include/range/v3/all.hpp
  [catch2]=/usr/include/catch2/catch.hpp
  [libsimdjson-dev]=/usr/include/simdjson.h
  [libpcre2-dev]=/usr/include/pcre2.h
  [libutf8proc-dev]=/usr/include/utf8proc.h
  # Hub ids: downloads from the Hugging Face Hub (src/io/hub_http.cpp)
  [libcurl4-openssl-dev]=/usr/include/x86_64-linux-gnu/curl/curl.h
  # chat templates: Python jinja2 is the oracle (tests/chat); curl drives mii-serve in tests/serve
  [python3-jinja2]=/usr/lib/python3/dist-packages/jinja2/__init__.py
  [curl]=/usr/bin/curl
  # tools/ci-reliability.sh: clang for the sanitizer and libFuzzer builds, llvm-symbolizer for their stacks
  [clang-14]=/usr/bin/clang++-14
  [libclang-rt-14-dev]=/usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a
  [llvm-14]=/usr/lib/llvm-14/bin/llvm-symbolizer
)
missing=()
for pkg in "${!probe[@]}"; do
  [[ -e ${probe[$pkg]} ]] || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "install-deps: installing ${missing[*]}" >&2
sudo=""
if [[ $(id -u) != 0 ]]; then
  command -v sudo >/dev/null || { echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
