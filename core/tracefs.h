// Syscall tracepoints are attached by id, read from tracefs. Many minimal
// systems (and this project's VMs) boot without tracefs mounted.
#pragma once

#include <string>

#include "core/result.h"

namespace clearcap {

// Returns the tracefs root holding events/, mounting tracefs on
// /sys/kernel/tracing when no tracefs is mounted yet.
Result<std::string> ensure_tracefs();

}  // namespace clearcap
