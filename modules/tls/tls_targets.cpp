#include "modules/tls/tls_targets.h"

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

const char* const kTlsFunctions[6] = {"SSL_write",    "SSL_read",   "SSL_write_ex",
                                      "SSL_read_ex", "SSL_set_fd", "SSL_do_handshake"};

namespace {

// Where distributions put the system libssl (merged /usr makes some of these
// the same file; candidates are deduplicated by inode).
const char* const kSystemLibssl[] = {
    "/usr/lib/x86_64-linux-gnu/libssl.so.3", "/usr/lib/x86_64-linux-gnu/libssl.so.1.1",
    "/usr/lib64/libssl.so.3",                "/usr/lib64/libssl.so.1.1",
    "/usr/lib/libssl.so.3",                  "/usr/lib/libssl.so.1.1",
    "/lib/x86_64-linux-gnu/libssl.so.3",     "/lib/x86_64-linux-gnu/libssl.so.1.1",
};

bool looks_like_libssl(const std::string& path) {
  auto slash = path.rfind('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  return base.rfind("libssl.so", 0) == 0;
}

struct Candidate {
  std::string path;     // openable path
  std::string display;  // as the process sees it
  int pid = 0;          // owning process, 0 = none
  bool expect_ssl = false;  // a libssl: missing symbols is worth a note
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

void add_process_candidates(const std::string& proc_root, int pid, CandidateSet& set) {
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
    if (!looks_like_libssl(path) || !seen.insert(path).second) continue;
    set.add({base + "/root" + path, path, pid, true});
  }
  // The executable itself may have OpenSSL linked in (node, envoy, ...).
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

Result<TlsTarget> inspect_tls_target(const std::string& path, const std::string& display) {
  std::string shown = display.empty() ? path : display;
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    int err = errno;
    return make_error(fmt::format("{}: {}; pass --libssl=PATH naming a libssl.so or a program with OpenSSL linked in",
                                  shown, std::strerror(err)),
                      err);
  }
  if (!S_ISREG(st.st_mode)) return make_error(fmt::format("{}: not a regular file", shown), EINVAL);
  std::set<std::string> names(std::begin(kTlsFunctions), std::end(kTlsFunctions));
  auto offsets = find_function_offsets(path, names);
  if (!offsets) return make_error(offsets.error().message, offsets.error().err);
  if (!offsets->count("SSL_write") || !offsets->count("SSL_read"))
    return make_error(fmt::format("{}: no SSL_write/SSL_read symbols (not OpenSSL/BoringSSL, or stripped); pass "
                                  "--libssl=PATH naming the library that does TLS",
                                  shown),
                      ENOENT);
  return TlsTarget{path, shown, std::move(*offsets), {}};
}

Result<Discovery> discover_tls_targets(const DiscoveryOptions& opts) {
  Discovery out;
  for (int pid : opts.pids) {
    if (pid <= 0) return make_error(fmt::format("--pid {}: not a process id", pid), EINVAL);
    if (access(fmt::format("{}/{}", opts.proc_root, pid).c_str(), F_OK) != 0)
      return make_error(fmt::format("--pid {}: no such process is running", pid), ESRCH);
  }
  if (opts.libssl) {
    auto t = inspect_tls_target(*opts.libssl);
    if (!t) return tl::unexpected(t.error());
    t->pids = opts.pids;
    out.targets.push_back(std::move(*t));
    return out;
  }

  CandidateSet set;
  if (opts.pids.empty()) {
    for (const char* p : kSystemLibssl) set.add({p, p, 0, true});
    for (int pid : all_pids(opts.proc_root)) add_process_candidates(opts.proc_root, pid, set);
  } else {
    for (int pid : opts.pids) add_process_candidates(opts.proc_root, pid, set);
  }

  for (const auto& item : set.items()) {
    auto t = inspect_tls_target(item.c.path, item.c.display);
    if (!t) {
      if (item.c.expect_ssl) out.notes.push_back(t.error().message);
      continue;
    }
    // System-wide, one probe per file serves every process. With --pid,
    // attach per process so others do not pay for the trap.
    if (!opts.pids.empty()) t->pids.assign(item.pids.begin(), item.pids.end());
    out.targets.push_back(std::move(*t));
  }
  if (out.targets.empty()) {
    if (!opts.pids.empty())
      return make_error(fmt::format("no OpenSSL/BoringSSL found in process(es) {} (neither a mapped libssl nor the "
                                    "executable); pass --libssl=PATH",
                                    fmt::join(opts.pids, ",")),
                        ENOENT);
    return make_error("no OpenSSL library found (looked for the system libssl and in running processes); install "
                      "libssl3 or pass --libssl=PATH",
                      ENOENT);
  }
  return out;
}

}  // namespace clearcap
