#include "core/cgroup.h"

#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include <fmt/format.h>

namespace clearcap {

namespace {

bool is_cgroup2_dir(const std::string& p, struct stat* st) {
  struct statfs fs;
  return stat(p.c_str(), st) == 0 && S_ISDIR(st->st_mode) && statfs(p.c_str(), &fs) == 0 &&
         fs.f_type == CGROUP2_SUPER_MAGIC;
}

}  // namespace

std::string cgroup2_mount() {
  // /proc/self/mounts: "cgroup2 /sys/fs/cgroup cgroup2 rw,... 0 0"; hybrid
  // systems mount it at /sys/fs/cgroup/unified.
  std::ifstream mounts("/proc/self/mounts");
  std::string dev, dir, type, rest;
  while (mounts >> dev >> dir >> type && std::getline(mounts, rest))
    if (type == "cgroup2") return dir;
  return "/sys/fs/cgroup";
}

Result<Cgroup> resolve_cgroup(const std::string& given) {
  std::string path = !given.empty() && given.front() == '/' ? given : cgroup2_mount() + "/" + given;
  char real[4096];
  if (!realpath(path.c_str(), real)) {
    int err = errno;
    return make_error(fmt::format("{}: {}", path, std::strerror(err)), err);
  }
  path = real;
  struct stat st;
  if (!is_cgroup2_dir(path, &st))
    return make_error(ErrorKind::kInvalid,
                      fmt::format("{} is not a cgroup v2 directory (cgroup2 is mounted at {})", path, cgroup2_mount()),
                      EINVAL);
  Cgroup c{path, static_cast<uint64_t>(st.st_ino), 0};
  // Depth: parent directories on the same cgroup2 mount up to its root.
  std::string up = path;
  while (true) {
    auto slash = up.rfind('/');
    if (slash == std::string::npos || slash == 0) break;
    up.resize(slash);
    struct stat pst;
    if (!is_cgroup2_dir(up, &pst) || pst.st_dev != st.st_dev) break;
    ++c.level;
  }
  return c;
}

}  // namespace clearcap
