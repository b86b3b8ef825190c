#include "modules/tls/tls_capture.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>

#include "modules/module_info.h"
#include "modules/tls/key_layout.h"
#include "skel/skeleton.h"
#include "tls.skel.h"

namespace clearcap {

struct TlsCapture::Bpf {
  using Skel = Skeleton<tls_bpf, tls_bpf__open, tls_bpf__load, tls_bpf__destroy>;
  std::unique_ptr<Skel> skel;
  tls_bpf* raw() const { return skel->raw(); }
};

TlsCapture::TlsCapture() : bpf_(std::make_unique<Bpf>()) {}

Result<std::unique_ptr<TlsCapture>> TlsCapture::create(const Options& opts, const RingSet& rings) {
  // Discover first: a bad --libssl or --pid is reported before any BPF work.
  auto found = discover_tls_targets(opts.discovery);
  if (!found) return tl::unexpected(found.error());

  std::unique_ptr<TlsCapture> self(new TlsCapture());
  self->targets_ = std::move(found->targets);
  self->notes_ = std::move(found->notes);

  auto skel = Bpf::Skel::open_and_load("tls", [&](tls_bpf* s) -> Result<void> {
    if (auto r = use_ring_set(s, rings); !r) return r;
    s->rodata->syscall_fd = opts.syscall_fd != Options::SyscallFd::kNever ? 1 : 0;
    return {};
  });
  if (!skel) return tl::unexpected(skel.error());
  self->bpf_->skel = std::move(*skel);

  self->keys_ = opts.keys;
  self->data_ = opts.data;
  self->syscall_fd_ = opts.syscall_fd;

  // Layouts first (the probes fork: no thread may exist yet).
  std::vector<Slot> slots;
  for (const TlsTarget& t : self->targets_) {
    auto slot = self->slot_for(t);
    if (!slot) return tl::unexpected(slot.error());
    slots.push_back(*slot);
    self->fd_unknown_ |= !slot->fd_known;
  }
  // Tracepoints (when needed) before uprobes: a call in flight must find its fd.
  if (auto r = self->update_tracepoints(); !r) return tl::unexpected(r.error());
  for (uint32_t i = 0; i < self->targets_.size(); ++i)
    if (auto r = self->attach_target(self->targets_[i], slots[i].index, opts.data); !r)
      return tl::unexpected(r.error());
  self->layout_timeout_ms_ = kLayoutTimeoutRunningMs;
  return self;
}

Result<TlsCapture::Slot> TlsCapture::slot_for(const TlsTarget& t) {
  struct stat st {};
  if (stat(t.path.c_str(), &st)) {
    fd_notes_.push_back(fmt::format("fd of {}: from syscalls (cannot stat it: {})", t.display, std::strerror(errno)));
    return Slot{};
  }
  auto key = std::make_pair(static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino));
  if (auto it = slots_.find(key); it != slots_.end()) return it->second;
  Slot slot;
  if (next_slot_ >= kNoLayoutSlot) {
    fd_notes_.push_back(fmt::format("fd of {}: from syscalls (more than {} library files hooked)", t.display,
                                    kNoLayoutSlot));
    if (keys_)
      key_notes_.push_back({Note::Severity::kWarning,
          fmt::format("keys cannot be captured for {}: more than {} libraries hooked", t.display, kNoLayoutSlot)});
    slots_.emplace(key, slot);
    return slot;
  }
  slot.index = next_slot_++;
  const bool want_keys = keys_ && t.offsets.count("SSL_do_handshake");
  LibraryLayouts learned = learn_library_layouts(t.path, want_keys, layout_timeout_ms_);
  if (learned.fd) {
    if (bpf_map_update_elem(bpf_map__fd(bpf_->raw()->maps.fd_layouts), &slot.index, &learned.fd->layout, BPF_ANY)) {
      int err = errno;
      return make_error(fmt::format("cannot store the fd layout of {}: {}", t.display, std::strerror(err)), err);
    }
    slot.fd_known = true;
    fd_notes_.push_back(fmt::format("fd of {}: read from the SSL object ({})", t.display, learned.fd->summary));
  } else {
    fd_notes_.push_back(fmt::format("fd of {}: from syscalls ({})", t.display, learned.fd.error().message));
  }
  if (keys_) {
    if (!want_keys) {
      key_notes_.push_back({Note::Severity::kWarning,
          fmt::format("keys cannot be captured for {}: it has no SSL_do_handshake", t.display)});
    } else if (!learned.keys) {
      key_notes_.push_back({Note::Severity::kWarning,
          fmt::format("keys cannot be captured for {}: {}", t.display, learned.keys.error().message)});
    } else {
      if (bpf_map_update_elem(bpf_map__fd(bpf_->raw()->maps.key_layouts), &slot.index, &learned.keys->layout,
                              BPF_ANY)) {
        int err = errno;
        return make_error(fmt::format("cannot store the key layout of {}: {}", t.display, std::strerror(err)), err);
      }
      key_notes_.push_back({Note::Severity::kDebug, fmt::format("keys of {}: {}", t.display, learned.keys->summary)});
      ++key_targets_;
    }
  }
  slots_.emplace(key, slot);
  return slot;
}

