// A CaptureModule for a probe family that needs nothing learnt per library:
// discovery through its LibrarySpec, its probe table attached
// to every target by the ProbeAttacher, the family's syscall tracepoints
// (when it has any and --syscall-fd allows), and retargeting. A module
// loads its own BPF object and hands the pieces over (Parts).
// Thread: as CaptureModule.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/capture_module.h"
#include "core/library_discovery.h"
#include "core/probe_attacher.h"

namespace clearcap {

class StreamModule : public CaptureModule {
 public:
  struct Parts {
    const LibrarySpec* library = nullptr;
    std::shared_ptr<void> object;  // the loaded BPF object's owner; kept alive while probes exist
    std::vector<std::pair<std::string, int>> programs;
    std::vector<ProbeSpec> probes;
    std::vector<bpf_program*> syscall_tracepoints;  // attached before the uprobes; empty = none
    std::vector<Note> notes;                        // e.g. where the fd comes from
  };

  static Result<std::unique_ptr<CaptureModule>> create(Parts parts, const DiscoveryOptions& discovery);
  ~StreamModule() override;

  const std::vector<ProbeTarget>& targets() const override { return targets_; }
  size_t uprobes() const override { return probes_.uprobes(); }
  bool syscall_tracepoints() const override { return probes_.has_tracepoints(); }
  std::vector<Note> notes() const override;
  std::vector<std::pair<std::string, int>> programs() const override { return parts_.programs; }
  Result<void> retarget(const DiscoveryOptions& discovery) override;
  void detach() override;

 private:
  explicit StreamModule(Parts parts) : parts_(std::move(parts)) {}
  Parts parts_;
  ProbeAttacher probes_;  // declared after parts_: links go before the object
  std::vector<ProbeTarget> targets_;
  std::vector<std::string> skipped_;
};

}  // namespace clearcap
