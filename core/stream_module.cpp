#include "core/stream_module.h"

namespace clearcap {

Result<std::unique_ptr<CaptureModule>> StreamModule::create(Parts parts, const DiscoveryOptions& discovery) {
  // Discover first: a bad path or --pid is reported before anything attaches.
  auto found = discover_targets(*parts.library, discovery);
  if (!found) return tl::unexpected(found.error());
  std::unique_ptr<StreamModule> self(new StreamModule(std::move(parts)));
  self->targets_ = std::move(found->targets);
  self->skipped_ = std::move(found->notes);
  const auto cookies = self->prepare(self->targets_);
  // Tracepoints before uprobes: a call in flight must find its fd.
  if (!self->parts_.syscall_tracepoints.empty())
    if (auto r = self->probes_.attach_tracepoints(self->parts_.syscall_tracepoints); !r) return tl::unexpected(r.error());
  for (size_t i = 0; i < self->targets_.size(); ++i)
    if (auto r = self->probes_.attach(self->targets_[i], self->parts_.probes, cookies[i]); !r)
      return tl::unexpected(r.error());
  return std::unique_ptr<CaptureModule>(std::move(self));
}

std::vector<uint64_t> StreamModule::prepare(std::vector<ProbeTarget>& targets) {
  std::vector<uint64_t> cookies(targets.size(), 0);
  if (!parts_.prepare) return cookies;
  prepare_notes_.clear();
  key_targets_ = 0;
  for (size_t i = 0; i < targets.size(); ++i) {
    if (auto c = parts_.prepare(targets[i], prepare_notes_)) {
      cookies[i] = *c;
      ++key_targets_;
    }
  }
  return cookies;
}

StreamModule::~StreamModule() { detach(); }

std::vector<Note> StreamModule::notes() const {
  std::vector<Note> out = parts_.notes;
  out.insert(out.end(), prepare_notes_.begin(), prepare_notes_.end());
  for (const auto& n : skipped_) out.push_back({Note::Severity::kDebug, "skipped: " + n});
  for (const auto& n : probes_.notes()) out.push_back(n);
  return out;
}

Result<void> StreamModule::retarget(const DiscoveryOptions& discovery) {
  auto found = discover_targets(*parts_.library, discovery);
  if (!found) return tl::unexpected(found.error());
  const auto cookies = prepare(found->targets);
  auto cookie_of = [&](const ProbeTarget& t) { return cookies[static_cast<size_t>(&t - found->targets.data())]; };
  if (auto r = probes_.retarget(found->targets, parts_.probes, cookie_of); !r) return r;
  targets_ = std::move(found->targets);
  skipped_ = std::move(found->notes);
  return {};
}

void StreamModule::detach() { probes_.detach(); }

}  // namespace clearcap
