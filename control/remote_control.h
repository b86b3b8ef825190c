// The configuration API of a running capture (spec/config-api.md), for
// whichever module runs: POST /<module> (and its aliases) with the module's
// own library field, GET /status, GET /metrics. Routes requests, validates
// bodies, and applies a new configuration to the running capture without
// stopping it.
//
// In place (nothing detached): pid/uid/cgroup filters through the BPF maps
// (CaptureSession::set_filter), truncate/hex through the processor.
// Re-attach (rings, readers, processor and sinks stay up): a new library path,
// or a pid set outside the processes the probes were attached in (a capture
// started with --pid has probes only in those processes).
//
// Thread: handle() is called from the API's io threads, concurrently. One
// change is applied at a time (a second one meanwhile gets code 6 / 503);
// GET /status and /metrics never wait for a change in progress.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "control/api_server.h"
#include "control/config_body.h"
#include "core/cgroup.h"

namespace clearcap {

class CaptureModule;
class CaptureSession;
struct ModuleInfo;

// The configuration in force.
struct LiveConfig {
  std::vector<int> pids;             // empty = every process
  uint32_t uid = 0;                  // 0 = every user
  Cgroup cgroup;                     // path "" = every cgroup (else its subtree)
  bool hex = false;
  uint64_t truncate = 0;
  std::optional<std::string> library;  // the module's library path; nullopt = automatic discovery
  std::string mode = "text";
  uint64_t ring_bytes = 0;           // per CPU
  std::string ecapture_q;            // the --ecaptureq URL in use, "" = none
  std::vector<int> probe_pids;       // the processes the uprobes are attached in; empty = all
  std::vector<std::string> targets;  // files hooked (display names)
  size_t uprobes = 0;
};

class RemoteControl {
 public:
  struct Hooks {
    std::function<std::string()> metrics;        // Prometheus text
    std::function<std::string()> counters_json;  // one JSON object
    std::function<void(const std::string&)> log; // clearcap's own log
  };
  RemoteControl(const ModuleInfo& module, CaptureSession& session, CaptureModule& capture, LiveConfig initial,
                Hooks hooks);

  ApiReply handle(const ApiRequest& req);

  LiveConfig config() const;

 private:
  ApiReply post_module(const std::string& body);
  bool is_module_path(std::string_view path) const;
  ApiReply status() const;
  // Checks that need the system; fills `next` from `patch`.
  std::optional<ApiError> resolve(const ConfigPatch& patch, LiveConfig& next) const;

  const ModuleInfo& module_;
  CaptureSession& session_;
  CaptureModule& capture_;
  Hooks hooks_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::mutex apply_mu_;          // held while a change is applied
  mutable std::mutex state_mu_;  // guards cfg_
  LiveConfig cfg_;
};

// Escapes a string for a JSON string literal (no quotes added).
std::string json_escape_text(std::string_view s);

}  // namespace clearcap
