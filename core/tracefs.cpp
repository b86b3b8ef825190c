#include "core/tracefs.h"

#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace clearcap {

Result<std::string> ensure_tracefs() {
  // libbpf looks in these two places, in this order.
  for (const char* root : {"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}) {
    if (access(fmt::format("{}/events", root).c_str(), F_OK) == 0) return std::string(root);
  }
  if (mount("nodev", "/sys/kernel/tracing", "tracefs", 0, nullptr) == 0 &&
      access("/sys/kernel/tracing/events", F_OK) == 0)
    return std::string("/sys/kernel/tracing");
  int err = errno;
  return make_error(fmt::format("tracefs is not mounted and mounting it on /sys/kernel/tracing failed ({}); mount it "
                                "with `mount -t tracefs nodev /sys/kernel/tracing` and run clearcap again",
                                std::strerror(err)),
                    err);
}

}  // namespace clearcap
