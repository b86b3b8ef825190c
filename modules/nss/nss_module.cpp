#include "modules/nss/nss_module.h"

#include <bpf/libbpf.h>

#include "core/stream_module.h"
#include "nss.skel.h"
#include "skel/skeleton.h"

namespace clearcap {

namespace {

using Skel = Skeleton<nss_bpf, nss_bpf__open, nss_bpf__load, nss_bpf__destroy>;

// The data calls are NSPR's (libnspr4), whatever library does the TLS
// (libssl3 pushes its layer under them).
const LibrarySpec& library() {
  static const LibrarySpec spec{
      .what = "NSS (NSPR)",
      .what_file = "a libnspr4.so",
      .flag = "--nspr",
      .file_prefixes = {"libnspr4.so"},
      .system_paths = {"/usr/lib/x86_64-linux-gnu/libnspr4.so", "/usr/lib64/libnspr4.so", "/usr/lib/libnspr4.so",
                       "/lib/x86_64-linux-gnu/libnspr4.so"},
      .functions = {"PR_Write", "PR_Read", "PR_Send", "PR_Recv"},
      .required = {{"PR_Write", "PR_Send"}, {"PR_Read", "PR_Recv"}},
      .executables = false,
      .install_hint = "install libnspr4 and libnss3",
  };
  return spec;
}

Result<std::unique_ptr<CaptureModule>> load(const ModuleOptions& o, const RingSet& rings) {
  if (o.mode != "text")
    return make_error(ErrorKind::kUnsupported,
                      fmt::format("the nss module captures plaintext only (-m text); -m {} is not available for it", o.mode),
                      EINVAL);
  auto skel = Skel::open_and_load("nss", [&](nss_bpf* s) -> Result<void> {
    if (auto r = use_ring_set(s, rings); !r) return r;
    s->rodata->syscall_fd = 0;  // the fd comes from the NSPR descriptor itself
    return {};
  });
  if (!skel) return tl::unexpected(skel.error());
  std::shared_ptr<Skel> owner(std::move(*skel));
  auto* s = owner->raw();
  StreamModule::Parts parts;
  parts.library = &library();
  parts.programs = owner->programs();
  parts.probes = {{"PR_Write", s->progs.pr_write_entry, s->progs.pr_ret},
                  {"PR_Read", s->progs.pr_read_entry, s->progs.pr_ret},
                  {"PR_Send", s->progs.pr_send_entry, s->progs.pr_ret},
                  {"PR_Recv", s->progs.pr_recv_entry, s->progs.pr_ret}};
  parts.notes.push_back({Note::Severity::kDebug,
                         "nss: the socket fd is read from each NSPR descriptor's bottom layer; calls on descriptors "
                         "without an SSL layer are skipped (counted as not_tls)"});
  parts.object = std::move(owner);
  return StreamModule::create(std::move(parts), o.discovery);
}

}  // namespace

const ModuleInfo& nss_module() {
  static const ModuleInfo info{
      .name = "nss",
      .aliases = {"nspr"},
      .summary = "Capture NSS (Firefox, Thunderbird, NSS tools) plaintext",
      .modes = {"text"},
      .library_flag = "--nspr",
      .library_help = "libnspr4.so to hook (default: the system libnspr4 and every libnspr4 mapped by running "
                      "processes)",
      .api_path_field = "nspr",
      .library = &library(),
      .sources = {{CC_SRC_PR_WRITE, "PR_Write"},
                  {CC_SRC_PR_READ, "PR_Read"},
                  {CC_SRC_PR_SEND, "PR_Send"},
                  {CC_SRC_PR_RECV, "PR_Recv"}},
      .load = &load,
  };
  return info;
}

}  // namespace clearcap
