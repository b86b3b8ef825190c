#include "core/probe_placement.h"

#include <capstone/capstone.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include <fmt/format.h>

namespace clearcap {

namespace {

// One capstone handle with instruction details (registers, operands).
class Disassembler {
 public:
  Disassembler() {
    if (cs_open(CS_ARCH_X86, CS_MODE_64, &h_) != CS_ERR_OK) {
      h_ = 0;
      return;
    }
    cs_option(h_, CS_OPT_DETAIL, CS_OPT_ON);
    insn_ = cs_malloc(h_);
  }
  ~Disassembler() {
    if (insn_) cs_free(insn_, 1);
    if (h_) cs_close(&h_);
  }
  Disassembler(const Disassembler&) = delete;
  Disassembler& operator=(const Disassembler&) = delete;

  bool ok() const { return h_ && insn_; }
  csh handle() const { return h_; }
  // The next instruction of [*code, *code + *size) at *address, advancing
  // all three; null at the end or on bytes that are no instruction.
  const cs_insn* next(const uint8_t** code, size_t* size, uint64_t* address) {
    return cs_disasm_iter(h_, code, size, address, insn_) ? insn_ : nullptr;
  }

 private:
  csh h_ = 0;
  cs_insn* insn_ = nullptr;
};

std::string text_of(const cs_insn& i) {
  return i.op_str[0] ? fmt::format("{} {}", i.mnemonic, i.op_str) : std::string(i.mnemonic);
}

// What Linux's x86 uprobes emulate instead of single-stepping
// (arch/x86/kernel/uprobes.c: branch_setup_xol_ops, push_setup_xol_ops),
// by encoding: a prefix or another form is single-stepped.
bool kernel_emulates(const cs_insn& i) {
  const uint8_t* b = i.bytes;
  switch (i.size) {
    case 1:
      return b[0] >= 0x50 && b[0] <= 0x57;  // push %rax..%rdi
    case 2:
      return (b[0] == 0x41 && b[1] >= 0x50 && b[1] <= 0x57) ||  // push %r8..%r15
             b[0] == 0xeb || (b[0] >= 0x70 && b[0] <= 0x7f);     // jmp rel8, jcc rel8
    case 5:
      return b[0] == 0xe8 || b[0] == 0xe9;  // call rel32, jmp rel32
    case 6:
      return b[0] == 0x0f && b[1] >= 0x80 && b[1] <= 0x8f;  // jcc rel32
    default:
      return false;
  }
}

std::optional<ArgReg> arg_reg(uint16_t r) {
  switch (r) {
    case X86_REG_RDI: case X86_REG_EDI: case X86_REG_DI: case X86_REG_DIL: return ArgReg::kRdi;
    case X86_REG_RSI: case X86_REG_ESI: case X86_REG_SI: case X86_REG_SIL: return ArgReg::kRsi;
    case X86_REG_RDX: case X86_REG_EDX: case X86_REG_DX: case X86_REG_DL: case X86_REG_DH: return ArgReg::kRdx;
    case X86_REG_RCX: case X86_REG_ECX: case X86_REG_CX: case X86_REG_CL: case X86_REG_CH: return ArgReg::kRcx;
    case X86_REG_R8: case X86_REG_R8D: case X86_REG_R8W: case X86_REG_R8B: return ArgReg::kR8;
    case X86_REG_R9: case X86_REG_R9D: case X86_REG_R9W: case X86_REG_R9B: return ArgReg::kR9;
    default: return std::nullopt;
  }
}

const char* arg_name(ArgReg r) {
  static const char* const names[] = {"%rdi", "%rsi", "%rdx", "%rcx", "%r8", "%r9"};
  return names[static_cast<int>(r)];
}

bool in_group(const cs_insn& i, uint8_t group) {
  const cs_detail* d = i.detail;
  for (uint8_t k = 0; k < d->groups_count; ++k)
    if (d->groups[k] == group) return true;
  return false;
}

// The target of a direct jump or call; nullopt for an indirect one.
std::optional<uint64_t> direct_target(const cs_insn& i) {
  const cs_x86& x = i.detail->x86;
  if (x.op_count == 1 && x.operands[0].type == X86_OP_IMM) return static_cast<uint64_t>(x.operands[0].imm);
  return std::nullopt;
}

bool inside(const FunctionRange& r, uint64_t off) { return off >= r.offset && off < r.offset + r.size; }

}  // namespace

Result<MachineCode> MachineCode::open(const std::string& path) {
  auto sections = find_sections(path, {".text", ".plt", ".plt.sec", ".plt.got"});
  if (!sections) return tl::unexpected(sections.error());
  MachineCode m;
  m.path_ = path;
  auto text = sections->find(".text");
  if (text == sections->end()) return make_error(ErrorKind::kNotFound, fmt::format("{}: no .text section", path), ENOENT);
  m.text_ = text->second;
  for (const char* name : {".plt", ".plt.sec", ".plt.got"})
    if (auto it = sections->find(name); it != sections->end()) m.plt_.push_back(it->second);
  return m;
}

bool MachineCode::in_plt(uint64_t off) const {
  for (const auto& r : plt_)
    if (inside(r, off)) return true;
  return false;
}

Result<std::string> MachineCode::read(uint64_t offset, uint64_t size) const {
  int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    return make_error(fmt::format("{}: {}", path_, std::strerror(err)), err);
  }
  std::string bytes(size, '\0');
  ssize_t n = pread(fd, bytes.data(), size, static_cast<off_t>(offset));
  int err = errno;
  close(fd);
  if (n < 0) return make_error(fmt::format("{}: {}", path_, std::strerror(err)), err);
  bytes.resize(static_cast<size_t>(n));
  return bytes;
}

