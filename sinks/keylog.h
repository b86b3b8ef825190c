// NSS key log output (the format Wireshark's tls.keylog_file reads).
//
// KeylogSink turns each keys record (one per completed handshake) into the
// lines of its TLS version and appends them to a file with one write(2), so
// that a reader sees every handshake's keys as soon as the handshake is done.
// Handshakes are deduplicated by client random: both ends of a connection on
// this host report the same secrets.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_set>

#include "core/result.h"
#include "sinks/event_sink.h"

namespace clearcap {

enum class KeylogFormat {
  kTls12,       // one CLIENT_RANDOM line
  kTls13,       // five lines
  kIncomplete,  // lines written for what was there; some secret was missing
  kInvalid,     // nothing usable (no client random)
};

// Appends the NSS lines of one cc_keys_event to `out`; the client random (32
// bytes) goes to `client_random`. TLS 1.3 handshake traffic secrets are taken
// as read, or derived from the handshake secret and transcript hash.
KeylogFormat format_keylog(const cc_keys_event& k, std::string& out, std::string& client_random);

// Thread: processor thread for write/flush; any thread for collect_stats.
class KeylogSink : public EventSink {
 public:
  // Creates (or appends to) `path` with mode 0600; an existing file is
  // narrowed to 0600 too, because it will hold secrets.
  static Result<std::unique_ptr<KeylogSink>> open(const std::string& path);
  ~KeylogSink() override;

  void write(const Event& ev) override;
  void flush() override {}  // every handshake is written at once
  void collect_stats(std::vector<SinkStats>& out) const override;

  uint64_t handshakes() const { return handshakes_.load(std::memory_order_relaxed); }
  uint64_t duplicates() const { return duplicates_.load(std::memory_order_relaxed); }
  uint64_t incomplete() const { return incomplete_.load(std::memory_order_relaxed); }
  const std::string& path() const { return path_; }

 private:
  KeylogSink(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  bool seen(const std::string& client_random);

  int fd_;
  std::string path_;
  std::string line_buf_;
  std::string cr_buf_;
  // Client randoms already written, oldest first; bounded so a long capture
  // keeps constant memory (a repeat older than this is written again).
  static constexpr size_t kDedupEntries = 65536;
  std::unordered_set<std::string> seen_set_;
  std::deque<std::string> seen_order_;
  std::atomic<uint64_t> handshakes_{0}, duplicates_{0}, incomplete_{0}, write_errors_{0}, dropped_bytes_{0};
  std::atomic<int> last_errno_{0};
};

}  // namespace clearcap
