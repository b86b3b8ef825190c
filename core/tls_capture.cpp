#include "core/tls_capture.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>

#include "core/key_layout.h"
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

  auto skel = TlsSkeleton::open_and_load(opts.skel);
  if (!skel) return tl::unexpected(skel.error());
  self->skel_ = std::move(*skel);

  cc_filter_cfg cfg{};
  std::vector<uint32_t> pids(opts.discovery.pids.begin(), opts.discovery.pids.end());
  if (!pids.empty()) cfg.flags |= CC_FILTER_PID;
  if (opts.uid != 0) {
    cfg.flags |= CC_FILTER_UID;
    cfg.uid = opts.uid;
  }
  if (auto r = self->skel_->set_filter(cfg, pids); !r) return tl::unexpected(r.error());

  if (opts.keys)
    if (auto r = self->learn_keys(); !r) return tl::unexpected(r.error());

  // Tracepoints before uprobes: a call in flight must find its fd.
  if (auto r = self->attach_tracepoints(); !r) return tl::unexpected(r.error());
  for (uint32_t i = 0; i < self->targets_.size(); ++i)
    if (auto r = self->attach_target(self->targets_[i], i, opts.data); !r) return tl::unexpected(r.error());
  return self;
}

// Start-up, before any thread: learn_key_layout forks.
Result<void> TlsCapture::learn_keys() {
  int fd = bpf_map__fd(skel_->raw()->maps.key_layouts);
  uint32_t max = bpf_map__max_entries(skel_->raw()->maps.key_layouts);
  for (uint32_t i = 0; i < targets_.size(); ++i) {
    const TlsTarget& t = targets_[i];
    if (!t.offsets.count("SSL_do_handshake")) {
      key_notes_.push_back(fmt::format("keys cannot be captured for {}: it has no SSL_do_handshake", t.display));
      continue;
    }
    if (i >= max) {
      key_notes_.push_back(fmt::format("keys cannot be captured for {}: more than {} libraries hooked", t.display, max));
      continue;
    }
    auto layout = learn_key_layout(t.path);
    if (!layout) {
      key_notes_.push_back(fmt::format("keys cannot be captured for {}: {}", t.display, layout.error().message));
      continue;
    }
    if (bpf_map_update_elem(fd, &i, &layout->layout, BPF_ANY)) {
      int err = errno;
      return make_error(fmt::format("cannot store the key layout of {}: {}", t.display, std::strerror(err)), err);
    }
    key_notes_.push_back(fmt::format("keys of {}: {}", t.display, layout->summary));
    ++key_targets_;
  }
  return {};
}

TlsCapture::~TlsCapture() { detach(); }

void TlsCapture::detach() {
  // Reverse order: return probes go before their entries, so no call can
  // reach a return probe after its entry probe is gone (a false "missing
  // entry state" loss); a call caught between only leaves stale entry state.
  for (auto it = links_.rbegin(); it != links_.rend(); ++it) bpf_link__destroy(*it);
  links_.clear();
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
    links_.push_back(l);
  }
  return {};
}

Result<void> TlsCapture::attach_target(const TlsTarget& t, uint32_t index, bool data) {
  auto* s = skel_->raw();
  const Hook hooks[] = {{"SSL_write", s->progs.ssl_write_entry, s->progs.ssl_ret},
                        {"SSL_read", s->progs.ssl_read_entry, s->progs.ssl_ret},
                        {"SSL_write_ex", s->progs.ssl_write_ex_entry, s->progs.ssl_ret},
                        {"SSL_read_ex", s->progs.ssl_read_ex_entry, s->progs.ssl_ret},
                        {"SSL_set_fd", s->progs.ssl_set_fd_entry, nullptr},
                        {"SSL_do_handshake", s->progs.ssl_handshake_entry, s->progs.ssl_handshake_ret}};
  std::vector<int> pids = t.pids;
  if (pids.empty()) pids.push_back(-1);  // every process that maps the file
  for (int pid : pids) {
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
        // The cookie names the target: the handshake return probe finds the
        // target's key layout with it (bpf_get_attach_cookie).
        LIBBPF_OPTS(bpf_uprobe_opts, uopts, .bpf_cookie = index, .retprobe = ret);
        bpf_link* l = bpf_program__attach_uprobe_opts(prog, pid, t.path.c_str(), it->second, &uopts);
        if (!l) {
          int err = errno;
          if (pid > 0 && err == ESRCH) break;  // the process exited meanwhile
          // Found through /proc/PID/root of a process that has exited since
          // discovery (the key probe makes that window longer): not an error.
          if (err == ENOENT && t.path.rfind("/proc/", 0) == 0) {
            notes_.push_back(fmt::format("{}: its process exited before the probes were attached", t.display));
            return {};
          }
          return make_error(fmt::format("cannot attach {}probe to {} in {}{}: {}", ret ? "uret" : "u", h.function,
                                        t.display, pid > 0 ? fmt::format(" (pid {})", pid) : "",
                                        std::strerror(err)),
                            err);
        }
        links_.push_back(l);
        ++uprobes_;
      }
    }
  }
  return {};
}

}  // namespace clearcap