Result<EntryInsn> MachineCode::entry(uint64_t offset) const {
  auto bytes = read(offset, 32);  // two instructions at most (15 bytes each)
  if (!bytes) return tl::unexpected(bytes.error());
  Disassembler dis;
  if (!dis.ok()) return make_error("capstone cannot disassemble x86-64");
  const auto* code = reinterpret_cast<const uint8_t*>(bytes->data());
  size_t size = bytes->size();
  uint64_t at = offset;
  const cs_insn* i = dis.next(&code, &size, &at);
  if (i && i->id == X86_INS_ENDBR64) i = dis.next(&code, &size, &at);  // the landing pad changes nothing
  if (!i) return make_error(fmt::format("{}: no instruction at file offset 0x{:x}", path_, offset), ENOEXEC);
  return EntryInsn{i->address, kernel_emulates(*i), text_of(*i)};
}

Result<uint64_t> MachineCode::delegate(const FunctionRange& f, const WrapperRule& rule) const {
  auto fail = [&](std::string why) {
    return make_error(ErrorKind::kNotFound, fmt::format("the function at 0x{:x} {}", f.offset, why), ENOENT);
  };
  if (f.size == 0 || f.size > 4096) return fail("has no symbol size, or is no thin wrapper");
  auto bytes = read(f.offset, f.size);
  if (!bytes) return tl::unexpected(bytes.error());
  Disassembler dis;
  if (!dis.ok()) return make_error("capstone cannot disassemble x86-64");
  const auto* code = reinterpret_cast<const uint8_t*>(bytes->data());
  size_t size = bytes->size();
  uint64_t at = f.offset;
  std::optional<uint64_t> target;
  while (size > 0) {
    const cs_insn* i = dis.next(&code, &size, &at);
    if (!i) return fail(fmt::format("has bytes at 0x{:x} that are no instruction", at));
    const bool call = in_group(*i, CS_GRP_CALL);
    const bool jump = in_group(*i, CS_GRP_JUMP);
    const bool ret = in_group(*i, CS_GRP_RET) || in_group(*i, CS_GRP_IRET);
    if (call || jump) {
      auto to = direct_target(*i);
      if (!to) return fail(fmt::format("has an indirect {} at 0x{:x}", call ? "call" : "jump", i->address));
      if (call && !target) {
        if (in_plt(*to) || !inside(text_, *to))
          return fail(fmt::format("first calls 0x{:x}, not a function of this file's .text", *to));
        target = *to;
        continue;
      }
      if (call) {
        if (!in_plt(*to)) return fail(fmt::format("calls 0x{:x} besides 0x{:x}", *to, *target));
        continue;
      }
      if (!inside(f, *to)) return fail(fmt::format("jumps out of itself at 0x{:x}", i->address));
      if (!target && (i->id == X86_INS_JMP || !rule.branches_before_call))
        return fail(fmt::format("branches at 0x{:x} before its first call", i->address));
      continue;
    }
    if (!target) {
      if (ret) return fail(fmt::format("returns at 0x{:x} before its first call", i->address));
      cs_regs written{};
      cs_regs read{};
      uint8_t nread = 0, nwritten = 0;
      if (cs_regs_access(dis.handle(), i, read, &nread, written, &nwritten) != CS_ERR_OK)
        return fail(fmt::format("has an instruction at 0x{:x} whose registers are unknown", i->address));
      // The first argument register of `regs` that is in `banned`, if any.
      auto first_of = [](const uint16_t* regs, uint8_t n, std::initializer_list<ArgReg> banned) -> std::optional<ArgReg> {
        for (uint8_t k = 0; k < n; ++k)
          if (auto a = arg_reg(regs[k]); a && std::find(banned.begin(), banned.end(), *a) != banned.end()) return a;
        return std::nullopt;
      };
      if (auto a = first_of(written, nwritten, rule.passes))
        return fail(fmt::format("changes {} before its call ({} at 0x{:x})", arg_name(*a), text_of(*i), i->address));
      if (auto a = first_of(read, nread, rule.not_read))
        return fail(fmt::format("reads {} before its call ({} at 0x{:x})", arg_name(*a), text_of(*i), i->address));
    }
  }
  if (!target) return fail("calls no function");
  return *target;
}

}  // namespace clearcap
