// The processor's merge over two scripted sources (two CPUs' rings), timed
// from start to join: what BM_Processor_* benchmarks measure, with the sink
// under test at the end. Google Benchmark only (not the gate).
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "core/processor.h"
#include "../tests/unit/scripted_source.h"

namespace clearcap::bench {

using Records = std::vector<std::vector<uint8_t>>;

// One timed iteration: both sources filled (untimed), the processor run
// into `sink` until both are drained.
inline void merge_once(benchmark::State& state, const Records& a_recs, const Records& b_recs, EventSink& sink) {
  state.PauseTiming();
  test::ScriptedSource a(512 * 1024), b(512 * 1024);
  for (const auto& r : a_recs) a.add(r);
  for (const auto& r : b_recs) b.add(r);
  a.finish();
  b.finish();
  moodycamel::spsc_sema::LightweightSemaphore wake;
  Processor p({&a, &b}, sink, {}, &wake);
  state.ResumeTiming();
  p.start();
  p.join();
}

}  // namespace clearcap::bench
