#include "sinks/fd_writer.h"

#include <cerrno>
#include <utility>

namespace clearcap {

FdSink::FdSink(std::unique_ptr<Encoder> encoder, int fd) : encoder_(std::move(encoder)), fd_(fd) {
  // One flush's worth plus room for the event that crosses the threshold
  // (at most CC_CHUNK_MAX payload, hex-dumped about 4.3x).
  buf_.reserve(kFlushThreshold + 128 * 1024);
}

FdSink::~FdSink() { flush(); }

void FdSink::write(const Event& ev) {
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
    last_errno_ = n < 0 ? errno : EIO;
    ++write_errors_;
    dropped_bytes_ += buf_.size() - done;
    break;
  }
  buf_.clear();  // keeps capacity: no allocation on the next events
}

}  // namespace clearcap
