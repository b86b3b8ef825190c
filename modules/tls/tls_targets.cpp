#include "modules/tls/tls_targets.h"

#include <fmt/format.h>

#include "core/elf_symbols.h"
#include "core/probe_placement.h"

namespace clearcap {

const LibrarySpec& tls_library() {
  static const LibrarySpec spec{
      .what = "OpenSSL/BoringSSL",
      .what_file = "a libssl.so or a program with OpenSSL linked in",
      .flag = "--libssl",
      .file_prefixes = {"libssl.so"},
      // Merged /usr makes some of these the same file; candidates are
      // deduplicated by inode.
      .system_paths = {"/usr/lib/x86_64-linux-gnu/libssl.so.3", "/usr/lib/x86_64-linux-gnu/libssl.so.1.1",
                       "/usr/lib64/libssl.so.3", "/usr/lib64/libssl.so.1.1", "/usr/lib/libssl.so.3",
                       "/usr/lib/libssl.so.1.1", "/lib/x86_64-linux-gnu/libssl.so.3",
                       "/lib/x86_64-linux-gnu/libssl.so.1.1"},
      .functions = {"SSL_write", "SSL_read", "SSL_write_ex", "SSL_read_ex", "SSL_set_fd", "SSL_do_handshake",
                    "SSL_free"},
      .required = {{"SSL_write"}, {"SSL_read"}},
      .executables = true,
      .install_hint = "install libssl3",
      .place = &place_tls_probes,
  };
  return spec;
}

void place_tls_probes(TlsTarget& t) {
  struct Pair {
    const char* plain;
    const char* ex;
    const char* inner;
  };
  auto code = MachineCode::open(t.path);
  auto fns = find_functions(t.path, {"SSL_read", "SSL_read_ex", "SSL_write", "SSL_write_ex"});
  if (!code || !fns) {
    t.notes.push_back(fmt::format("probes at the SSL_* functions: {}", (!code ? code.error() : fns.error()).message));
    return;
  }
  for (const Pair& p : {Pair{"SSL_write", "SSL_write_ex", kSslWriteInner}, Pair{"SSL_read", "SSL_read_ex", kSslReadInner}}) {
    auto say = [&](const std::string& why) {
      t.notes.push_back(fmt::format("probes at {} and {}: {}", p.plain, p.ex, why));
    };
    auto plain = fns->find(p.plain);
    auto ex = fns->find(p.ex);
    if (plain == fns->end() || ex == fns->end()) {
      say(fmt::format("no {} to compare with", plain == fns->end() ? p.plain : p.ex));
      continue;
    }
    auto entry = code->entry(plain->second.offset);
    if (!entry) {
      say(entry.error().message);
      continue;
    }
    if (entry->emulated) {
      say(fmt::format("{} starts with `{}`, which the kernel emulates", p.plain, entry->text));
      continue;
    }
    // SSL_*_ex hands every call on with all four arguments unchanged and
    // keeps no copy of its count pointer, so the function it calls has its
    // contract and writes the count; SSL_* must call the same one.
    auto via_ex = code->delegate(ex->second, {.passes = {ArgReg::kRdi, ArgReg::kRsi, ArgReg::kRdx, ArgReg::kRcx},
                                              .not_read = {ArgReg::kRcx}});
    if (!via_ex) {
      say(fmt::format("{}: {}", p.ex, via_ex.error().message));
      continue;
    }
    auto via_plain = code->delegate(plain->second, {.passes = {ArgReg::kRdi, ArgReg::kRsi}, .branches_before_call = true});
    if (!via_plain) {
      say(fmt::format("{}: {}", p.plain, via_plain.error().message));
      continue;
    }
    if (*via_plain != *via_ex) {
      say(fmt::format("they call different functions (0x{:x}, 0x{:x})", *via_plain, *via_ex));
      continue;
    }
    auto inner = code->entry(*via_ex);
    if (!inner) {
      say(inner.error().message);
      continue;
    }
    if (!inner->emulated) {
      say(fmt::format("the function both call starts with `{}`, single-stepped like {}'s `{}`", inner->text, p.plain,
                      entry->text));
      continue;
    }
    t.offsets[p.inner] = inner->offset;
    t.notes.push_back(fmt::format("probes for {} and {} at the function both call (file offset 0x{:x}, `{}`, which "
                                  "the kernel emulates) instead of their entries (`{}`, single-stepped)",
                                  p.plain, p.ex, inner->offset, inner->text, entry->text));
  }
}

}  // namespace clearcap
