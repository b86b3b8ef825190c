// Every module clearcap has, in --help order. The CLI's subcommands, the
// configuration API's paths and the source names come from this list.
#pragma once

#include <span>
#include <string_view>

#include "modules/module_info.h"

namespace clearcap {

std::span<const ModuleInfo* const> modules();
// By name or alias; nullptr if none.
const ModuleInfo* find_module(std::string_view name_or_alias);
// Installs every module's source names (core/source_table.h); call once at
// start-up, before any capture thread.
void register_module_sources();

// eCapture's module names that clearcap does not have yet (the API answers
// them with a clear message instead of "not found").
std::span<const std::string_view> planned_modules();

}  // namespace clearcap
