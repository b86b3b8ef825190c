// Targets that appear after start: a process started later with its own
// copy of the library (another inode: the probes on the system copy do not
// see it), a dlopen() of a copy, a container started later. Every few
// seconds a thread runs the module's discovery again with the options in
// force (those of the start, or of the last POST /<module>), and when it
// finds a file that is not hooked (compared by device and inode) it
// re-targets the module through the session: new units are attached, the
// hooked ones stay. What could not be attached is logged once and counted,
// never silently missed.
//
// Only in discovery mode: a run told its file (--libssl FILE) hooks that
// file and nothing else.
//
// Thread: construct, stop() and destroy on one thread at a time (stop and
// the destructor join the scan thread); the counters from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "core/capture_module.h"
#include "core/capture_session.h"
#include "core/library_discovery.h"

namespace clearcap {

class TargetWatch {
 public:
  using Log = std::function<void(const std::string&)>;
  TargetWatch(CaptureSession& session, CaptureModule& module, const LibrarySpec& spec,
              std::chrono::milliseconds every, Log log);
  ~TargetWatch();
  TargetWatch(const TargetWatch&) = delete;
  TargetWatch& operator=(const TargetWatch&) = delete;

  // Files found after start and attached / found but not attached.
  uint64_t attached_later() const { return attached_later_.load(std::memory_order_relaxed); }
  uint64_t not_attached() const { return not_attached_.load(std::memory_order_relaxed); }

  // One scan now (the thread calls it; tests too).
  void scan();
  // Ends the scan thread (waits for a scan under way). Idempotent; the
  // counters stay readable.
  void stop();

 private:
  CaptureSession& session_;
  CaptureModule& module_;
  const LibrarySpec& spec_;
  Log log_;
  std::set<std::string> refused_;  // identities that failed to attach (not retried)
  std::atomic<uint64_t> attached_later_{0}, not_attached_{0};
  std::jthread thread_;
};

}  // namespace clearcap
