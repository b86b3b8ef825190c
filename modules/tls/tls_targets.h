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

// Not symbols: the function that SSL_write and SSL_write_ex both hand their
// call to (OpenSSL's ssl_write_internal), and the same for reading, in a
// target's offsets when the probes sit there (place_tls_probes).
inline constexpr const char* kSslWriteInner = "<the function SSL_write and SSL_write_ex call>";
inline constexpr const char* kSslReadInner = "<the function SSL_read and SSL_read_ex call>";

// Where the data probes of `t` cost least: at SSL_read/SSL_read_ex (and the
// write pair) themselves, or at the one function both call when its first
// instruction is emulated by the kernel and theirs is not (see
// core/probe_placement.h). The probes there see the same arguments
// (SSL*, buffer, length, size_t *count) and a return value > 0 with the
// count in *count exactly when SSL_read_ex would return 1. Adds the
// offsets under kSslReadInner/kSslWriteInner and says why in t.notes.
void place_tls_probes(TlsTarget& t);

inline Result<TlsTarget> inspect_tls_target(const std::string& path, const std::string& display = {}) {
  return inspect_target(tls_library(), path, display);
}
inline Result<Discovery> discover_tls_targets(const DiscoveryOptions& opts) {
  return discover_targets(tls_library(), opts);
}

}  // namespace clearcap
