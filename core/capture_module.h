// A loaded probe family, as the capture command and the configuration API
// see it: its targets, its probes, its notes, and the two things a running
// capture may ask of it (move the probes, detach). The rings, counters and
// filters are the RingSet's, shared by every module of a run.
// Thread: one owner at a time; the owner serialises retarget() with the
// readers of targets()/uprobes() (the configuration API holds one mutex).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/library_discovery.h"
#include "core/probe_attacher.h"
#include "core/result.h"

namespace clearcap {

class CaptureModule {
 public:
  virtual ~CaptureModule() = default;

  virtual const std::vector<ProbeTarget>& targets() const = 0;
  virtual size_t uprobes() const = 0;
  // Whether the system-wide syscall tracepoints are attached.
  virtual bool syscall_tracepoints() const = 0;
  // What was skipped and why, where each target's fd comes from, ...; the
  // command shows warnings always and the rest with --debug.
  virtual std::vector<Note> notes() const = 0;
  // {name, fd} of every loaded program (program-time statistics).
  virtual std::vector<std::pair<std::string, int>> programs() const = 0;
  // Targets whose session keys are captured (-m keylog, -m pcap); 0 for a
  // module without keys.
  virtual size_t key_targets() const { return 0; }

  // Moves the probes to the targets `discovery` finds; probes on files that
  // stay targets are kept, new ones attached before old ones go. On error
  // nothing changes.
  virtual Result<void> retarget(const DiscoveryOptions& discovery) = 0;
  // Detaches every probe (idempotent). Records already in the rings stay.
  virtual void detach() = 0;
  // --syscall-fd auto (SyscallFdDemand): connections whose library object
  // has no socket were seen (true), or none for a while (false). A module in
  // that mode attaches or detaches its syscall tracepoints; others ignore it.
  virtual Result<void> want_syscall_fd(bool wanted) {
    (void)wanted;
    return {};
  }
};

}  // namespace clearcap
