#include "core/stream_module.h"

namespace clearcap {

Result<std::unique_ptr<CaptureModule>> StreamModule::create(Parts parts, const DiscoveryOptions& discovery) {
  // Discover first: a bad path or --pid is reported before anything attaches.
  auto found = discover_targets(*parts.library, discovery);
  if (!found) return tl::unexpected(found.error());
  std::unique_ptr<StreamModule> self(new StreamModule(std::move(parts)));
  self->targets_ = std::move(found->targets);
  self->skipped_ = std::move(found->notes);
  // Tracepoints before uprobes: a call in flight must find its fd.
  if (!self->parts_.syscall_tracepoints.empty())
    if (auto r = self->probes_.attach_tracepoints(self->parts_.syscall_tracepoints); !r) return tl::unexpected(r.error());
  for (const auto& t : self->targets_)
    if (auto r = self->probes_.attach(t, self->parts_.probes, 0); !r) return tl::unexpected(r.error());
  return std::unique_ptr<CaptureModule>(std::move(self));
}

StreamModule::~StreamModule() { detach(); }

std::vector<Note> StreamModule::notes() const {
  std::vector<Note> out = parts_.notes;
  for (const auto& n : skipped_) out.push_back({Note::Severity::kDebug, "skipped: " + n});
  for (const auto& n : probes_.notes()) out.push_back(n);
  return out;
}

Result<void> StreamModule::retarget(const DiscoveryOptions& discovery) {
  auto found = discover_targets(*parts_.library, discovery);
  if (!found) return tl::unexpected(found.error());
  if (auto r = probes_.retarget(found->targets, parts_.probes, [](const ProbeTarget&) { return uint64_t{0}; }); !r)
    return r;
  targets_ = std::move(found->targets);
  skipped_ = std::move(found->notes);
  return {};
}

void StreamModule::detach() { probes_.detach(); }

}  // namespace clearcap
