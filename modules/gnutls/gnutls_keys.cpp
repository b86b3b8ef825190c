#include "modules/gnutls/gnutls_keys.h"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <vector>

#include <fmt/format.h>

namespace clearcap {

namespace {

// The child's answer through the pipe.
struct Reply {
  uint64_t keylog_vaddr = 0;  // link-time address of the callback
  uint32_t client_random_off = 0;
  int32_t error = 0;  // 0 = ok, else which step failed (kStep*)
};
enum : int32_t { kOk = 0, kDlopen = 1, kSymbols = 2, kInit = 3, kNoCallback = 4, kNoRandom = 5 };

const char* step_text(int32_t e) {
  switch (e) {
    case kDlopen: return "the library cannot be loaded";
    case kSymbols: return "it lacks gnutls_session_get_keylog_function (GnuTLS 3.6.13 or later)";
    case kInit: return "gnutls_init failed";
    case kNoCallback: return "its sessions have no built-in key log callback";
    case kNoRandom: return "the client random could not be found in the session";
    default: return "unknown failure";
  }
}

using session_t = void*;
struct Datum {
  unsigned char* data;
  unsigned int size;
};

// Runs in the child: loads the file and asks it.
Reply probe(const std::string& path) {
  Reply r;
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) return r.error = kDlopen, r;
  auto init = reinterpret_cast<int (*)(session_t*, unsigned)>(dlsym(lib, "gnutls_init"));
  auto get_keylog = reinterpret_cast<void* (*)(session_t)>(dlsym(lib, "gnutls_session_get_keylog_function"));
  auto get_random = reinterpret_cast<void (*)(session_t, Datum*, Datum*)>(dlsym(lib, "gnutls_session_get_random"));
  auto prio = reinterpret_cast<int (*)(session_t)>(dlsym(lib, "gnutls_set_default_priority"));
  auto cred_alloc = reinterpret_cast<int (*)(void**)>(dlsym(lib, "gnutls_certificate_allocate_credentials"));
  auto cred_set = reinterpret_cast<int (*)(session_t, int, void*)>(dlsym(lib, "gnutls_credentials_set"));
  auto set_int2 = reinterpret_cast<void (*)(session_t, int, int)>(dlsym(lib, "gnutls_transport_set_int2"));
  auto handshake = reinterpret_cast<int (*)(session_t)>(dlsym(lib, "gnutls_handshake"));
  if (!init || !get_keylog || !get_random || !prio || !cred_alloc || !cred_set || !set_int2 || !handshake)
    return r.error = kSymbols, r;
  session_t s = nullptr;
  constexpr unsigned kClient = 1 << 1;
  if (init(&s, kClient) != 0 || !s) return r.error = kInit, r;
  void* cb = get_keylog(s);
  Dl_info info{};
  if (!cb || !dladdr(cb, &info) || !info.dli_fbase) return r.error = kNoCallback, r;
  r.keylog_vaddr = reinterpret_cast<uint64_t>(cb) - reinterpret_cast<uint64_t>(info.dli_fbase);
  // A ClientHello into a socket nobody answers: the client random is
  // chosen, and the handshake stops (non-blocking) waiting for the server.
  void* cred = nullptr;
  int sv[2];
  if (prio(s) != 0 || cred_alloc(&cred) != 0 || cred_set(s, 1 /* GNUTLS_CRD_CERTIFICATE */, cred) != 0 ||
      socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
    return r.error = kNoRandom, r;
  set_int2(s, sv[0], sv[0]);
  (void)handshake(s);
  Datum client{}, server{};
  get_random(s, &client, &server);
  const auto base = reinterpret_cast<uintptr_t>(s), at = reinterpret_cast<uintptr_t>(client.data);
  bool any = false;
  for (unsigned i = 0; client.data && i < client.size; ++i) any |= client.data[i] != 0;
  if (client.size != 32 || !any || at < base || at - base > 65536) return r.error = kNoRandom, r;
  r.client_random_off = static_cast<uint32_t>(at - base);
  return r;
}

// The file offset of a link-time address (uprobes attach to file offsets).
Result<uint64_t> file_offset(const std::string& path, uint64_t vaddr) {
  std::ifstream f(path, std::ios::binary);
  Elf64_Ehdr eh{};
  if (!f.read(reinterpret_cast<char*>(&eh), sizeof(eh)) || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
      eh.e_ident[EI_CLASS] != ELFCLASS64)
    return make_error(ErrorKind::kInvalid, fmt::format("{}: not a 64-bit ELF file", path), ENOEXEC);
  for (unsigned i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph{};
    f.seekg(static_cast<std::streamoff>(eh.e_phoff + i * eh.e_phentsize));
    if (!f.read(reinterpret_cast<char*>(&ph), sizeof(ph))) break;
    if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X) && vaddr >= ph.p_vaddr && vaddr < ph.p_vaddr + ph.p_filesz)
      return vaddr - ph.p_vaddr + ph.p_offset;
  }
  return make_error(ErrorKind::kNotFound, fmt::format("{}: address 0x{:x} is in no executable segment", path, vaddr),
                    ENOENT);
}

}  // namespace

Result<GnutlsKeyLayout> learn_gnutls_keys(const std::string& path, int timeout_ms) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC)) return make_error(fmt::format("pipe: {}", std::strerror(errno)), errno);
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(fds[0]);
    close(fds[1]);
    return make_error(fmt::format("fork: {}", std::strerror(e)), e);
  }
  if (pid == 0) {
    close(fds[0]);
    Reply r = probe(path);
    (void)!write(fds[1], &r, sizeof(r));
    _exit(0);
  }
  close(fds[1]);
  Reply r;
  bool got = false;
  pollfd pfd{fds[0], POLLIN, 0};
  if (poll(&pfd, 1, timeout_ms) > 0) got = read(fds[0], &r, sizeof(r)) == static_cast<ssize_t>(sizeof(r));
  close(fds[0]);
  if (!got) kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!got)
    return make_error(ErrorKind::kBusy, fmt::format("the key probe gave no answer within {} ms", timeout_ms), ETIMEDOUT);
  if (r.error != kOk) return make_error(ErrorKind::kUnsupported, step_text(r.error), ENOTSUP);
  auto off = file_offset(path, r.keylog_vaddr);
  if (!off) return tl::unexpected(off.error());
  return GnutlsKeyLayout{*off, r.client_random_off};
}

}  // namespace clearcap
