// The user-space hot paths, one fixed workload per case, for the
// instruction-count regression gate (tools/perf-gate/run). Run under
// `valgrind --tool=callgrind --instr-atstart=no`: only the measured loop is
// instrumented (CALLGRIND_START/STOP_INSTRUMENTATION), so the count is the
// same for the same binary and input whatever else the machine does - which
// is what a noisy CI machine can gate on, unlike time.
//
// usage: hotpath_gate CASE       (prints {"case": ..., "items": N})
//        hotpath_gate --list
#include <valgrind/callgrind.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/processor.h"
#include "sinks/capture_file/capture_writer.h"
#include "sinks/encoders/json_encoder.h"
#include "sinks/encoders/text_encoder.h"
#include "../bench_data.h"

namespace clearcap {
namespace {

std::vector<uint8_t> make_record(uint64_t ts, uint64_t seq, size_t payload) {
  return bench::make_record(ts, payload, seq, 7);
}

using NullSink = bench::CountingSink;

class DiscardOutput : public CaptureOutput {
 public:
  Result<void> write(std::span<const uint8_t>) override { return {}; }
  bool at_file_start() const override { return false; }
  Result<void> close() override { return {}; }
  const std::string& name() const override { return name_; }

 private:
  std::string name_ = "discard";
};

// Decoded events over records that stay alive (an Event is a view).
struct Events {
  std::vector<std::vector<uint8_t>> recs;
  std::vector<Event> evs;
  Events(size_t n, size_t payload) {
    for (size_t i = 0; i < n; ++i) recs.push_back(make_record(1'000'000 + 1000 * i, i * payload, payload));
    evs.resize(n);
    for (size_t i = 0; i < n; ++i) {
      decode_record(recs[i], evs[i]);
      evs[i].wall_ns = evs[i].boot_ns + 1'700'000'000'000'000'000ull;
    }
  }
};

struct Case {
  size_t items;
  std::function<void()> setup_and_run;  // must bracket its loop with measure()
};

template <typename F>
void measure(F&& loop) {
  CALLGRIND_START_INSTRUMENTATION;
  loop();
  CALLGRIND_STOP_INSTRUMENTATION;
}

template <typename Encoder>
void encode_loop(size_t n, size_t size) {
  Events e(n, size - sizeof(cc_data_event));
  Encoder enc{FormatOptions{}};
  std::string out;
  out.reserve(4 * size);
  measure([&] {
    for (const auto& ev : e.evs) {
      out.clear();
      enc.encode(ev, out);
    }
  });
}

std::map<std::string, Case> cases() {
  std::map<std::string, Case> c;
  for (size_t size : {256u, 16384u}) {
    const size_t n = size == 256 ? 20000 : 2000;
    const std::string sz = size == 256 ? "256" : "16k";
    c["decode/" + sz] = {n, [=] {
                           Events e(n, size - sizeof(cc_data_event));
                           Event ev;
                           measure([&] {
                             for (const auto& r : e.recs) decode_record(r, ev);
                           });
                         }};
    c["deliver/" + sz] = {n, [=] {
                            Events e(n, size - sizeof(cc_data_event));
                            NullSink sink;
                            moodycamel::spsc_sema::LightweightSemaphore wake;
                            Processor p({}, sink, {}, &wake);
                            measure([&] {
                              for (const auto& r : e.recs) p.deliver_record(r);
                            });
                          }};
    c["json/" + sz] = {n, [=] { encode_loop<JsonEncoder>(n, size); }};
    c["text/" + sz] = {n, [=] { encode_loop<TextEncoder>(n, size); }};
  }
  // The capture file's per-event path on the processor thread (the record
  // copy into the batch). Fewer than one batch's worth: nothing reaches the
  // writer thread while the loop is measured.
  c["capture/256"] = {3000, [] {
                        Events e(3000, 256 - sizeof(cc_data_event));
                        CaptureFileSink sink(std::make_unique<DiscardOutput>(), CaptureFileSink::Options{});
                        measure([&] {
                          for (const auto& ev : e.evs) sink.write(ev);
                        });
                        sink.finish();
                      }};
  return c;
}

}  // namespace
}  // namespace clearcap

int main(int argc, char** argv) {
  auto all = clearcap::cases();
  if (argc == 2 && std::strcmp(argv[1], "--list") == 0) {
    for (const auto& [name, c] : all) std::printf("%s\n", name.c_str());
    return 0;
  }
  if (argc != 2 || !all.count(argv[1])) {
    std::fprintf(stderr, "usage: hotpath_gate CASE | --list\n");
    return 2;
  }
  const auto& c = all.at(argv[1]);
  c.setup_and_run();
  std::printf("{\"case\": \"%s\", \"items\": %zu}\n", argv[1], c.items);
  return 0;
}
