#include "modules/gnutls/gnutls_module.h"

#include <bpf/libbpf.h>

#include "core/stream_module.h"
#include "modules/gnutls/gnutls_keys.h"
#include "gnutls.skel.h"
#include "skel/skeleton.h"

namespace clearcap {

namespace {

using Skel = Skeleton<gnutls_bpf, gnutls_bpf__open, gnutls_bpf__load, gnutls_bpf__destroy>;
constexpr int kLearnTimeoutMs = 10000;

const LibrarySpec& library() {
  static const LibrarySpec spec{
      .what = "GnuTLS",
      .what_file = "a libgnutls.so",
      .flag = "--gnutls",
      .file_prefixes = {"libgnutls.so"},
      .system_paths = {"/usr/lib/x86_64-linux-gnu/libgnutls.so.30", "/usr/lib64/libgnutls.so.30",
                       "/usr/lib/libgnutls.so.30", "/lib/x86_64-linux-gnu/libgnutls.so.30"},
      .functions = {"gnutls_record_send", "gnutls_record_send2", "gnutls_record_send_range", "gnutls_record_recv",
                    "gnutls_record_recv_seq", "gnutls_transport_set_int2", "gnutls_handshake", "gnutls_deinit"},
      .required = {{"gnutls_record_send", "gnutls_record_send2"}, {"gnutls_record_recv"}},
      .executables = false,
      .install_hint = "install libgnutls30",
  };
  return spec;
}

// Not a symbol: the key log callback is static; its offset is learned.
constexpr const char* kKeylogCallback = "<gnutls built-in key log callback>";

Result<std::unique_ptr<CaptureModule>> load(const ModuleOptions& o, const RingSet& rings) {
  const bool keys = o.mode == "keylog" || o.mode == "pcap";
  const bool tracepoints = o.syscall_fd != "never";
  auto skel = Skel::open_and_load("gnutls", [&](gnutls_bpf* s) -> Result<void> {
    if (auto r = use_ring_set(s, rings); !r) return r;
    s->rodata->syscall_fd = tracepoints ? 1 : 0;
    return {};
  });
  if (!skel) return tl::unexpected(skel.error());
  std::shared_ptr<Skel> owner(std::move(*skel));
  auto* s = owner->raw();
  StreamModule::Parts parts;
  parts.library = &library();
  parts.programs = owner->programs();
  // gnutls_record_send is a tail call into gnutls_record_send2 (3.6.3 on):
  // hooking both would see each write twice. send2 where it exists, else send.
  if (!keys)
    parts.probes = {{"gnutls_record_send2", s->progs.gnutls_send_entry, s->progs.gnutls_ret},
                    {"gnutls_record_send", s->progs.gnutls_send_entry, s->progs.gnutls_ret, "gnutls_record_send2"},
                    {"gnutls_record_send_range", s->progs.gnutls_send_range_entry, s->progs.gnutls_ret},
                    {"gnutls_record_recv", s->progs.gnutls_recv_entry, s->progs.gnutls_ret},
                    {"gnutls_record_recv_seq", s->progs.gnutls_recv_seq_entry, s->progs.gnutls_ret}};
  parts.probes.push_back({"gnutls_transport_set_int2", s->progs.gnutls_set_int2_entry, nullptr});
  parts.probes.push_back({"gnutls_deinit", s->progs.gnutls_deinit_entry, nullptr});
  parts.probes.push_back({"gnutls_handshake", s->progs.gnutls_handshake_entry, s->progs.gnutls_handshake_ret});
  if (keys) {
    parts.probes.push_back({kKeylogCallback, s->progs.gnutls_keylog_entry, nullptr});
    // Learns, per library file, where the callback is and where sessions
    // keep the client random (the probes' cookie).
    parts.prepare = [](ProbeTarget& t, std::vector<Note>& notes) -> std::optional<uint64_t> {
      auto k = learn_gnutls_keys(t.path, kLearnTimeoutMs);
      if (!k) {
        notes.push_back({Note::Severity::kWarning,
                         fmt::format("keys cannot be captured for {}: {}", t.display, k.error().message)});
        return std::nullopt;
      }
      t.offsets[kKeylogCallback] = k->keylog_offset;
      notes.push_back({Note::Severity::kDebug,
                       fmt::format("keys of {}: key log callback at file offset 0x{:x}, client random at session+{}",
                                   t.display, k->keylog_offset, k->client_random_off)});
      return k->client_random_off;
    };
  }
  // GnuTLS has no fd layout to learn: its tracepoints are attached from the
  // start under auto, always and needed alike (a layout that is unknown).
  if (tracepoints)
    parts.syscall_tracepoints = syscall_fd_programs(s->obj);
  else
    parts.notes.push_back({Note::Severity::kWarning,
                           "--syscall-fd never: GnuTLS sessions whose transport is not set with "
                           "gnutls_transport_set_int have no fd and no addresses"});
  parts.object = std::move(owner);
  auto module = StreamModule::create(std::move(parts), o.discovery);
  return module;
}

}  // namespace

const ModuleInfo& gnutls_module() {
  static const ModuleInfo info{
      .name = "gnutls",
      .aliases = {"gnu"},
      .summary = "Capture GnuTLS plaintext",
      .modes = {"text", "keylog", "pcap"},
      .library_flag = "--gnutls",
      .library_help = "libgnutls.so to hook (default: the system libgnutls and every libgnutls mapped by running "
                      "processes)",
      .api_path_field = "gnutls",
      .library = &library(),
      .sources = {{CC_SRC_GNUTLS_SEND, "gnutls_record_send"},
                  {CC_SRC_GNUTLS_RECV, "gnutls_record_recv"},
                  {CC_SRC_GNUTLS_SEND_RANGE, "gnutls_record_send_range"},
                  {CC_SRC_GNUTLS_RECV_SEQ, "gnutls_record_recv_seq"}},
      .load = &load,
  };
  return info;
}

}  // namespace clearcap
