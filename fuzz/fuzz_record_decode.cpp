// One raw ring record (bpf/abi: a data, keys or packet record, or garbage)
// through decode_record, the processor's check and decode of every record
// a reader hands over. The input is the record exactly as a ring sample
// would hold it.
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/event.h"
#include "fuzz/fuzz_event.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  clearcap::Event ev;
  if (clearcap::decode_record(std::span<const uint8_t>(data, size), ev) == clearcap::DecodeStatus::kSuccess) {
    volatile uint64_t sink = clearcap::fuzz::touch_event(ev);
    (void)sink;
  }
  return 0;
}
