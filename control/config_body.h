// The JSON body of the configuration API's module endpoints
// (../shared/spec/config-api.md): strict parsing and type checks, no side
// effects. Checks that need the system (does the library exist, is the pid
// running) are the caller's.
// Thread: free functions, no shared state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

namespace clearcap {

// API response codes (config-api.md).
enum class ApiCode : int {
  kOk = 0,
  kInvalidRequest = 1,
  kInternal = 2,
  kNotFound = 3,
  kDecodeFailed = 4,
  kValidationFailed = 5,
  kBusy = 6,
};

struct ApiError {
  ApiCode code;
  std::string message;  // names the field and what is wrong
};

// What a body asks for; a field left out of the body is std::nullopt (the
// value in force is kept).
struct ConfigPatch {
  std::optional<std::vector<int>> pids;  // pid and/or pids; empty = every process
  std::optional<uint32_t> uid;           // uid or uids; 0 = every user
  std::optional<std::string> cgroup_path;  // "" = every cgroup
  std::optional<bool> hex;
  std::optional<uint64_t> truncate;
  std::optional<std::string> library;    // the module's path field (opensslpath, gnutls, nspr); "" = automatic discovery
  std::optional<std::string> mode;       // capturemode / capture_mode
  std::optional<uint64_t> per_cpu_map_size;
  std::optional<std::string> logger_addr, event_collector_addr, ecapture_q;
  std::optional<std::string> keylogfile, pcapfile, ifname, pcapfilter;
  std::vector<std::string> ignored;      // fields clearcap does not know (other eCapture settings)
};

// Code 4 for anything that is not one JSON object; code 5 for a field of the
// wrong type or out of range. `path_field` is the module's library field
// (ModuleInfo::api_path_field); `modes` the module's capture modes.
tl::expected<ConfigPatch, ApiError> parse_config_body(std::string_view body, std::string_view path_field = "opensslpath",
                                                      const std::vector<std::string>& modes = {"text", "keylog", "pcap"});

}  // namespace clearcap
