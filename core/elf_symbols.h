// Function symbols of an ELF file, as file offsets that uprobes attach to.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "core/result.h"

namespace clearcap {

// Where a function's code is in its file: uprobes attach at file offsets.
struct FunctionRange {
  uint64_t offset = 0;
  uint64_t size = 0;  // the symbol's size; 0 when the symbol does not say
};

// Looks up the named functions in .dynsym and .symtab of `path` and returns
// each one found (names not found are absent from the map). Errors: the
// file cannot be opened or is not an ELF file.
Result<std::map<std::string, FunctionRange>> find_functions(const std::string& path,
                                                            const std::set<std::string>& names);

// The same, offsets only.
Result<std::map<std::string, uint64_t>> find_function_offsets(const std::string& path,
                                                               const std::set<std::string>& names);

// File ranges of the named sections that `path` has (".plt", ".plt.sec").
Result<std::map<std::string, FunctionRange>> find_sections(const std::string& path,
                                                           const std::set<std::string>& names);

}  // namespace clearcap
