#include "modules/tls/tls_capture.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>

#include "modules/tls/key_layout.h"
#include "core/tracefs.h"
#include "tls.skel.h"

namespace clearcap {

namespace {

struct Hook {
  const char* function;
  bpf_program* entry;
  bpf_program* ret;  // nullptr: entry only
};

}  // namespace

Result<std::unique_ptr<TlsCapture>> TlsCapture::create(const Options& opts) {
  // Discover first: a bad --libssl or --pid is reported before any BPF work.
  auto found = discover_tls_targets(opts.discovery);
  if (!found) return tl::unexpected(found.error());

  std::unique_ptr<TlsCapture> self(new TlsCapture());
  self->targets_ = std::move(found->targets);
  self->notes_ = std::move(found->notes);

  TlsSkeleton::Options sopts = opts.skel;
  sopts.syscall_fd = opts.syscall_fd != Options::SyscallFd::kNever;
  auto skel = TlsSkeleton::open_and_load(sopts);
  if (!skel) return tl::unexpected(skel.error());
  self->skel_ = std::move(*skel);

  self->keys_ = opts.keys;
  self->data_ = opts.data;
  self->syscall_fd_ = opts.syscall_fd;
  if (auto r = self->set_filter(opts.discovery.pids, opts.uid, 0); !r) return tl::unexpected(r.error());

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
  self->recount();
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
    if (bpf_map_update_elem(bpf_map__fd(skel_->raw()->maps.fd_layouts), &slot.index, &learned.fd->layout, BPF_ANY)) {
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
      if (bpf_map_update_elem(bpf_map__fd(skel_->raw()->maps.key_layouts), &slot.index, &learned.keys->layout,
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
  const bool want = syscall_fd_ == Options::SyscallFd::kAlways ||
                    (syscall_fd_ == Options::SyscallFd::kNeeded && fd_unknown_);
  if (want && tracepoint_links_.empty()) return attach_tracepoints();
  if (!want) destroy(tracepoint_links_);
  return {};
}

Result<void> TlsCapture::set_filter(const std::vector<int>& pids, uint32_t uid, uint64_t cgroup_id) {
  cc_filter_cfg cfg{};
  cfg.generation = ++filter_generation_;  // never 0: cached verdicts of the old filter expire
  std::vector<uint32_t> upids(pids.begin(), pids.end());
  if (!upids.empty()) cfg.flags |= CC_FILTER_PID;
  if (uid != 0) {
    cfg.flags |= CC_FILTER_UID;
    cfg.uid = uid;
  }
  if (cgroup_id != 0) {
    cfg.flags |= CC_FILTER_CGROUP;
    cfg.cgroup_id = cgroup_id;
  }
  return skel_->set_filter(cfg, upids);
}

std::vector<TlsCapture::ProbeKey> TlsCapture::keys_of(const TlsTarget& t) {
  std::vector<ProbeKey> keys;
  if (t.pids.empty()) keys.emplace_back(t.path, -1);
  for (int pid : t.pids) keys.emplace_back(t.path, pid);
  return keys;
}

void TlsCapture::destroy(std::vector<bpf_link*>& links) {
  // Reverse order: return probes go before their entries (see detach()).
  for (auto it = links.rbegin(); it != links.rend(); ++it) bpf_link__destroy(*it);
  links.clear();
}

void TlsCapture::recount() {
  uprobes_ = 0;
  for (const auto& [key, links] : probe_links_) uprobes_ += links.size();
}

Result<void> TlsCapture::retarget(const DiscoveryOptions& discovery) {
  if (keys_)
    return make_error("the targets of a keylog capture are fixed at start-up (key layouts are learnt then); "
                      "restart clearcap with the new library",
                      EINVAL);
  auto found = discover_tls_targets(discovery);
  if (!found) return tl::unexpected(found.error());
  std::map<ProbeKey, std::pair<const TlsTarget*, uint32_t>> wanted;
  for (uint32_t i = 0; i < found->targets.size(); ++i)
    for (auto& key : keys_of(found->targets[i])) wanted.emplace(std::move(key), std::make_pair(&found->targets[i], i));

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
  // Attach what is new first: a file kept as a target never goes unhooked.
  std::map<ProbeKey, std::vector<bpf_link*>> added;
  for (const auto& [key, target] : wanted) {
    if (probe_links_.count(key)) continue;
    auto links = attach_probes(*target.first, key.second, slot_of[target.first].index, data_);
    if (!links) {
      for (auto& [k, ls] : added) destroy(ls);
      fd_unknown_ = had_unknown;
      (void)update_tracepoints();
      return tl::unexpected(links.error());
    }
    added.emplace(key, std::move(*links));
  }
  for (auto it = probe_links_.begin(); it != probe_links_.end();) {
    if (wanted.count(it->first)) {
      ++it;
      continue;
    }
    destroy(it->second);
    it = probe_links_.erase(it);
  }
  probe_links_.merge(added);
  targets_ = std::move(found->targets);
  notes_ = std::move(found->notes);
  recount();
  // The old targets' probes are gone: the tracepoints go too when every
  // remaining target's fd is read from the SSL object.
  fd_unknown_ = fd_unknown;
  if (auto r = update_tracepoints(); !r) return r;
  return {};
}

TlsCapture::~TlsCapture() { detach(); }

void TlsCapture::detach() {
  // Reverse order: return probes go before their entries, so no call can
  // reach a return probe after its entry probe is gone (a false "missing
  // entry state" loss); a call caught between only leaves stale entry state.
  for (auto& [key, links] : probe_links_) destroy(links);
  probe_links_.clear();
  destroy(tracepoint_links_);
  for (int fd : tc_link_fds_) close(fd);  // closing a TCX link's fd detaches it
  tc_link_fds_.clear();
}

Result<void> TlsCapture::attach_packets(int ifindex, const std::string& ifname, bool egress, bool ingress) {
  // BPF_TCX_INGRESS / BPF_TCX_EGRESS (kernel 6.6): Debian 12's libbpf 1.1
  // and uapi headers predate them, so the numbers are spelled out here;
  // bpf_link_create passes them through unchanged.
  constexpr int kTcxIngress = 46, kTcxEgress = 47;
  auto* s = skel_->raw();
  struct {
    bool want;
    bpf_program* prog;
    int attach_type;
    const char* name;
  } hooks[] = {{egress, s->progs.tc_egress, kTcxEgress, "egress"}, {ingress, s->progs.tc_ingress, kTcxIngress, "ingress"}};
  for (const auto& h : hooks) {
    if (!h.want) continue;
    int fd = bpf_link_create(bpf_program__fd(h.prog), ifindex, static_cast<bpf_attach_type>(h.attach_type), nullptr);
    if (fd < 0) {
      int err = -fd;
      return make_error(fmt::format("cannot attach the packet capture to the {} of {} (tcx link): {}{}", h.name,
                                    ifname, std::strerror(err),
                                    err == EINVAL ? " (tcx needs Linux 6.6 or later)" : ""),
                        err);
    }
    tc_link_fds_.push_back(fd);
  }
  return {};
}

Result<void> TlsCapture::attach_tracepoints() {
  if (auto r = ensure_tracefs(); !r) return tl::unexpected(r.error());
  auto* s = skel_->raw();
  bpf_program* progs[] = {s->progs.sys_enter_read,   s->progs.sys_enter_write,  s->progs.sys_enter_readv,
                          s->progs.sys_enter_writev, s->progs.sys_enter_sendto, s->progs.sys_enter_recvfrom,
                          s->progs.sys_enter_sendmsg, s->progs.sys_enter_recvmsg};
  for (bpf_program* p : progs) {
    bpf_link* l = bpf_program__attach(p);
    if (!l) {
      int err = errno;
      return make_error(fmt::format("cannot attach tracepoint {}: {}", bpf_program__section_name(p),
                                    std::strerror(err)),
                        err);
    }
    tracepoint_links_.push_back(l);
  }
  return {};
}

Result<void> TlsCapture::attach_target(const TlsTarget& t, uint32_t slot, bool data) {
  for (const auto& key : keys_of(t)) {
    auto links = attach_probes(t, key.second, slot, data);
    if (!links) return tl::unexpected(links.error());
    auto& slot = probe_links_[key];
    slot.insert(slot.end(), links->begin(), links->end());
  }
  recount();
  return {};
}

Result<std::vector<bpf_link*>> TlsCapture::attach_probes(const TlsTarget& t, int pid, uint32_t slot, bool data) {
  auto* s = skel_->raw();
  const Hook hooks[] = {{"SSL_write", s->progs.ssl_write_entry, s->progs.ssl_ret},
                        {"SSL_read", s->progs.ssl_read_entry, s->progs.ssl_ret},
                        {"SSL_write_ex", s->progs.ssl_write_ex_entry, s->progs.ssl_ret},
                        {"SSL_read_ex", s->progs.ssl_read_ex_entry, s->progs.ssl_ret},
                        {"SSL_set_fd", s->progs.ssl_set_fd_entry, nullptr},
                        {"SSL_do_handshake", s->progs.ssl_handshake_entry, s->progs.ssl_handshake_ret}};
  std::vector<bpf_link*> links;
  {
    for (const Hook& h : hooks) {
      auto it = t.offsets.find(h.function);
      if (it == t.offsets.end()) continue;
      if (!data && h.ret == s->progs.ssl_ret) continue;  // plaintext hooks
      // Entry probe first: a call that starts between the two attachments
      // then only leaves stale per-thread state (overwritten by the thread's
      // next call). The other order would make its return probe run without
      // entry state and count a loss that is not one.
      for (bool ret : {false, true}) {
        bpf_program* prog = ret ? h.ret : h.entry;
        if (!prog) continue;
        // The cookie names the library's layout slot: the probes find its
        // fd and key layouts with it (bpf_get_attach_cookie).
        LIBBPF_OPTS(bpf_uprobe_opts, uopts, .bpf_cookie = slot, .retprobe = ret);
        bpf_link* l = bpf_program__attach_uprobe_opts(prog, pid, t.path.c_str(), it->second, &uopts);
        if (!l) {
          int err = errno;
          if (pid > 0 && err == ESRCH) return links;  // the process exited meanwhile
          // Found through /proc/PID/root of a process that has exited since
          // discovery (the key probe makes that window longer): not an error.
          if (err == ENOENT && t.path.rfind("/proc/", 0) == 0) {
            notes_.push_back(fmt::format("{}: its process exited before the probes were attached", t.display));
            return links;
          }
          destroy(links);
          return make_error(fmt::format("cannot attach {}probe to {} in {}{}: {}", ret ? "uret" : "u", h.function,
                                        t.display, pid > 0 ? fmt::format(" (pid {})", pid) : "",
                                        std::strerror(err)),
                            err);
        }
        links.push_back(l);
      }
    }
  }
  return links;
}

}  // namespace clearcap
