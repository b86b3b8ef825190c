#include "core/source_table.h"

namespace clearcap {

std::array<SourceInfo, 256> g_source_table{};

void register_source(uint8_t id, std::string_view module, std::string_view function) {
  g_source_table[id] = SourceInfo{module, function};
}

}  // namespace clearcap
