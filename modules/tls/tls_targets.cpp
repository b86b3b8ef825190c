#include "modules/tls/tls_targets.h"

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
  };
  return spec;
}

}  // namespace clearcap
