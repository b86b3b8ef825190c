// A CaptureModule for a probe family that needs nothing learnt per library:
// discovery through its LibrarySpec, its probe table attached
// to every target by the ProbeAttacher, the family's syscall tracepoints
// (when it has any and --syscall-fd allows), and retargeting. A module
// loads its own BPF object and hands the pieces over (Parts).
// Thread: as CaptureModule.
#pragma once

#include <functional>
#include <memory>
#include <optional>
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
    // Per target, before its probes attach (keys modes): may add functions
    // found by other means than symbols to the target's offsets and note
    // what it found; returns the probes' cookie when the target gives keys.
    std::function<std::optional<uint64_t>(ProbeTarget&, std::vector<Note>&)> prepare;
  };

  static Result<std::unique_ptr<CaptureModule>> create(Parts parts, const DiscoveryOptions& discovery);
  ~StreamModule() override;

  const std::vector<ProbeTarget>& targets() const override { return targets_; }
  size_t uprobes() const override { return probes_.uprobes(); }
  bool syscall_tracepoints() const override { return probes_.has_tracepoints(); }
  std::vector<Note> notes() const override;
  std::vector<std::pair<std::string, int>> programs() const override { return parts_.programs; }
  size_t key_targets() const override { return key_targets_; }
  Result<void> retarget(const DiscoveryOptions& discovery) override;
  void detach() override;

 private:
  explicit StreamModule(Parts parts) : parts_(std::move(parts)) {}
  Parts parts_;
  ProbeAttacher probes_;  // declared after parts_: links go before the object
  std::vector<ProbeTarget> targets_;
  std::vector<std::string> skipped_;
  std::vector<Note> prepare_notes_;
  size_t key_targets_ = 0;
  // Runs Parts::prepare over `targets`: cookies by target, key targets counted.
  std::vector<uint64_t> prepare(std::vector<ProbeTarget>& targets);
};

}  // namespace clearcap
