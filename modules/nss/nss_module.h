// NSS (clearcap nss): plaintext of PR_Write/PR_Read/PR_Send/PR_Recv on NSPR
// descriptors with an SSL layer (bpf/nss.bpf.c).
#pragma once

#include "modules/module_info.h"

namespace clearcap {
const ModuleInfo& nss_module();
}  // namespace clearcap
