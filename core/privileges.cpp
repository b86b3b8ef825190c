#include "core/privileges.h"

#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace clearcap {

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

Result<void> check_btf(const char* path) {
  if (access(path, R_OK) == 0) return {};
  return make_error(fmt::format("this kernel exposes no BTF ({} is missing): clearcap needs a kernel built with "
                                "CONFIG_DEBUG_INFO_BTF=y (the default in Debian 11+, Ubuntu 20.10+, RHEL 8.2+)",
                                path),
                    ENOENT);
}

Result<void> check_privileges() {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (syscall(SYS_capget, &hdr, data) != 0)
    return make_error(fmt::format("cannot read this process's capabilities: {}", std::strerror(errno)), errno);
  struct Need {
    int cap;
    const char* name;
  };
  const Need needs[] = {{CAP_BPF, "CAP_BPF"},
                        {CAP_PERFMON, "CAP_PERFMON"},
                        {CAP_SYS_PTRACE, "CAP_SYS_PTRACE"},
                        {CAP_DAC_READ_SEARCH, "CAP_DAC_READ_SEARCH"}};
  std::vector<std::string> missing;
  bool sys_admin = data[CAP_TO_INDEX(CAP_SYS_ADMIN)].effective & CAP_TO_MASK(CAP_SYS_ADMIN);
  for (const Need& n : needs) {
    bool have = data[CAP_TO_INDEX(n.cap)].effective & CAP_TO_MASK(n.cap);
    // Before Linux 5.8 CAP_SYS_ADMIN stood in for CAP_BPF and CAP_PERFMON.
    if (!have && sys_admin && (n.cap == CAP_BPF || n.cap == CAP_PERFMON)) have = true;
    if (!have) missing.emplace_back(n.name);
  }
  if (missing.empty()) return {};
  return make_error(fmt::format("not enough privilege: run clearcap as root, or grant CAP_BPF, CAP_PERFMON, "
                                "CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH (missing: {}), e.g. `sudo setcap "
                                "cap_bpf,cap_perfmon,cap_sys_ptrace,cap_dac_read_search+ep build/clearcap`",
                                fmt::join(missing, ", ")),
                    EPERM);
}

}  // namespace clearcap
