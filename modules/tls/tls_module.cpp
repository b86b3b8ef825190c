// The tls module's declaration (modules/module_info.h).
#include "modules/tls/tls_module.h"

#include "modules/tls/tls_capture.h"

namespace clearcap {

namespace {

Result<std::unique_ptr<CaptureModule>> load(const ModuleOptions& o, const RingSet& rings) {
  TlsCapture::Options copts;
  copts.discovery = o.discovery;
  copts.keys = o.mode == "keylog" || o.mode == "pcap";
  copts.data = o.mode == "text";
  using S = TlsCapture::Options::SyscallFd;
  copts.syscall_fd = o.syscall_fd == "never"    ? S::kNever
                     : o.syscall_fd == "needed" ? S::kNeeded
                     : o.syscall_fd == "always" ? S::kAlways
                                                : S::kAuto;
  // -m pcap pairs each connection's keys with its packets by the addresses
  // known at the handshake, and hooks no data calls whose records could ask
  // for the tracepoints later: under auto they are there from the start.
  if (copts.syscall_fd == S::kAuto && o.mode == "pcap") copts.syscall_fd = S::kAlways;
  auto c = TlsCapture::create(copts, rings);
  if (!c) return tl::unexpected(c.error());
  return std::unique_ptr<CaptureModule>(std::move(*c));
}

}  // namespace

const ModuleInfo& tls_module() {
  static const ModuleInfo info{
      .name = "tls",
      .aliases = {"openssl", "boringssl"},
      .summary = "Capture OpenSSL/BoringSSL plaintext",
      .modes = {"text", "keylog", "pcap"},
      .library_flag = "--libssl",
      .library_help = "Library or program to hook: a libssl.so or an executable with OpenSSL linked in (default: "
                      "the system libssl and every libssl mapped by running processes)",
      .api_path_field = "opensslpath",
      .library = &tls_library(),
      .sources = {{CC_SRC_SSL_WRITE, "SSL_write"},
                  {CC_SRC_SSL_READ, "SSL_read"},
                  {CC_SRC_SSL_WRITE_EX, "SSL_write_ex"},
                  {CC_SRC_SSL_READ_EX, "SSL_read_ex"},
                  {CC_SRC_SSL_WRITE_ANY, "SSL_write/SSL_write_ex"},
                  {CC_SRC_SSL_READ_ANY, "SSL_read/SSL_read_ex"}},
      .load = &load,
  };
  return info;
}

}  // namespace clearcap
