#!/usr/bin/env bash
# Installs everything clearcap needs to build, run and test, from Debian 12's
# archive. Idempotent: packages already present are not fetched again.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: run as root (apt-get install needs it)" >&2
  exit 1
fi

BUILD_PKGS=(
  build-essential cmake ninja-build pkg-config clang
  libbpf-dev bpftool libelf-dev zlib1g-dev linux-libc-dev
  libcapstone-dev  # x86-64 decoding: where uprobes sit (core/probe_placement)
  libzstd-dev libsimdjson-dev libreaderwriterqueue-dev libconcurrentqueue-dev
  libexpected-dev libcli11-dev libfmt-dev libspdlog-dev
  libgtest-dev libbenchmark-dev
  libprotobuf-dev protobuf-compiler libboost-dev libnghttp2-dev
  libhttp-parser-dev zlib1g-dev libbrotli-dev  # HTTP/1 framing; Content-Encoding decoding (proto/http)
  libssl-dev
  libpcap-dev
  libnss3-dev libnspr4-dev libgnutls28-dev  # test clients of the nss and gnutls modules (tests/testprogs, tests/bpf/module)
  valgrind  # callgrind.h for bench/gate/hotpath_gate; callgrind runs the instruction-count gate
  clang-14 libclang-rt-14-dev  # libFuzzer and the sanitizer runtimes: scripts/fuzz.sh (fuzz/)
)
# Real programs the privileged tests drive on loopback.
TEST_PKGS=(nginx-light curl openssl python3 ca-certificates zstd tshark python3-protobuf python3-websocket python3-websockets
  prometheus  # promtool judges GET /metrics
  gnutls-bin wget  # GnuTLS clients (gnutls-cli; Debian's wget is built with GnuTLS)
  libnss3-tools  # tstclnt, an NSS client
  python3-h2 nghttp2-client)  # HTTP/2 clients: several streams on one connection (python3-h2), h2load

# Only tools/perf-harness needs these; it installs them itself (--perf), so
# the test run does not.
PERF_PKGS=(wrk nghttp2-client bpftrace nginx-light openssl)

want=("${BUILD_PKGS[@]}")
if [ "${1:-}" = "--test" ]; then
  want+=("${TEST_PKGS[@]}")
  # node: any build will do (the image's own, or Debian's).
  command -v node >/dev/null 2>&1 || want+=(nodejs)
elif [ "${1:-}" = "--perf" ]; then
  want+=("${PERF_PKGS[@]}")
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#want[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d keeps the nginx package from starting a system nginx on :80.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}"
