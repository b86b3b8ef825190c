#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/fuzz_<name>.cpp) with clang, address and
# undefined-behaviour sanitizers into build-fuzz/, then runs each for a fixed
# time on a copy of its seed corpus (fuzz/corpus/<name>/; the committed
# corpus is never written). Fails when a target crashes, a sanitizer reports
# or an input times out; the input that did it is kept in
# build-fuzz/runs/<name>/ (crash-*, leak-*, timeout-*, oom-*), and its log
# next to it.
#
#   scripts/fuzz.sh                 every target, FUZZ_SECONDS each
#   scripts/fuzz.sh config_body     only the targets named
#   FUZZ_SECONDS=300 scripts/fuzz.sh capture_reader
#
# Environment: FUZZ_SECONDS (default 20) per target; FUZZ_BUILD_JOBS
# (default: all CPUs) for the build.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-20}
jobs=${FUZZ_BUILD_JOBS:-$(nproc)}
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  for f in fuzz/fuzz_*.cpp; do
    t=${f#fuzz/fuzz_}
    targets+=("${t%.cpp}")
  done
fi
for t in "${targets[@]}"; do
  if [ ! -f "fuzz/fuzz_$t.cpp" ]; then
    echo "fuzz: no target '$t' (fuzz/fuzz_$t.cpp); the targets are: $(cd fuzz && ls fuzz_*.cpp | sed 's/^fuzz_//; s/\.cpp$//' | tr '\n' ' ')" >&2
    exit 2
  fi
done
libfuzzer=$(clang++ -print-file-name="libclang_rt.fuzzer-$(uname -m).a" 2>/dev/null || true)
if [ ! -e "$libfuzzer" ]; then
  echo "fuzz: clang++ with libFuzzer is needed; install clang-14 and libclang-rt-14-dev (scripts/install-deps.sh)" >&2
  exit 2
fi

CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCLEARCAP_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz --target "${targets[@]/#/fuzz_}" -j"$jobs"

failed=()
summary=()
for t in "${targets[@]}"; do
  run=build-fuzz/runs/$t
  rm -rf "$run"
  mkdir -p "$run/corpus"
  cp -r "fuzz/corpus/$t/." "$run/corpus/"
  dict=()
  [ -f "fuzz/$t.dict" ] && dict=(-dict="fuzz/$t.dict")
  echo "fuzz: $t for ${seconds}s ($(ls "$run/corpus" | wc -l) seed inputs)"
  set +e
  # -timeout: a single input that takes this long is a hang (reported);
  # -rss_limit_mb: libFuzzer's default, said out loud.
  "build-fuzz/fuzz/fuzz_$t" "$run/corpus" "${dict[@]}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$run/" -print_final_stats=1 >"$run/log" 2>&1
  rc=$?
  set -e
  # The last status line: "#N DONE cov: C ft: F corp: K/S lim: L exec/s: E rss: R".
  last=$(grep -E '^#[0-9]+' "$run/log" | tail -1 || true)
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$run/log")
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  eps=$(sed -n 's/.* exec\/s: \([0-9]*\).*/\1/p' <<<"$last")
  summary+=("$(printf '%-16s runs %-9s exec/s %-7s cov %-6s ft %-6s %s' "$t" "${runs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}" \
    "$([ "$rc" -eq 0 ] && echo ok || echo "FAILED (exit $rc)")")")
  if [ "$rc" -ne 0 ]; then
    failed+=("$t")
    echo "fuzz: $t failed (exit $rc); log $run/log, input(s):" >&2
    ls "$run" | grep -E '^(crash|leak|timeout|oom|slow-unit)-' | sed "s|^|  $run/|" >&2 || true
    grep -E 'ERROR: |runtime error:|SUMMARY:' "$run/log" | head -5 >&2 || true
  fi
done

echo "fuzz: summary (${seconds}s per target)"
printf '  %s\n' "${summary[@]}"
if [ "${#failed[@]}" -ne 0 ]; then
  echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}. Fix the product code, add the input as a test in" \
       "tests/unit/fuzz_regressions_test.cpp and to fuzz/corpus/<name>/ (docs/architecture.md, Fuzzing)" >&2
  exit 1
fi
