// What a module declares about itself, spelled once: its name and aliases
// (CLI subcommands and API paths), its capture modes, the flag and API field
// that name its library, the functions behind its record sources, and the
// library discovery looks for. The CLI, --help, the configuration API and
// /status are generated from these declarations (modules/registry.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/capture_module.h"
#include "core/library_discovery.h"
#include "core/result.h"
#include "core/ring_set.h"

namespace clearcap {

// What a module's load() gets: the shared rings and the options every
// stream module understands.
struct ModuleOptions {
  DiscoveryOptions discovery;
  std::string mode = "text";
  // When the syscall tracepoints may run (--syscall-fd): auto, always, needed, never.
  std::string syscall_fd = "auto";
  uint32_t snap_len = 0;  // -m pcap: bytes per packet
};

// Before a family's object is loaded: its rings, counters and filters
// become the run's (RingSet), and its transport settings (common.bpf.h's
// .rodata) follow the rings'. Every family's skeleton has these fields.
template <class Skel>
Result<void> use_ring_set(Skel* s, const RingSet& rings) {
  if (auto r = rings.share_with(s->obj); !r) return r;
  prepare_uprobe_programs(s->obj);  // for the ProbeAttacher's link kind
  s->rodata->wakeup_bytes = rings.options().wakeup_bytes;
  s->rodata->use_perf = rings.perf() ? 1 : 0;
  return {};
}

struct ModuleInfo {
  std::string name;                  // "tls": the subcommand and the API path /tls
  std::vector<std::string> aliases;  // "openssl", "boringssl"
  std::string summary;               // one line for --help
  std::vector<std::string> modes;    // "text" first; "keylog", "pcap" where the module gives keys
  std::string library_flag;          // "--libssl"
  std::string library_help;          // help text of that flag
  std::string api_path_field;        // "opensslpath": the same setting in the API's JSON body
  const LibrarySpec* library = nullptr;
  // cc_source values this module's records carry, with the function names.
  struct Source {
    uint8_t id;
    const char* function;
  };
  std::vector<Source> sources;
  // Loads the module's BPF object (sharing `rings`), learns what it needs
  // and attaches its probes.
  Result<std::unique_ptr<CaptureModule>> (*load)(const ModuleOptions& opts, const RingSet& rings) = nullptr;
};

}  // namespace clearcap
