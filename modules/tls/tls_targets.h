// Finding the OpenSSL/BoringSSL code to attach to: a given library or
// executable, the system libssl, and every libssl (or executable with
// OpenSSL linked in) mapped by running processes.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"

namespace clearcap {

struct TlsTarget {
  std::string path;     // path clearcap opens (may go through /proc/PID/root for containers)
  std::string display;  // path as the owning process sees it, for messages
  std::map<std::string, uint64_t> offsets;  // function name -> file offset
  std::vector<int> pids;                    // attach only in these processes; empty = all
};

// The functions hooked by the tls module. SSL_write and SSL_read are required;
// the _ex variants exist from OpenSSL 1.1.1 on; SSL_set_fd and
// SSL_do_handshake tell the socket of connections whose first read makes no
// syscall.
extern const char* const kTlsFunctions[6];

// Checks one file: it exists and defines SSL_write and SSL_read.
Result<TlsTarget> inspect_tls_target(const std::string& path, const std::string& display = {});

struct DiscoveryOptions {
  std::optional<std::string> libssl;  // --libssl
  std::vector<int> pids;              // --pid: only these processes
  std::string proc_root = "/proc";    // for tests
};

struct Discovery {
  std::vector<TlsTarget> targets;
  std::vector<std::string> notes;  // what was skipped and why (shown with --debug)
};

// Errors say what to do: a missing --libssl file, a pid that is not running,
// no OpenSSL found anywhere.
Result<Discovery> discover_tls_targets(const DiscoveryOptions& opts);

}  // namespace clearcap
