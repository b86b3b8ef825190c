// OpenSSL/BoringSSL (clearcap tls).
#pragma once

#include "modules/module_info.h"

namespace clearcap {
const ModuleInfo& tls_module();
}  // namespace clearcap
