#include "core/probe_attacher.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <string_view>

#include <bpf/libbpf.h>
#include <fmt/format.h>

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

void ProbeAttacher::destroy(std::vector<bpf_link*>& links) {
  // Reverse order: return probes go before their entries.
  for (auto it = links.rbegin(); it != links.rend(); ++it) bpf_link__destroy(*it);
  links.clear();
}

void ProbeAttacher::recount() {
  uprobes_ = 0;
  for (const auto& [unit, links] : units_) uprobes_ += links.size();
}

Result<std::vector<bpf_link*>> ProbeAttacher::attach_unit(const ProbeTarget& t, int pid,
                                                          std::span<const ProbeSpec> specs, uint64_t cookie) {
  std::vector<bpf_link*> links;
  for (const ProbeSpec& s : specs) {
    auto it = t.offsets.find(s.symbol);
    if (it == t.offsets.end()) continue;
    if (!s.unless.empty() && t.offsets.count(s.unless)) continue;
    // Entry probe first: a call that starts between the two attachments
    // then only leaves stale per-thread state (overwritten by the thread's
    // next call).
    for (bool ret : {false, true}) {
      bpf_program* prog = ret ? s.ret : s.entry;
      if (!prog) continue;
      LIBBPF_OPTS(bpf_uprobe_opts, uopts, .bpf_cookie = cookie, .retprobe = ret);
      bpf_link* l = bpf_program__attach_uprobe_opts(prog, pid, t.path.c_str(), it->second, &uopts);
      if (!l) {
        int err = errno;
        if (pid > 0 && err == ESRCH) return links;  // the process exited meanwhile
        // Found through /proc/PID/root of a process that has exited since
        // discovery: not an error.
        if (err == ENOENT && t.path.rfind("/proc/", 0) == 0) {
          notes_.push_back({Note::Severity::kDebug,
                            fmt::format("{}: its process exited before the probes were attached", t.display)});
          return links;
        }
        destroy(links);
        return make_error(fmt::format("cannot attach {}probe to {} in {}{}: {}", ret ? "uret" : "u", s.symbol,
                                      t.display, pid > 0 ? fmt::format(" (pid {})", pid) : "", std::strerror(err)),
                          err);
      }
      links.push_back(l);
    }
  }
  return links;
}

Result<void> ProbeAttacher::attach(const ProbeTarget& t, std::span<const ProbeSpec> specs, uint64_t cookie) {
  for (const auto& unit : units_of(t)) {
    if (units_.count(unit)) continue;  // the same file under another name: hooked already
    auto links = attach_unit(t, unit.second, specs, cookie);
    if (!links) return tl::unexpected(links.error());
    auto& held = units_[unit];
    held.insert(held.end(), links->begin(), links->end());
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
  std::map<Unit, std::vector<bpf_link*>> added;
  for (const auto& [unit, target] : wanted) {
    if (units_.count(unit)) continue;
    auto links = attach_unit(*target, unit.second, specs, cookie_of(*target));
    if (!links) {
      for (auto& [u, ls] : added) destroy(ls);
      return tl::unexpected(links.error());
    }
    added.emplace(unit, std::move(*links));
  }
  for (auto it = units_.begin(); it != units_.end();) {
    if (wanted.count(it->first)) {
      ++it;
      continue;
    }
    destroy(it->second);
    it = units_.erase(it);
  }
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
  for (auto& [unit, links] : units_) destroy(links);
  units_.clear();
  destroy(tracepoints_);
  uprobes_ = 0;
}

}  // namespace clearcap
