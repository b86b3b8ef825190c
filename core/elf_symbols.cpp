#include "core/elf_symbols.h"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include <fmt/format.h>

namespace clearcap {

namespace {

struct ElfHandle {
  int fd = -1;
  Elf* elf = nullptr;
  ~ElfHandle() {
    if (elf) elf_end(elf);
    if (fd >= 0) close(fd);
  }
};

Result<void> open_elf(const std::string& path, ElfHandle& h) {
  if (elf_version(EV_CURRENT) == EV_NONE) return make_error("libelf is too old (elf_version failed)");
  h.fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (h.fd < 0) {
    int err = errno;
    return make_error(fmt::format("{}: {}", path, std::strerror(err)), err);
  }
  h.elf = elf_begin(h.fd, ELF_C_READ_MMAP, nullptr);
  if (!h.elf || elf_kind(h.elf) != ELF_K_ELF)
    return make_error(fmt::format("{}: not an ELF file", path), ENOEXEC);
  return {};
}

}  // namespace

Result<std::map<std::string, FunctionRange>> find_functions(const std::string& path,
                                                            const std::set<std::string>& names) {
  ElfHandle h;
  if (auto r = open_elf(path, h); !r) return tl::unexpected(r.error());

  // Symbol values are virtual addresses; uprobes want file offsets. Map each
  // through the PT_LOAD segment that contains it.
  size_t nphdr = 0;
  if (elf_getphdrnum(h.elf, &nphdr)) return make_error(fmt::format("{}: bad ELF program headers", path), ENOEXEC);
  std::vector<GElf_Phdr> loads;
  for (size_t i = 0; i < nphdr; ++i) {
    GElf_Phdr ph;
    if (gelf_getphdr(h.elf, static_cast<int>(i), &ph) && ph.p_type == PT_LOAD && (ph.p_flags & PF_X))
      loads.push_back(ph);
  }

  std::map<std::string, FunctionRange> found;
  Elf_Scn* scn = nullptr;
  while ((scn = elf_nextscn(h.elf, scn)) != nullptr && found.size() < names.size()) {
    GElf_Shdr sh;
    if (!gelf_getshdr(scn, &sh) || (sh.sh_type != SHT_SYMTAB && sh.sh_type != SHT_DYNSYM) || sh.sh_entsize == 0)
      continue;
    Elf_Data* data = elf_getdata(scn, nullptr);
    if (!data) continue;
    size_t count = sh.sh_size / sh.sh_entsize;
    for (size_t i = 0; i < count; ++i) {
      GElf_Sym sym;
      if (!gelf_getsym(data, static_cast<int>(i), &sym)) continue;
      int type = GELF_ST_TYPE(sym.st_info);
      if ((type != STT_FUNC && type != STT_GNU_IFUNC) || sym.st_shndx == SHN_UNDEF || sym.st_value == 0) continue;
      const char* name = elf_strptr(h.elf, sh.sh_link, sym.st_name);
      if (!name || !names.count(name) || found.count(name)) continue;
      for (const auto& ph : loads) {
        if (sym.st_value >= ph.p_vaddr && sym.st_value < ph.p_vaddr + ph.p_memsz) {
          found[name] = {sym.st_value - ph.p_vaddr + ph.p_offset, sym.st_size};
          break;
        }
      }
    }
  }
  return found;
}

Result<std::map<std::string, uint64_t>> find_function_offsets(const std::string& path,
                                                               const std::set<std::string>& names) {
  auto found = find_functions(path, names);
  if (!found) return tl::unexpected(found.error());
  std::map<std::string, uint64_t> out;
  for (const auto& [name, range] : *found) out[name] = range.offset;
  return out;
}

Result<std::map<std::string, FunctionRange>> find_sections(const std::string& path,
                                                           const std::set<std::string>& names) {
  ElfHandle h;
  if (auto r = open_elf(path, h); !r) return tl::unexpected(r.error());
  size_t shstrndx = 0;
  if (elf_getshdrstrndx(h.elf, &shstrndx)) return make_error(fmt::format("{}: bad ELF section names", path), ENOEXEC);
  std::map<std::string, FunctionRange> found;
  Elf_Scn* scn = nullptr;
  while ((scn = elf_nextscn(h.elf, scn)) != nullptr) {
    GElf_Shdr sh;
    if (!gelf_getshdr(scn, &sh) || sh.sh_type == SHT_NOBITS) continue;
    const char* name = elf_strptr(h.elf, shstrndx, sh.sh_name);
    if (name && names.count(name)) found[name] = {sh.sh_offset, sh.sh_size};
  }
  return found;
}

}  // namespace clearcap
