// FdSink: encodes events with an Encoder and writes the bytes to a file
// descriptor through a 64 KiB buffer.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "sinks/event_sink.h"

namespace clearcap {

// Thread: processor thread only.
// Never throws: a failed write is counted (write_errors) and the bytes it
// could not write are dropped and counted (dropped_bytes), because the
// processor must keep draining the rings whatever the destination does.
// Does not own the descriptor (stdout, or a file its owner opened and closes).
class FdSink : public EventSink {
 public:
  explicit FdSink(std::unique_ptr<Encoder> encoder, int fd = STDOUT_FILENO, std::string name = "stdout");
  ~FdSink() override;  // flushes
  FdSink(const FdSink&) = delete;
  FdSink& operator=(const FdSink&) = delete;

  void write(const Event& ev) override;
  void flush() override;
  void set_format(const FormatOptions& opts) override { encoder_->set_options(opts); }

  void collect_stats(std::vector<SinkStats>& out) const override;

  uint64_t write_errors() const { return write_errors_.load(std::memory_order_relaxed); }
  uint64_t dropped_bytes() const { return dropped_bytes_.load(std::memory_order_relaxed); }
  // errno of the last failed write (EIO for a 0-byte write), 0 if none: for
  // the one user-facing message at shutdown or in --stats.
  int last_errno() const { return last_errno_.load(std::memory_order_relaxed); }

  // Buffered bytes are written once they exceed this size: few syscalls,
  // still a bounded memory footprint and latency.
  static constexpr size_t kFlushThreshold = 64 * 1024;

 private:
  std::unique_ptr<Encoder> encoder_;
  int fd_;
  std::string buf_;
  std::string name_;
  // Written by the processor thread, read by any (relaxed: plain counters).
  std::atomic<uint64_t> write_errors_{0};
  std::atomic<uint64_t> dropped_bytes_{0};
  std::atomic<int> last_errno_{0};
};

}  // namespace clearcap
