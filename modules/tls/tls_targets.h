// What the tls module looks for: OpenSSL/BoringSSL in a given library or
// executable, the system libssl, and every libssl (or executable with
// OpenSSL linked in) mapped by running processes.
#pragma once

#include "core/library_discovery.h"

namespace clearcap {

using TlsTarget = ProbeTarget;

// SSL_write and SSL_read are required; the _ex variants exist from OpenSSL
// 1.1.1 on; SSL_set_fd and SSL_do_handshake tell the socket of connections
// whose first read makes no syscall (and the handshake gives the keys).
const LibrarySpec& tls_library();

inline Result<TlsTarget> inspect_tls_target(const std::string& path, const std::string& display = {}) {
  return inspect_target(tls_library(), path, display);
}
inline Result<Discovery> discover_tls_targets(const DiscoveryOptions& opts) {
  return discover_targets(tls_library(), opts);
}

}  // namespace clearcap
