#include "core/library_discovery.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/elf_symbols.h"

namespace clearcap {

namespace {

bool looks_like(const LibrarySpec& spec, const std::string& path) {
  auto slash = path.rfind('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  for (const auto& p : spec.file_prefixes)
    if (base.rfind(p, 0) == 0) return true;
  return false;
}

struct Candidate {
  std::string path;     // openable path
  std::string display;  // as the process sees it
  int pid = 0;          // owning process, 0 = none
  bool expected = false;  // named like the library: missing symbols is worth a note
};

class CandidateSet {
 public:
  // Returns true if the file was not seen before.
  bool add(const Candidate& c) {
    struct stat st;
    if (stat(c.path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
    auto key = std::make_pair(static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino));
    auto it = index_.find(key);
    if (it != index_.end()) {
      if (c.pid) items_[it->second].pids.insert(c.pid);
      return false;
    }
    index_[key] = items_.size();
    items_.push_back({c, {}});
    if (c.pid) items_.back().pids.insert(c.pid);
    return true;
  }
  struct Item {
    Candidate c;
    std::set<int> pids;
  };
  const std::vector<Item>& items() const { return items_; }

 private:
  std::map<std::pair<uint64_t, uint64_t>, size_t> index_;
  std::vector<Item> items_;
};

void add_process_candidates(const LibrarySpec& spec, const std::string& proc_root, int pid, CandidateSet& set) {
  std::string base = fmt::format("{}/{}", proc_root, pid);
  std::ifstream maps(base + "/maps");
  std::string line;
  std::set<std::string> seen;
  while (std::getline(maps, line)) {
    // address perms offset dev inode pathname
    std::istringstream ls(line);
    std::string addr, perms, off, dev, inode, path;
    if (!(ls >> addr >> perms >> off >> dev >> inode)) continue;
    std::getline(ls >> std::ws, path);
    if (path.empty() || path[0] != '/' || inode == "0" || path.find(" (deleted)") != std::string::npos) continue;
    if (!looks_like(spec, path) || !seen.insert(path).second) continue;
    set.add({base + "/root" + path, path, pid, true});
  }
  // The executable itself may have the library linked in (node, envoy, ...).
  if (!spec.executables) return;
  char exe[4096];
  ssize_t n = readlink((base + "/exe").c_str(), exe, sizeof(exe) - 1);
  if (n > 0) {
    exe[n] = '\0';
    std::string exe_path(exe);
    if (exe_path.find(" (deleted)") == std::string::npos) set.add({base + "/root" + exe_path, exe_path, pid, false});
  }
}

std::vector<int> all_pids(const std::string& proc_root) {
  std::vector<int> pids;
  DIR* d = opendir(proc_root.c_str());
  if (!d) return pids;
  while (dirent* e = readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (end && *end == '\0' && pid > 0) pids.push_back(static_cast<int>(pid));
  }
  closedir(d);
  return pids;
}

}  // namespace

Result<ProbeTarget> inspect_target(const LibrarySpec& spec, const std::string& path, const std::string& display) {
  std::string shown = display.empty() ? path : display;
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    int err = errno;
    return make_error(fmt::format("{}: {}; pass {}=PATH naming {}", shown, std::strerror(err), spec.flag,
                                  spec.what_file),
                      err);
  }
  if (!S_ISREG(st.st_mode)) return make_error(ErrorKind::kInvalid, fmt::format("{}: not a regular file", shown), EINVAL);
  std::set<std::string> names(spec.functions.begin(), spec.functions.end());
  auto offsets = find_function_offsets(path, names);
  if (!offsets) return tl::unexpected(offsets.error());
  for (const auto& group : spec.required) {
    bool any = false;
    for (const auto& f : group) any |= offsets->count(f) > 0;
    if (!any)
      return make_error(ErrorKind::kNotFound,
                        fmt::format("{}: no {} symbol (not {}, or stripped); pass {}=PATH naming the library that "
                                    "does the encryption",
                                    shown, fmt::join(group, "/"), spec.what, spec.flag),
                        ENOENT);
  }
  return ProbeTarget{path, shown, std::move(*offsets), {}};
}

Result<Discovery> discover_targets(const LibrarySpec& spec, const DiscoveryOptions& opts) {
  Discovery out;
  for (int pid : opts.pids) {
    if (pid <= 0) return make_error(ErrorKind::kInvalid, fmt::format("--pid {}: not a process id", pid), EINVAL);
    if (access(fmt::format("{}/{}", opts.proc_root, pid).c_str(), F_OK) != 0)
      return make_error(ErrorKind::kExited, fmt::format("--pid {}: no such process is running", pid), ESRCH);
  }
  if (opts.library) {
    auto t = inspect_target(spec, *opts.library);
    if (!t) return tl::unexpected(t.error());
    t->pids = opts.pids;
    if (spec.place && !opts.at_symbols) spec.place(*t);
    out.targets.push_back(std::move(*t));
    return out;
  }

  CandidateSet set;
  if (opts.pids.empty()) {
    for (const auto& p : spec.system_paths) set.add({p, p, 0, true});
    for (int pid : all_pids(opts.proc_root)) add_process_candidates(spec, opts.proc_root, pid, set);
  } else {
    for (int pid : opts.pids) add_process_candidates(spec, opts.proc_root, pid, set);
  }

  for (const auto& item : set.items()) {
    auto t = inspect_target(spec, item.c.path, item.c.display);
    if (!t) {
      if (item.c.expected) out.notes.push_back(t.error().message);
      continue;
    }
    // System-wide, one probe per file serves every process. With --pid,
    // attach per process so others do not pay for the trap.
    if (!opts.pids.empty()) t->pids.assign(item.pids.begin(), item.pids.end());
    if (spec.place && !opts.at_symbols) spec.place(*t);
    out.targets.push_back(std::move(*t));
  }
  if (out.targets.empty()) {
    if (!opts.pids.empty())
      return make_error(ErrorKind::kNotFound,
                        fmt::format("no {} found in process(es) {} (neither a mapped {}{}); pass {}=PATH", spec.what,
                                    fmt::join(opts.pids, ","), spec.file_prefixes.front(),
                                    spec.executables ? " nor the executable" : "", spec.flag),
                        ENOENT);
    return make_error(ErrorKind::kNotFound,
                      fmt::format("no {} library found (looked for the system {} and in running processes); {} or "
                                  "pass {}=PATH",
                                  spec.what, spec.file_prefixes.front(), spec.install_hint, spec.flag),
                      ENOENT);
  }
  return out;
}

}  // namespace clearcap
