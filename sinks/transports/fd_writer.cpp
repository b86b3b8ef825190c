#include "sinks/transports/fd_writer.h"

#include <cerrno>
#include <utility>

namespace clearcap {

FdSink::FdSink(std::unique_ptr<Encoder> encoder, int fd, std::string name)
    : encoder_(std::move(encoder)), fd_(fd), name_(std::move(name)) {
  // One flush's worth plus room for the event that crosses the threshold
  // (at most CC_CHUNK_MAX payload, hex-dumped about 4.3x).
  buf_.reserve(kFlushThreshold + 128 * 1024);
}

FdSink::~FdSink() { flush(); }

void FdSink::write(const Event& ev) {
  if (ev.record_type != CC_REC_DATA) return;  // keys go to the key log sink only
  encoder_->encode(ev, buf_);
  if (buf_.size() > kFlushThreshold) flush();
}

void FdSink::flush() {
  size_t done = 0;
  while (done < buf_.size()) {
    const ssize_t n = ::write(fd_, buf_.data() + done, buf_.size() - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    // Any other failure (EBADF, EPIPE, ENOSPC, EAGAIN on a non-blocking fd,
    // or a 0-byte write) drops what is left: retrying could stall the
    // processor forever.
    last_errno_.store(n < 0 ? errno : EIO, std::memory_order_relaxed);
    write_errors_.fetch_add(1, std::memory_order_relaxed);
    dropped_bytes_.fetch_add(buf_.size() - done, std::memory_order_relaxed);
    break;
  }
  buf_.clear();  // keeps capacity: no allocation on the next events
}

void FdSink::collect_stats(std::vector<SinkStats>& out) const {
  out.push_back({name_, write_errors(), dropped_bytes(), 0, last_errno()});
}

}  // namespace clearcap
