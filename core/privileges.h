// Start-up checks that turn kernel refusals into actionable messages.
#pragma once

#include "core/result.h"

namespace clearcap {

// The kernel exposes BTF (needed for CO-RE).
Result<void> check_btf(const char* path = "/sys/kernel/btf/vmlinux");

// The process may load BPF programs, attach uprobes/tracepoints and read
// other processes' memory maps: root, or CAP_BPF + CAP_PERFMON +
// CAP_SYS_PTRACE + CAP_DAC_READ_SEARCH.
Result<void> check_privileges();

}  // namespace clearcap
