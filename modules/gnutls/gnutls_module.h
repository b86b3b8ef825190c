// GnuTLS (clearcap gnutls): plaintext of gnutls_record_send2/_send_range
// and gnutls_record_recv/_recv_seq (bpf/gnutls.bpf.c).
#pragma once

#include "modules/module_info.h"

namespace clearcap {
const ModuleInfo& gnutls_module();
}  // namespace clearcap
