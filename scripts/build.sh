#!/usr/bin/env bash
# Installs the build dependencies and builds clearcap into build/ (the binary
# is build/clearcap). Safe to run again: it rebuilds only what changed.
# Pass --test to also install what the test suite needs.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${CLEARCAP_SKIP_DEPS:-0}" = 1 ] || scripts/install-deps.sh "$@"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-RelWithDebInfo}" >/dev/null
cmake --build build -j"$(nproc)"
echo "build: build/clearcap ready"
