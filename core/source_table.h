// Names of record sources (cc_data_event.source): which module and which
// library function produced a record. The numbers are the ABI's
// (bpf/abi/data.h, append-only); the names are declared by each module
// (ModuleInfo::sources) and installed here once by the registry.
// Thread: register_source() only before any capture or test thread reads
// the table (the registry does it at start-up); lookups from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace clearcap {

struct SourceInfo {
  std::string_view module = "unknown";
  std::string_view function = "unknown";
};

// A plain array (constant-initialised, no guard): the decoder looks up every
// record's source on the hot path.
extern std::array<SourceInfo, 256> g_source_table;

void register_source(uint8_t id, std::string_view module, std::string_view function);
inline const SourceInfo& source_info(uint8_t id) { return g_source_table[id]; }

}  // namespace clearcap
