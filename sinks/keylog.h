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
#include "sinks/transports/async_writer.h"
#include "sinks/event_sink.h"
#include "sinks/transports/rotating_file.h"

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

// The lines go to the file through an AsyncWriter (its own writer thread)
// over a RotatingFile: rotation (--eventroratesize/--eventroratetime/
// --rotate-keep) and SIGHUP reopen happen on that thread, never on the
// processor. One handshake's lines are one record, so they are never split
// across rotated files; every file is created 0600.
//
// Thread: processor thread for write/flush; any thread for collect_stats,
// request_reopen; the owner for finish().
class KeylogSink : public EventSink {
 public:
  // Creates (or appends to) `path` with mode 0600; an existing file is
  // narrowed to 0600 too, because it will hold secrets. `rotation.mode` is
  // forced to 0600.
  static Result<std::unique_ptr<KeylogSink>> open(const std::string& path, RotatingFile::Options rotation = {});
  ~KeylogSink() override;

  void write(const Event& ev) override;
  void flush() override;  // wakes the writer: every handshake reaches the file at once
  void collect_stats(std::vector<SinkStats>& out) const override;
  // SIGHUP: the writer thread reopens the file.
  void request_reopen() { writer_->request_reopen(); }
  // The process ends without waiting: see AsyncWriter::abandon().
  void abandon() { writer_->abandon(); }
  // Delivers what is queued and closes the file. Idempotent.
  void finish();

  // Handshakes whose lines are in the file (written by the writer thread),
  // not merely queued: a full disk must not show as keys written.
  uint64_t handshakes() const { return writer_->delivered_events(); }
  uint64_t duplicates() const { return duplicates_.load(std::memory_order_relaxed); }
  uint64_t incomplete() const { return incomplete_.load(std::memory_order_relaxed); }
  const std::string& path() const { return path_; }

 private:
  KeylogSink(std::unique_ptr<AsyncWriter> writer, std::string path)
      : writer_(std::move(writer)), path_(std::move(path)) {}
  bool seen(const std::string& client_random);

  std::unique_ptr<AsyncWriter> writer_;
  std::string path_;
  std::string line_buf_;
  std::string cr_buf_;
  // Client randoms already written, oldest first; bounded so a long capture
  // keeps constant memory (a repeat older than this is written again).
  static constexpr size_t kDedupEntries = 65536;
  std::unordered_set<std::string> seen_set_;
  std::deque<std::string> seen_order_;
  std::atomic<uint64_t> duplicates_{0}, incomplete_{0};
};

}  // namespace clearcap