Result<void> TlsCapture::update_tracepoints() {
  using S = Options::SyscallFd;
  const bool want = syscall_fd_ == S::kAlways || ((syscall_fd_ == S::kNeeded || syscall_fd_ == S::kAuto) && fd_unknown_) ||
                    (syscall_fd_ == S::kAuto && demand_);
  if (!want) {
    probes_.detach_tracepoints();
    return {};
  }
  return probes_.attach_tracepoints(syscall_fd_programs(bpf_->raw()->obj));
}

Result<void> TlsCapture::want_syscall_fd(bool wanted) {
  if (syscall_fd_ != Options::SyscallFd::kAuto || demand_ == wanted) return {};
  demand_ = wanted;
  if (auto r = update_tracepoints(); !r) {
    demand_ = !wanted;
    return r;
  }
  return {};
}

std::vector<ProbeSpec> TlsCapture::probe_table(bool data) const {
  auto* s = bpf_->raw();
  std::vector<ProbeSpec> rows;
  if (data) {
    // Where a target has the function both SSL_write and SSL_write_ex call
    // placed (place_tls_probes), it replaces them: hooking both would see
    // each call twice.
    rows.push_back({kSslWriteInner, s->progs.ssl_write_any_entry, s->progs.ssl_ret});
    rows.push_back({kSslReadInner, s->progs.ssl_read_any_entry, s->progs.ssl_ret});
    rows.push_back({"SSL_write", s->progs.ssl_write_entry, s->progs.ssl_ret, kSslWriteInner});
    rows.push_back({"SSL_read", s->progs.ssl_read_entry, s->progs.ssl_ret, kSslReadInner});
    rows.push_back({"SSL_write_ex", s->progs.ssl_write_ex_entry, s->progs.ssl_ret, kSslWriteInner});
    rows.push_back({"SSL_read_ex", s->progs.ssl_read_ex_entry, s->progs.ssl_ret, kSslReadInner});
  }
  rows.push_back({"SSL_set_fd", s->progs.ssl_set_fd_entry, nullptr});
  rows.push_back({"SSL_free", s->progs.ssl_free_entry, nullptr});
  rows.push_back({"SSL_do_handshake", s->progs.ssl_handshake_entry, s->progs.ssl_handshake_ret});
  return rows;
}

std::vector<Note> TlsCapture::notes() const {
  std::vector<Note> out;
  for (const auto& n : notes_) out.push_back({Note::Severity::kDebug, "skipped: " + n});
  for (const auto& n : probes_.notes()) out.push_back(n);
  for (const auto& n : fd_notes_) out.push_back({Note::Severity::kDebug, n});
  out.insert(out.end(), key_notes_.begin(), key_notes_.end());
  return out;
}

std::vector<std::pair<std::string, int>> TlsCapture::programs() const { return bpf_->skel->programs(); }

Result<void> TlsCapture::retarget(const DiscoveryOptions& discovery) {
  if (keys_)
    return make_error("the targets of a keylog capture are fixed at start-up (key layouts are learnt then); "
                      "restart clearcap with the new library",
                      EINVAL);
  auto found = discover_tls_targets(discovery);
  if (!found) return tl::unexpected(found.error());

  // Layouts of new files first, and the syscall tracepoints before any new
  // uprobe when some fd layout is unknown (a call in flight must find its fd).
  std::map<const TlsTarget*, Slot> slot_of;
  bool fd_unknown = false;
  for (const TlsTarget& t : found->targets) {
    auto slot = slot_for(t);
    if (!slot) return tl::unexpected(slot.error());
    slot_of[&t] = *slot;
    fd_unknown |= !slot->fd_known;
  }
  const bool had_unknown = fd_unknown_;
  fd_unknown_ = fd_unknown || had_unknown;
  if (auto r = update_tracepoints(); !r) {
    fd_unknown_ = had_unknown;
    return r;
  }
  const auto specs = probe_table(data_);
  if (auto r = probes_.retarget(found->targets, specs, [&](const TlsTarget& t) { return slot_of[&t].index; }); !r) {
    fd_unknown_ = had_unknown;
    (void)update_tracepoints();
    return r;
  }
  targets_ = std::move(found->targets);
  notes_ = std::move(found->notes);
  // The old targets' probes are gone: the tracepoints go too when every
  // remaining target's fd is read from the SSL object.
  fd_unknown_ = fd_unknown;
  if (auto r = update_tracepoints(); !r) return r;
  return {};
}

TlsCapture::~TlsCapture() { detach(); }

void TlsCapture::detach() {
  // Return probes go before their entries (ProbeAttacher).
  probes_.detach();
}

Result<void> TlsCapture::attach_target(const TlsTarget& t, uint32_t slot, bool data) {
  const auto specs = probe_table(data);
  return probes_.attach(t, specs, slot);
}

}  // namespace clearcap
