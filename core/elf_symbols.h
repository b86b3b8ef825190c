// Function symbols of an ELF file, as file offsets that uprobes attach to.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "core/result.h"

namespace clearcap {

// Looks up the named functions in .dynsym and .symtab of `path` and returns
// the file offset of each one found (names not found are absent from the
// map). Errors: the file cannot be opened or is not an ELF file.
Result<std::map<std::string, uint64_t>> find_function_offsets(const std::string& path,
                                                               const std::set<std::string>& names);

}  // namespace clearcap
