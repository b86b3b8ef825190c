#include "modules/registry.h"

#include "core/source_table.h"
#include "modules/gnutls/gnutls_module.h"
#include "modules/nss/nss_module.h"
#include "modules/tls/tls_module.h"

namespace clearcap {

std::span<const ModuleInfo* const> modules() {
  // One line per module.
  static const ModuleInfo* const all[] = {
      &tls_module(),
      &gnutls_module(),
      &nss_module(),
  };
  return all;
}

const ModuleInfo* find_module(std::string_view name) {
  for (const ModuleInfo* m : modules()) {
    if (m->name == name) return m;
    for (const auto& a : m->aliases)
      if (a == name) return m;
  }
  return nullptr;
}

void register_module_sources() {
  for (const ModuleInfo* m : modules())
    for (const auto& s : m->sources) register_source(s.id, m->name, s.function);
}

std::span<const std::string_view> planned_modules() {
  static const std::string_view planned[] = {"gotls", "tlsgo", "bash", "zsh", "mysqld", "postgres"};
  return planned;
}

}  // namespace clearcap
