// What the fuzz targets do with a decoded Event: read every byte it points
// at (address sanitizer: a view past its record is an overflow) and what a
// sink would look up for it.
#pragma once

#include <cstdint>

#include "core/event.h"

namespace clearcap::fuzz {

inline uint64_t touch_event(const Event& ev) {
  uint64_t sum = ev.wall_ns + ev.pid + ev.conn_id + ev.seq + ev.call_len + ev.flags;
  for (uint8_t b : ev.payload) sum += b;
  for (uint8_t b : ev.record) sum += b;
  for (char c : ev.comm) sum += static_cast<uint8_t>(c);
  if (ev.has_tuple()) {
    for (int i = 0; i < 16; ++i) sum += ev.saddr[i] + ev.daddr[i];
  }
  sum += ev.module().size() + source_name(ev.source).size() + direction_name(ev.direction).size();
  return sum;
}

}  // namespace clearcap::fuzz
