// Where a uprobe costs least (x86-64).
//
// A uprobe replaces one instruction with a breakpoint. When a thread hits
// it, the kernel runs the probe's programs and then either emulates the
// displaced instruction (push of a register, direct jumps and calls: one
// trap) or copies it out of line and single-steps it (a second trap, a
// debug exception). On this project's test VM the single step is ~12 of
// the ~13 us a probe costs; on hardware it is still the larger part.
// OpenSSL's SSL_read/SSL_write start with `sub $N,%rsp`, which is
// single-stepped, while the function they both hand the call to starts
// with a push: hooking that one instead makes each call several times
// cheaper (docs/performance.md, "Where the probes sit").
//
// This file answers the two questions that needs, from the machine code of
// the file itself (no per-version tables): is a function's first
// instruction one the kernel emulates, and is a function a thin wrapper
// that passes its arguments on to exactly one other function?
// Thread: none (pure functions of the file's bytes).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/elf_symbols.h"
#include "core/result.h"

namespace clearcap {

// A function's entry as a uprobe sees it.
struct EntryInsn {
  uint64_t offset = 0;    // where to attach: the function, or just past its endbr64 landing pad
  bool emulated = false;  // the kernel emulates this instruction (no single step)
  std::string text;       // "push %r13", for --debug
};

// The argument registers of the x86-64 System V calling convention.
enum class ArgReg { kRdi, kRsi, kRdx, kRcx, kR8, kR9 };

// What a wrapper must look like for its callers' calls to be seen at its
// delegate instead.
struct WrapperRule {
  // Arguments the wrapper passes on unchanged: none of these registers is
  // written between its entry and the call.
  std::initializer_list<ArgReg> passes;
  // Conditional branches are allowed before the call (an early error
  // return); without this, every call of the wrapper reaches the delegate.
  bool branches_before_call = false;
  // Arguments the wrapper does not even read before the call: it keeps no
  // copy, so it cannot use them after the call either (a count pointer
  // that only the delegate can write through).
  std::initializer_list<ArgReg> not_read = {};
};

// The machine code of one ELF file.
class MachineCode {
 public:
  static Result<MachineCode> open(const std::string& path);

  // The instruction a uprobe at the function's entry displaces. An entry
  // past an endbr64 is as good as the entry itself for a return probe: the
  // stack still holds the return address there.
  Result<EntryInsn> entry(uint64_t offset) const;

  // The function that the wrapper at `f` calls to do its work, when `f`
  // follows `rule`: the first call in it is a direct call to a function in
  // .text, with the rule's arguments unchanged; every other call in it goes
  // through the PLT (error reporting, the stack protector); no indirect
  // jump or call, no jump out of it. Errors say which condition failed.
  Result<uint64_t> delegate(const FunctionRange& f, const WrapperRule& rule) const;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  FunctionRange text_;
  std::vector<FunctionRange> plt_;  // .plt, .plt.sec, .plt.got
  bool in_plt(uint64_t off) const;
  Result<std::string> read(uint64_t offset, uint64_t size) const;
};

}  // namespace clearcap
