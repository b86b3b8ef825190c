// A cgroup v2 directory as the filters need it: its id (the directory's
// inode number, what the kernel reports as the cgroup id) and its depth
// below the hierarchy's root (the BPF filter compares the task's ancestor
// at that depth, so a filter on a cgroup covers its whole subtree).
#pragma once

#include <cstdint>
#include <string>

#include "core/result.h"

namespace clearcap {

struct Cgroup {
  std::string path;    // "" = every cgroup
  uint64_t id = 0;     // 0 = every cgroup
  uint32_t level = 0;  // the root is 0
};

// Where cgroup2 is mounted (/sys/fs/cgroup, or /sys/fs/cgroup/unified on
// hybrid systems).
std::string cgroup2_mount();

// `path` absolute, or relative to the cgroup2 mount. Errors name the path and
// what is wrong with it (missing, not a cgroup v2 directory).
Result<Cgroup> resolve_cgroup(const std::string& path);

}  // namespace clearcap
