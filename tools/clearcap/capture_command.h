// `clearcap <module>`: capture with one module (plus packets in -m pcap)
// until SIGINT/SIGTERM.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sinks/transports/outputs.h"

namespace clearcap {

struct CaptureCommandOptions {
  std::vector<int> pids;
  uint32_t uid = 0;
  std::string cgroup_path;  // --cgroup_path: only this cgroup v2 subtree ("" = all)
  std::optional<std::string> library;  // the module's library flag (--libssl, --gnutls, --nspr)
  OutputOptions output;  // format, destinations, rotation
  uint32_t mapsize_pages = 0;     // per CPU; 0 = from the machine (ring_pages_for_machine)
  int64_t wakeup_bytes = -1;      // -1 = a quarter of the ring
  std::string buffer = "ring";    // --buffer: ring (BPF ring buffers) | perf (perf event arrays)
  std::string syscall_fd = "auto";  // --syscall-fd: auto | always | needed | never
  std::string probe_placement = "auto";  // --probe-placement: auto | symbol
  int readers = 0;                // 0 = min(CPUs, 4)
  int poll_ms = 20;
  int reader_priority = 1;        // SCHED_FIFO priority of the ring readers, 0 = normal
  int stats_interval = 0;         // seconds between status lines on stderr, 0 = off
  int rescan_seconds = 5;         // --rescan: look for library files that appeared after start; 0 = never
  int shutdown_timeout = 5;       // --shutdown-timeout: seconds from the stop signal to exit, whatever the outputs do
  bool debug = false;
  std::string capture_file;  // -w: write a clearcap capture file instead of text/JSON
  int zstd_level = 1;        // --zstd-level for -w
  std::string mode = "text";                        // text | keylog (after alias resolution)
  std::string keylog_file = "clearcap_tls_key.log";  // -k
  std::string ecaptureq;        // ws://HOST:PORT/ of the eCaptureQ server, "" = off
  std::string ecaptureq_token;  // required from its clients when set (argv: visible in ps)
  std::string ecaptureq_token_file;  // ... read from this 0600 file (or CLEARCAP_ECAPTUREQ_TOKEN)
  std::string listen;           // HOST:PORT of the configuration API, "" = off
  std::string listen_token;     // required by the API when set (argv: visible in ps)
  std::string listen_token_file;  // ... read from this 0600 file (or CLEARCAP_LISTEN_TOKEN)
  std::vector<uint32_t> allow_uids;  // --allow-uid: may use both servers without a token
  bool keylog_given = false;                        // -k was on the command line (pcap mode: keys also there)
  std::string ifname;                               // -i, pcap mode
  uint32_t snaplen = 0;                             // --snaplen, pcap mode; 0 = the largest (CC_PACKET_MAX, or _PERF)
  std::string filter;                               // pcap mode: trailing arguments joined
};

struct ModuleInfo;

// Returns the process exit code.
int run_capture_command(const ModuleInfo& module, const CaptureCommandOptions& opts);

}  // namespace clearcap
