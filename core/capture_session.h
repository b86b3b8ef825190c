// One capture, from start to summary: the shared rings (RingSet), the
// modules loaded into them, the ring readers and the processor, in the
// order that loses nothing:
//   create (rings, filters) -> add modules (probes attach; records wait in
//   the rings) -> start (readers, processor) -> ... -> stop (detach every
//   producer, then readers drain their rings completely, then the processor
//   delivers everything and joins).
// Control calls (filters, retarget, format) may come from any thread (the
// configuration API's); one mutex serialises them and stop().
// Thread: create/add_module/start/stop on the owning thread; the control
// calls and counters() from any thread.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <readerwriterqueue/atomicops.h>

#include "core/capture_module.h"
#include "core/counters.h"
#include "core/event_sink.h"
#include "core/processor.h"
#include "core/result.h"
#include "core/ring_reader.h"
#include "core/ring_set.h"

namespace clearcap {

class CaptureSession {
 public:
  struct Options {
    RingSet::Options rings;
    int readers = 0;   // 0 = one per CPU, at most 4
    int poll_ms = 20;
    int reader_priority = 1;  // SCHED_FIFO priority of the readers, 0 = normal (RingReader::Options)
    std::vector<int> pids;  // filters in force from the start
    uint32_t uid = 0;
    Cgroup cgroup;
    FormatOptions format;
  };
  using Loader = std::function<Result<std::unique_ptr<CaptureModule>>(const RingSet&)>;

  static Result<std::unique_ptr<CaptureSession>> create(const Options& opts, EventSink& sink);
  ~CaptureSession();

  RingSet& rings() { return *rings_; }
  // Before start(): loads a module into the rings; the session owns it.
  Result<CaptureModule*> add_module(const Loader& load);
  // Before start(): another producer writing into the rings (packets); its
  // stop runs with the modules' detach, before the drain.
  void add_producer(std::function<void()> stop) { producer_stops_.push_back(std::move(stop)); }
  Result<void> start();
  // Detach, drain, deliver (idempotent). The sink has everything after it.
  void stop();

  // Control, from any thread.
  Result<void> set_filter(const std::vector<int>& pids, uint32_t uid, const Cgroup& cgroup);
  // --syscall-fd auto: every module attaches (true) or detaches its syscall
  // tracepoints (SyscallFdDemand). The first error, after asking them all.
  Result<void> want_syscall_fd(bool wanted);
  // Re-runs discovery with `discovery`, which becomes the options in force.
  Result<void> retarget(CaptureModule& module, const DiscoveryOptions& discovery);
  // The discovery options in force: those of the start (remember_discovery)
  // or of the last successful retarget().
  void remember_discovery(const DiscoveryOptions& d) {
    std::lock_guard lock(control_mu_);
    discovery_ = d;
  }
  DiscoveryOptions discovery() const {
    std::lock_guard lock(control_mu_);
    return discovery_;
  }
  void set_format(const FormatOptions& f) { processor_->set_format(f); }
  // Runs `fn` under the control lock (a change that reads, then applies).
  template <class F>
  auto with_control(F&& fn) {
    std::lock_guard lock(control_mu_);
    return fn();
  }

  // BPF, reader and processor counters (outputs are the caller's to add).
  Counters counters() const;
  const std::vector<std::unique_ptr<CaptureModule>>& modules() const { return modules_; }
  const std::vector<std::unique_ptr<RingReader>>& readers() const { return readers_; }
  const Processor& processor() const { return *processor_; }
  int reader_count() const { return static_cast<int>(readers_.size()); }
  // A reader's failure that ended it early ("" when none).
  std::string reader_error() const;

 private:
  CaptureSession(EventSink& sink) : sink_(sink) {}
  EventSink& sink_;
  Options opts_;
  std::unique_ptr<RingSet> rings_;
  std::vector<std::unique_ptr<CaptureModule>> modules_;
  std::vector<std::function<void()>> producer_stops_;
  moodycamel::spsc_sema::LightweightSemaphore wake_;
  std::vector<std::unique_ptr<RingReader>> readers_;
  std::unique_ptr<Processor> processor_;
  mutable std::mutex control_mu_;
  DiscoveryOptions discovery_;  // guarded by control_mu_
  bool started_ = false, stopped_ = false;
};

}  // namespace clearcap
