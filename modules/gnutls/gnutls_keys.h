// Where a GnuTLS library file reports its secrets, learned by running it:
// gnutls_init() installs a built-in key log callback in every session (it
// is called once per secret, whether or not SSLKEYLOGFILE is set) and
// gnutls_session_get_keylog_function() hands its address out; the session's
// client random is where gnutls_session_get_random() points into the
// session. A forked child loads the very file and asks both, so no
// per-version offset table is needed. The callback is a static function:
// the probe attaches to its file offset.
// Thread: forks; call before any other thread exists, or accept that a
// child stuck on a lock held at the fork is killed at the timeout.
#pragma once

#include <cstdint>
#include <string>

#include "core/result.h"

namespace clearcap {

struct GnutlsKeyLayout {
  uint64_t keylog_offset = 0;      // file offset of the built-in key log callback
  uint32_t client_random_off = 0;  // byte offset of the client random in the session
};

Result<GnutlsKeyLayout> learn_gnutls_keys(const std::string& path, int timeout_ms);

}  // namespace clearcap
