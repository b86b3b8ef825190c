// Learning where a TLS library keeps a connection's secrets and its socket
// fd, without a per-version offset table.
//
// A helper process (fork) loads the library file with dlopen, runs TLS 1.2
// and TLS 1.3 handshakes between two of its own SSL objects over a
// socketpair with a key log callback installed, and so knows the true client
// random and secrets. It then searches the SSL object (and objects reachable
// through its pointers, up to CC_KEY_MAX_DEPTH levels) for those bytes; the
// places found are checked against further handshakes (other cipher suites,
// the server's object). TLS 1.3 handshake traffic secrets that the library
// does not keep are derived later from the handshake secret and transcript
// hash, whose places are found the same way. See docs/keylog.md.
//
// Thread: start-up only, before the capture starts threads: it forks, and the
// child allocates and loads libraries (safe only when no other thread could
// hold the allocator's or the loader's locks at the fork).
#pragma once

#include <cstdint>
#include <string>

#include "clearcap_abi.h"
#include "core/result.h"

namespace clearcap {

struct KeyLayoutResult {
  cc_key_layout layout{};
  std::string summary;  // e.g. "client_random@0x140 master@*0x918+0x50 ..." for --debug
};

// Where the socket fd lives: SSL_set_fd(ssl, N) with distinctive N on two
// objects, N searched behind each pointer of the SSL object; the BIO's
// method type tells socket BIOs from memory BIOs (checked on a memory BIO).
struct FdLayoutResult {
  cc_fd_layout layout{};
  std::string summary;  // e.g. "rbio=0x10 num=0x38 method=0x8 type=0x505" for --debug
};

struct LibraryLayouts {
  Result<FdLayoutResult> fd = make_error("not probed");
  Result<KeyLayoutResult> keys = make_error("not probed");
};

// Runs the probes for one library file (a libssl.so or a build that exports
// the SSL_* functions and can be loaded with dlopen) in one helper process:
// always the fd layout, and the key layout when `keys`. Each error says why
// that layout cannot be used for this file.
LibraryLayouts learn_library_layouts(const std::string& path, bool keys, int timeout_ms = 20000);

}  // namespace clearcap
