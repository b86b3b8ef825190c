#include "core/probe_attacher.h"

#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <system_error>
#include <thread>

#include <cerrno>
#include <cstring>
#include <functional>
#include <string_view>

#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/tracefs.h"

namespace clearcap {

std::string file_identity(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return fmt::format("{}:{}", st.st_dev, st.st_ino);
}

std::vector<ProbeAttacher::Unit> ProbeAttacher::units_of(const ProbeTarget& t) {
  std::string file = file_identity(t.path);
  if (file.empty()) file = t.path;
  std::vector<Unit> units;
  if (t.pids.empty()) units.emplace_back(file, -1);
  for (int pid : t.pids) units.emplace_back(file, pid);
  return units;
}

namespace {

// Closes every link at once: each detach waits for a kernel grace period,
// and concurrent waits share one.
void close_parallel(std::vector<std::function<void()>>& closes) {
  if (closes.size() <= 1) {
    for (auto& c : closes) c();
    return;
  }
  std::vector<std::thread> threads;
  for (auto& c : closes) {
    try {
      threads.emplace_back(c);
    } catch (const std::system_error&) {
      c();  // no thread to spare: this one waits its turn
    }
  }
  for (auto& t : threads) t.join();
}

}  // namespace

void ProbeAttacher::destroy(std::vector<bpf_link*>& links) { destroy({}, &links); }

void ProbeAttacher::destroy(std::vector<Held*> held, std::vector<bpf_link*>* tracepoints) {
  for (bool returns : {true, false}) {
    std::vector<std::function<void()>> closes;
    for (Held* h : held)
      for (Link& l : returns ? h->returns : h->entries) {
        if (l.link) closes.push_back([p = l.link] { bpf_link__destroy(p); });
        if (l.fd >= 0) closes.push_back([fd = l.fd] { ::close(fd); });
      }
    // Tracepoints have no order with the uprobes: they go with the first
    // batch, so their grace periods overlap too.
    if (returns && tracepoints)
      for (bpf_link* l : *tracepoints) closes.push_back([l] { bpf_link__destroy(l); });
    close_parallel(closes);
    for (Held* h : held) (returns ? h->returns : h->entries).clear();
    if (returns && tracepoints) tracepoints->clear();
  }
  for (Held* h : held) h->probes = 0;
}

void ProbeAttacher::recount() {
  uprobes_ = 0;
  for (const auto& [unit, held] : units_) uprobes_ += held.probes;
}

// BPF_TRACE_UPROBE_MULTI and its link_create attributes (Linux 6.6):
// Debian 12's libbpf 1.1 and uapi headers predate them, so the attach type
// and the attribute layout are spelled out here (linux/bpf.h, union
// bpf_attr, link_create.uprobe_multi).
constexpr int kTraceUprobeMulti = 48;
constexpr uint32_t kUprobeMultiReturn = 1;  // BPF_F_UPROBE_MULTI_RETURN
struct UprobeMultiAttr {
  uint32_t prog_fd, target_fd, attach_type, flags;
  uint64_t path, offsets, ref_ctr_offsets, cookies;
  uint32_t cnt, multi_flags, pid;
  uint32_t _pad[9];  // the rest of union bpf_attr's link_create, zeroed
};

bool uprobe_multi_supported() {
  static const bool supported = [] {
    btf* vmlinux = btf__load_vmlinux_btf();
    if (!vmlinux) return false;
    // The link's kernel type exists exactly where the attach type does.
    bool found = btf__find_by_name_kind(vmlinux, "bpf_uprobe_multi_link", BTF_KIND_STRUCT) > 0;
    btf__free(vmlinux);
    return found;
  }();
  return supported;
}

void prepare_uprobe_programs(bpf_object* obj) {
  if (!uprobe_multi_supported()) return;
  bpf_program* p = nullptr;
  bpf_object__for_each_program(p, obj) {
    std::string_view sec = bpf_program__section_name(p);
    if (sec == "uprobe" || sec == "uretprobe")
      bpf_program__set_expected_attach_type(p, static_cast<bpf_attach_type>(kTraceUprobeMulti));
  }
}

bool ProbeAttacher::gone_meanwhile(const ProbeTarget& t, int pid, int err) {
  if (pid > 0 && err == ESRCH) return true;  // the unit's process exited
  // Found through /proc/PID/root of a process that has exited since
  // discovery: not an error.
  if (err == ENOENT && t.path.rfind("/proc/", 0) == 0) {
    notes_.push_back({Note::Severity::kDebug,
                      fmt::format("{}: its process exited before the probes were attached", t.display)});
    return true;
  }
  return false;
}

namespace {

// One probe of a target: a program at a function's entry or return.
struct Probe {
  bpf_program* prog;
  bool ret;
  const std::string& symbol;
  uint64_t offset;
};

// The probes of `specs` that target `t` has, in table order, each entry
// before its return: the rows whose function `t` has and whose `unless`
// function it does not.
std::vector<Probe> probes_of(const ProbeTarget& t, std::span<const ProbeSpec> specs) {
  std::vector<Probe> out;
  for (const ProbeSpec& s : specs) {
    auto it = t.offsets.find(s.symbol);
    if (it == t.offsets.end()) continue;
    if (!s.unless.empty() && t.offsets.count(s.unless)) continue;
    if (s.entry) out.push_back({s.entry, false, s.symbol, it->second});
    if (s.ret) out.push_back({s.ret, true, s.symbol, it->second});
  }
  return out;
}

}  // namespace

Result<ProbeAttacher::Held> ProbeAttacher::attach_unit(const ProbeTarget& t, int pid,
                                                       std::span<const ProbeSpec> specs, uint64_t cookie) {
  if (uprobe_multi_supported()) return attach_unit_multi(t, pid, specs, cookie);
  Held held;
  // Entry probe first: a call that starts between the two attachments then
  // only leaves stale per-thread state (overwritten by the thread's next
  // call).
  for (const Probe& p : probes_of(t, specs)) {
    LIBBPF_OPTS(bpf_uprobe_opts, uopts, .bpf_cookie = cookie, .retprobe = p.ret);
    bpf_link* l = bpf_program__attach_uprobe_opts(p.prog, pid, t.path.c_str(), p.offset, &uopts);
    if (!l) {
      int err = errno;
      if (gone_meanwhile(t, pid, err)) return held;
      destroy({&held});
      return make_error(fmt::format("cannot attach {}probe to {} in {}{}: {}", p.ret ? "uret" : "u", p.symbol,
                                    t.display, pid > 0 ? fmt::format(" (pid {})", pid) : "", std::strerror(err)),
                        err);
    }
    (p.ret ? held.returns : held.entries).push_back({.link = l});
    ++held.probes;
  }
  return held;
}

Result<ProbeAttacher::Held> ProbeAttacher::attach_unit_multi(const ProbeTarget& t, int pid,
                                                             std::span<const ProbeSpec> specs, uint64_t cookie) {
  // Offsets per (program, return or not), in the table's order.
  struct Group {
    bpf_program* prog;
    bool ret;
    std::vector<uint64_t> offsets;
    std::vector<std::string> symbols;
  };
  std::vector<Group> groups;
  for (const Probe& p : probes_of(t, specs)) {
    auto g = std::find_if(groups.begin(), groups.end(), [&](const Group& x) { return x.prog == p.prog && x.ret == p.ret; });
    if (g == groups.end()) g = groups.insert(groups.end(), Group{p.prog, p.ret, {}, {}});
    g->offsets.push_back(p.offset);
    g->symbols.push_back(p.symbol);
  }
  // Every entry link before any return link (see attach_unit).
  std::stable_partition(groups.begin(), groups.end(), [](const Group& g) { return !g.ret; });
  Held held;
  for (const Group& g : groups) {
    std::vector<uint64_t> cookies(g.offsets.size(), cookie);
    UprobeMultiAttr a{};
    a.prog_fd = static_cast<uint32_t>(bpf_program__fd(g.prog));
    a.attach_type = kTraceUprobeMulti;
    a.path = reinterpret_cast<uint64_t>(t.path.c_str());
    a.offsets = reinterpret_cast<uint64_t>(g.offsets.data());
    a.cookies = reinterpret_cast<uint64_t>(cookies.data());
    a.cnt = static_cast<uint32_t>(g.offsets.size());
    a.multi_flags = g.ret ? kUprobeMultiReturn : 0;
    a.pid = pid > 0 ? static_cast<uint32_t>(pid) : 0;
    int fd = static_cast<int>(syscall(SYS_bpf, BPF_LINK_CREATE, &a, sizeof(a)));
    if (fd < 0) {
      int err = errno;
      if (gone_meanwhile(t, pid, err)) return held;
      destroy({&held});
      return make_error(fmt::format("cannot attach {}probes to {} in {}{}: {}", g.ret ? "uret" : "u",
                                    fmt::join(g.symbols, ", "), t.display,
                                    pid > 0 ? fmt::format(" (pid {})", pid) : "", std::strerror(err)),
                        err);
    }
    (g.ret ? held.returns : held.entries).push_back({.fd = fd});
    held.probes += g.offsets.size();
  }
  return held;
}

Result<void> ProbeAttacher::attach(const ProbeTarget& t, std::span<const ProbeSpec> specs, uint64_t cookie) {
  for (const auto& unit : units_of(t)) {
    if (units_.count(unit)) continue;  // the same file under another name: hooked already
    auto held = attach_unit(t, unit.second, specs, cookie);
    if (!held) return tl::unexpected(held.error());
    Held& mine = units_[unit];
    for (bool ret : {false, true}) {
      auto& to = ret ? mine.returns : mine.entries;
      auto& from = ret ? held->returns : held->entries;
      to.insert(to.end(), from.begin(), from.end());
    }
    mine.probes += held->probes;
  }
  recount();
  return {};
}

Result<void> ProbeAttacher::retarget(const std::vector<ProbeTarget>& targets, std::span<const ProbeSpec> specs,
                                     const std::function<uint64_t(const ProbeTarget&)>& cookie_of) {
  std::map<Unit, const ProbeTarget*> wanted;
  for (const auto& t : targets)
    for (auto& unit : units_of(t)) wanted.emplace(std::move(unit), &t);
  // Attach what is new first: a unit kept as a target never goes unhooked.
  std::map<Unit, Held> added;
  auto drop = [](std::map<Unit, Held>& units) {
    std::vector<Held*> all;
    for (auto& [u, h] : units) all.push_back(&h);
    destroy(all);
  };
  for (const auto& [unit, target] : wanted) {
    if (units_.count(unit)) continue;
    auto held = attach_unit(*target, unit.second, specs, cookie_of(*target));
    if (!held) {
      drop(added);
      return tl::unexpected(held.error());
    }
    added.emplace(unit, std::move(*held));
  }
  std::map<Unit, Held> gone;
  for (auto it = units_.begin(); it != units_.end();) {
    if (wanted.count(it->first)) {
      ++it;
      continue;
    }
    gone.insert(units_.extract(it++));
  }
  drop(gone);
  units_.merge(added);
  recount();
  return {};
}

Result<void> ProbeAttacher::attach_tracepoints(std::span<bpf_program* const> progs) {
  if (!tracepoints_.empty()) return {};
  if (auto r = ensure_tracefs(); !r) return tl::unexpected(r.error());
  for (bpf_program* p : progs) {
    bpf_link* l = bpf_program__attach(p);
    if (!l) {
      int err = errno;
      destroy(tracepoints_);
      return make_error(fmt::format("cannot attach tracepoint {}: {}", bpf_program__section_name(p),
                                    std::strerror(err)),
                        err);
    }
    tracepoints_.push_back(l);
  }
  return {};
}

std::vector<bpf_program*> syscall_fd_programs(bpf_object* obj) {
  constexpr std::string_view kPrefix = "tracepoint/syscalls/sys_enter_";
  std::vector<bpf_program*> out;
  bpf_program* p = nullptr;
  bpf_object__for_each_program(p, obj) {
    if (std::string_view(bpf_program__section_name(p)).starts_with(kPrefix)) out.push_back(p);
  }
  return out;
}

void ProbeAttacher::detach_tracepoints() { destroy(tracepoints_); }

void ProbeAttacher::detach() {
  std::vector<Held*> all;
  for (auto& [unit, held] : units_) all.push_back(&held);
  destroy(all, &tracepoints_);
  units_.clear();
  uprobes_ = 0;
}

}  // namespace clearcap
