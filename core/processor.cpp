#include "core/processor.h"

#include <algorithm>
#include <cstring>
#include <exception>

#include "core/thread_setup.h"

namespace clearcap {

Processor::Processor(std::vector<BatchSource*> sources, EventSink& sink, Options opts,
                     moodycamel::spsc_sema::LightweightSemaphore* wake)
    : sink_(sink), opts_(opts), wake_(wake) {
  for (BatchSource* s : sources) inputs_.push_back(Input{s, {}, 0});
}

Processor::~Processor() { join(); }

void Processor::start() {
  thread_ = std::jthread([this] {
    name_this_thread("cc-processor");
    try {
      run();
    } catch (const std::exception& e) {
      error_ = e.what();
    }
  });
}

void Processor::join() {
  if (thread_.joinable()) thread_.join();
}

void Processor::set_format(const FormatOptions& opts) {
  uint64_t word = std::min<uint64_t>(opts.truncate, kHexBit - 1) | (opts.hex ? kHexBit : 0);
  format_word_.store(word, std::memory_order_release);
}

FormatOptions Processor::format() const {
  uint64_t word = format_word_.load(std::memory_order_acquire);
  return FormatOptions{(word & kHexBit) != 0, static_cast<size_t>(word & ~kHexBit)};
}

template <bool kFileClock>
void Processor::deliver(std::span<const uint8_t> record, int64_t wall_offset) {
  if (uint64_t word = format_word_.load(std::memory_order_relaxed); word != format_seen_) [[unlikely]] {
    format_seen_ = word;
    sink_.set_format(format());
  }
  Event ev;
  if (decode_record(record, ev) != DecodeStatus::kSuccess) {
    decode_errors_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if constexpr (kFileClock) {
    ev.wall_ns = ev.boot_ns + static_cast<uint64_t>(wall_offset);
  } else {
    uint64_t now = ev.boot_ns;
    if (now - last_refresh_ns_ > 1'000'000'000ull) {
      clock_.refresh();
      last_refresh_ns_ = now;
    }
    ev.wall_ns = clock_.to_wall(ev.boot_ns);
  }
  if (ev.boot_ns < last_released_ts_) late_.fetch_add(1, std::memory_order_relaxed);
  else last_released_ts_ = ev.boot_ns;
  auto check = ev.record_type == CC_REC_DATA ? tracker_.observe(ev) : StreamTracker::Check{};
  if (check == StreamTracker::Check::kGap) {
    gaps_.store(tracker_.gaps(), std::memory_order_relaxed);
    gap_bytes_.store(tracker_.gap_bytes(), std::memory_order_relaxed);
  }
  sink_.write(ev);
  events_.fetch_add(1, std::memory_order_relaxed);
  payload_bytes_.fetch_add(ev.payload.size(), std::memory_order_relaxed);
}

template void Processor::deliver<false>(std::span<const uint8_t>, int64_t);
template void Processor::deliver<true>(std::span<const uint8_t>, int64_t);

bool Processor::head_ts(Input& in, uint64_t* ts) {
  if (in.batches.empty()) return false;
  size_t next;
  auto rec = in.batches.front()->record_at(in.offset, &next);
  // Every record type keeps its timestamp at the same offset (static
  // asserts in clearcap_abi.h); a packet record can be shorter than a data
  // record (a 66-byte ACK: 98 bytes), and reading the time of every record
  // that has one keeps such packets in order.
  constexpr size_t kTsEnd = offsetof(cc_data_event, ts_ns) + sizeof(uint64_t);
  if (rec.size() >= kTsEnd) {
    std::memcpy(ts, rec.data() + offsetof(cc_data_event, ts_ns), sizeof(*ts));
  } else {
    *ts = 0;  // malformed: release at once, the decoder will count it
  }
  return true;
}

void Processor::pop_head(Input& in) {
  Batch* b = in.batches.front();
  size_t next;
  auto rec = b->record_at(in.offset, &next);
  if (b->has_wall_offset()) deliver_record_at(rec, b->wall_offset());
  else deliver_record(rec);
  in.offset = next;
  if (in.offset >= b->used()) {
    in.batches.pop_front();
    in.offset = 0;
    in.source->recycle(b);
  }
}

size_t Processor::release(bool force) {
  size_t delivered = 0;
  uint64_t horizon = 0, now = 0;
  bool horizon_known = false;
  kick_due_ns_ = 0;
  while (true) {
    Input* best = nullptr;
    uint64_t best_ts = 0;
    uint64_t idle_watermark = ~uint64_t{0};  // lowest promise among sources with nothing queued
    for (auto& in : inputs_) {
      uint64_t ts;
      if (!head_ts(in, &ts)) {
        idle_watermark = std::min(idle_watermark, in.watermark);
        continue;
      }
      if (!best || ts < best_ts) {
        best = &in;
        best_ts = ts;
      }
    }
    if (!best) break;
    if (!force && best_ts > idle_watermark) {
      if (!horizon_known) {
        now = BootClock::now_boot_ns();
        horizon = now > opts_.merge_window_ns ? now - opts_.merge_window_ns : 0;
        horizon_known = true;
      }
      // Ask each idle source that holds this record back for a fresh promise
      // (once per promise: it answers by updating its watermark) - but only
      // once a fresh promise can cover the record: before that, every answer
      // falls short and is asked again at once, a ping-pong of context
      // switches (with real-time readers, each round trip preempts the
      // processor twice) that releases nothing sooner.
      if (best_ts + opts_.promise_lag_ns <= now) {
        for (auto& in : inputs_) {
          if (!in.batches.empty() || in.watermark >= best_ts || in.kicked_at == in.watermark) continue;
          in.kicked_at = in.watermark;
          in.source->kick();
        }
      } else {
        kick_due_ns_ = best_ts + opts_.promise_lag_ns;
      }
      if (best_ts > horizon) break;
    }
    pop_head(*best);
    ++delivered;
  }
  return delivered;
}

void Processor::run() {
  constexpr uint64_t kIdleFlushNs = 250'000'000;
  bool dirty = false;
  uint64_t last_idle_flush_ns = 0;
  while (true) {
    // Read `finished` before draining: a reader sets it after its last
    // hand-over, so everything it produced is in the queue by then.
    bool all_finished = true;
    for (auto& in : inputs_) all_finished &= in.source->finished();
    // Watermarks too: a promise read before the drain covers what is drained.
    for (auto& in : inputs_) in.watermark = in.source->watermark();
    for (auto& in : inputs_) {
      Batch* b;
      while (in.source->full_queue().try_dequeue(b)) in.batches.push_back(b);
    }
    size_t n = release(all_finished);
    dirty |= n > 0;
    if (all_finished) {
      bool empty = true;
      for (auto& in : inputs_) empty &= in.batches.empty();
      if (empty) break;
      continue;
    }
    if (n == 0) {
      // Also flush a few times a second while nothing arrives: sinks that
      // hold data by age (the capture file closes a frame at most ~1 s after
      // its first record) need a call to notice the age.
      const uint64_t now = BootClock::now_boot_ns();
      if (dirty || now - last_idle_flush_ns >= kIdleFlushNs) {
        sink_.flush();
        dirty = false;
        last_idle_flush_ns = now;
      }
      // Sleep until a reader hands something over, the oldest held record
      // leaves the merge window, or an idle source is due to be kicked.
      int64_t wait_us = static_cast<int64_t>(opts_.merge_window_ns / 4000);
      if (kick_due_ns_ > now)
        wait_us = std::min<int64_t>(wait_us, static_cast<int64_t>((kick_due_ns_ - now) / 1000) + 1);
      wake_->wait(wait_us);
    }
  }
  sink_.flush();
}

}  // namespace clearcap
