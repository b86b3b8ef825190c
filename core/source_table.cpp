#include "core/source_table.h"

#include <array>

namespace clearcap {

namespace {

std::array<SourceInfo, 256>& table() {
  static std::array<SourceInfo, 256> t{};
  return t;
}

}  // namespace

void register_source(uint8_t id, std::string_view module, std::string_view function) {
  table()[id] = SourceInfo{module, function};
}

const SourceInfo& source_info(uint8_t id) { return table()[id]; }

}  // namespace clearcap
