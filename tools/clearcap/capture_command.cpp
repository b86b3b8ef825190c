#include "tools/clearcap/capture_command.h"

#include <net/if.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <optional>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <thread>

#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "control/api_server.h"
#include "core/boot_clock.h"
#include "core/counters.h"
#include "core/privileges.h"
#include "core/processor.h"
#include "core/prometheus_text.h"
#include "core/ring_reader.h"
#include "core/ring_set.h"
#include "modules/module_info.h"
#include "modules/packet/packet_capture.h"
#include "sinks/capture_writer.h"
#include "sinks/keylog.h"
#include "sinks/ecaptureq_convert.h"
#include "sinks/ecaptureq_server.h"
#include "sinks/pcap_sink.h"
#include "sinks/pcapng_blocks.h"
#include "tools/clearcap/outputs.h"
#include "control/remote_control.h"

#ifndef CLEARCAP_VERSION
#define CLEARCAP_VERSION "dev"
#endif

namespace clearcap {

namespace {

bool g_debug = false;
// Set while the outputs exist; before that (and after), lines go to stderr.
Outputs* g_outputs = nullptr;

int libbpf_log(enum libbpf_print_level, const char* format, va_list args) {
  // Without --debug nothing: libbpf's warnings are folded into our own errors.
  if (!g_debug) return 0;
  return std::vfprintf(stderr, format, args);
}

// Also streamed to eCaptureQ clients as PROCESS_LOG lines while the server
// runs (set and cleared by the command's thread; read by the API threads).
std::atomic<EcaptureqServer*> g_log_tap{nullptr};
// The eCaptureQ server's counters, for the summary, --stats and /metrics.
const EcaptureqServer* g_ecq_stats = nullptr;

void tap_log(const std::string& line) {
  if (EcaptureqServer* tap = g_log_tap.load(std::memory_order_acquire)) tap->post_log("clearcap: " + line);
}

// A log line: to the log destination (-l), else stderr.
void log_line(const std::string& line) {
  if (g_outputs) g_outputs->log(line);
  else fmt::print(stderr, "clearcap: {}\n", line);
  tap_log(line);
}

template <typename... Args>
void log(fmt::format_string<Args...> f, Args&&... args) {
  log_line(fmt::format(f, std::forward<Args>(args)...));
}

// A line the user must see (ready, errors, --stats, summary): logged, and
// also on stderr when the log goes elsewhere.
template <typename... Args>
void console(fmt::format_string<Args...> f, Args&&... args) {
  const std::string line = fmt::format(f, std::forward<Args>(args)...);
  if (g_outputs) g_outputs->console(line);
  else fmt::print(stderr, "clearcap: {}\n", line);
  tap_log(line);
}

uint32_t round_up_pow2(uint32_t v) {
  uint32_t p = 1;
  while (p < v) p <<= 1;
  return p;
}

// The default ring size per CPU: an 8 MiB budget spread over the possible
// CPUs, within 4..8 MiB per ring (a power of two, in pages): 8 MiB on one
// CPU, 4 MiB from two on. Ring pages count twice in clearcap's RSS once
// written (the data area is mapped twice so records never wrap): under
// nginx on 2 CPUs the peak RSS was 99 MiB with 16 MiB rings and 67 MiB with
// 8 MiB rings, past the 64 MiB budget, while the full-speed loop is
// lossless with 4 MiB rings already (readers are kicked, not waited for).
uint32_t ring_pages_for_machine() {
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const int ncpu = std::max(1, libbpf_num_possible_cpus());
  // The clamp leaves 8 MiB (one CPU) or 4 MiB: both powers of two, as are
  // page sizes, so the page count is one too.
  const uint64_t per = std::clamp<uint64_t>((8ull << 20) / static_cast<uint64_t>(ncpu), 4ull << 20, 8ull << 20);
  return static_cast<uint32_t>(per / page);
}

Counters collect(const RingSet& rings, const Processor& processor, const std::vector<std::unique_ptr<RingReader>>& readers,
                 const Outputs& outputs, const EventSink* sink) {
  Counters t;
  if (auto s = rings.read_stats(); s) t.bpf = *s;
  else console("{}", s.error().message);
  t.events = processor.events();
  t.payload_bytes = processor.payload_bytes();
  t.decode_errors = processor.decode_errors();
  t.gaps = processor.gaps();
  t.gap_bytes = processor.gap_bytes();
  t.late = processor.late_events();
  for (const auto& r : readers) {
    t.stalls += r->stalls();
    t.oversize += r->oversize();
  }
  std::vector<SinkStats> stats;
  if (sink) sink->collect_stats(stats);  // capture file or key log
  outputs.collect_stats(stats);
  if (g_ecq_stats) g_ecq_stats->collect_stats(stats);
  // SinkStats (sinks/) as the engine's output counters.
  for (const auto& s : stats)
    t.outputs.push_back(OutputCounters{s.name, s.write_errors, s.dropped_events, s.dropped_bytes, s.last_errno});
  return t;
}

void print_summary(const Counters& t, double seconds, const KeylogSink* keylog, const PcapSink* pcap) {
  const auto& b = t.bpf;
  console("--- summary ({:.1f} s) ---", seconds);
  console("events: {} ({} bytes of plaintext)", t.events, t.payload_bytes);
  // The headline total is every loss row, outputs included (core/counters).
  for (const auto& line : summary_loss_lines(t)) console("{}", line);
  if (keylog)
    console("keys: {} handshakes written to {} ({} duplicates of a written client random, {} incomplete)",
        keylog->handshakes(), keylog->path(), keylog->duplicates(), keylog->incomplete());
  if (pcap) {
    auto c = pcap->counters();
    console("packets: {} written to {}, {} left out by the filter expression (applied in userspace), {} cut to the "
        "snap length",
        c.packets, pcap->path(), c.filtered, b[CC_STAT_PACKETS_TRUNCATED]);
    console("pcap keys: {} Decryption Secrets Blocks, {} duplicate key records (other end), {} unusable; TLS "
        "connections held for keys: {}, written without keys (grace period over or limit): {} ({} packets)",
        c.secrets_blocks, c.duplicate_keys, c.unusable_keys, c.held_connections, c.missed_connections,
        c.missed_packets);
    if (c.secrets_not_replayed)
      console("pcap keys not repeated at the start of rotated files (beyond the newest {}): {}",
          PcapSink::kMaxReplayedSecrets, c.secrets_not_replayed);
  }
  console("stream gaps seen in output: {} ({} bytes); events out of order: {}", t.gaps, t.gap_bytes, t.late);
  for (const auto& o : t.outputs)
    console("output {}: {} write errors, {} bytes and {} events not delivered{}", o.name, o.write_errors,
        o.dropped_bytes, o.dropped_events,
        o.last_errno ? fmt::format(" (last error: {})", std::strerror(o.last_errno)) : "");
  console("events without a known fd: {}; calls skipped by filters: {}; reader stalls: {}", b[CC_STAT_NO_FD],
      b[CC_STAT_FILTERED], t.stalls);
}

std::string metrics_text(const Counters& t, const std::vector<std::unique_ptr<RingReader>>& readers,
                         const EcaptureqServer* ecq, double uptime_s) {
  PrometheusText p;
  p.family("clearcap_events_total", "counter", "Events delivered to the outputs.");
  p.sample("clearcap_events_total", t.events);
  p.family("clearcap_payload_bytes_total", "counter", "Plaintext bytes delivered to the outputs.");
  p.sample("clearcap_payload_bytes_total", t.payload_bytes);
  p.family("clearcap_bpf_records_total", "counter", "Records the BPF programs wrote to the rings.");
  p.sample("clearcap_bpf_records_total", t.bpf[CC_STAT_EVENTS]);
  metrics_losses(p, t);
  p.family("clearcap_filtered_calls_total", "counter", "Library calls skipped by the pid/uid/cgroup filters.");
  p.sample("clearcap_filtered_calls_total", t.bpf[CC_STAT_FILTERED]);
  p.family("clearcap_events_without_fd_total", "counter", "Events whose socket was not known (no addresses).");
  p.sample("clearcap_events_without_fd_total", t.bpf[CC_STAT_NO_FD]);
  p.family("clearcap_stream_gaps_total", "counter", "Jumps in a stream's byte offset seen in the output.");
  p.sample("clearcap_stream_gaps_total", t.gaps);
  p.family("clearcap_stream_gap_bytes_total", "counter", "Bytes missing in those jumps.");
  p.sample("clearcap_stream_gap_bytes_total", t.gap_bytes);
  p.family("clearcap_late_events_total", "counter", "Events released after a later one (merge window too short).");
  p.sample("clearcap_late_events_total", t.late);
  p.family("clearcap_reader_stalls_total", "counter", "Times a reader waited for a free batch.");
  p.sample("clearcap_reader_stalls_total", t.stalls);
  p.family("clearcap_output_write_errors_total", "counter", "Failed writes, per output.");
  for (const auto& o : t.outputs) p.sample("clearcap_output_write_errors_total", {{"output", o.name}}, o.write_errors);
  p.family("clearcap_output_dropped_events_total", "counter", "Events (messages) not delivered, per output.");
  for (const auto& o : t.outputs)
    p.sample("clearcap_output_dropped_events_total", {{"output", o.name}}, o.dropped_events);
  p.family("clearcap_output_dropped_bytes_total", "counter", "Bytes not delivered, per output.");
  for (const auto& o : t.outputs) p.sample("clearcap_output_dropped_bytes_total", {{"output", o.name}}, o.dropped_bytes);
  p.family("clearcap_reader_queue_batches", "gauge", "Batches waiting for the processor, per reader.");
  for (const auto& r : readers) {
    std::string id = std::to_string(r->id());
    p.sample("clearcap_reader_queue_batches", {{"reader", id}}, static_cast<uint64_t>(r->full_queue().size_approx()));
  }
  if (ecq) {
    p.family("clearcap_ecaptureq_pending_messages", "gauge", "Events waiting for the eCaptureQ server thread.");
    p.sample("clearcap_ecaptureq_pending_messages", static_cast<uint64_t>(ecq->pending()));
    p.family("clearcap_ecaptureq_clients", "gauge", "Connected eCaptureQ WebSocket clients.");
    p.sample("clearcap_ecaptureq_clients", static_cast<uint64_t>(ecq->clients()));
  }
  p.family("clearcap_uptime_seconds", "gauge", "Seconds since the capture started.");
  p.sample("clearcap_uptime_seconds", {}, uptime_s);
  return p.text();
}

std::string counters_json(const Counters& t) {
  std::vector<std::string> outputs;
  for (const auto& o : t.outputs)
    outputs.push_back(fmt::format(R"({{"name":"{}","write_errors":{},"dropped_events":{},"dropped_bytes":{}}})",
                                  json_escape_text(o.name), o.write_errors, o.dropped_events, o.dropped_bytes));
  return fmt::format(R"({{"events":{},"payload_bytes":{},{},"filtered_calls":{},"stream_gaps":{},"outputs":[{}]}})",
                     t.events, t.payload_bytes, losses_json(t), t.bpf[CC_STAT_FILTERED], t.gaps,
                     fmt::join(outputs, ","));
}

}  // namespace

int run_capture_command(const ModuleInfo& module, const CaptureCommandOptions& o) {
  g_debug = o.debug;
  libbpf_set_print(libbpf_log);

  // Bad addresses are reported before any BPF work.
  std::optional<WsUrl> ecq_url;
  if (!o.ecaptureq.empty()) {
    auto u = parse_ws_url(o.ecaptureq);
    if (!u) {
      log("{}", u.error().message);
      return 2;
    }
    ecq_url = *u;
  }
  std::optional<ListenAddr> listen_addr;
  if (!o.listen.empty()) {
    auto a = parse_listen_addr(o.listen);
    if (!a) {
      log("{}", a.error().message);
      return 2;
    }
    listen_addr = *a;
  }

  if (auto r = check_btf(); !r) {
    log("{}", r.error().message);
    return 1;
  }
  if (auto r = check_privileges(); !r) {
    log("{}", r.error().message);
    return 1;
  }

  // Block the stop signals before any thread exists so that only the
  // sigtimedwait() below receives them.
  sigset_t stop_set;
  sigemptyset(&stop_set);
  sigaddset(&stop_set, SIGINT);
  sigaddset(&stop_set, SIGTERM);
  sigaddset(&stop_set, SIGHUP);
  // A shell starts background jobs with SIGINT ignored, and an ignored
  // signal is discarded even while blocked: sigtimedwait() would never see
  // it. Restore the default disposition first (it never runs: blocked).
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) signal(sig, SIG_DFL);
  pthread_sigmask(SIG_BLOCK, &stop_set, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a closed stdout is an output error, counted

  // Outputs first (their writer threads inherit the blocked signals): a bad
  // destination stops clearcap before any probe is attached, and the
  // messages below already go to the log destination. -w and -m keylog have
  // sinks of their own: events then go to --eventaddr only when given.
  OutputOptions out_opts = o.output;
  out_opts.events_elsewhere = !o.capture_file.empty() || o.mode == "keylog";
  auto outputs_r = Outputs::create(out_opts);
  if (!outputs_r) {
    log("{}", outputs_r.error().message);
    return 1;
  }
  std::unique_ptr<Outputs> outputs = std::move(*outputs_r);
  g_outputs = outputs.get();
  // Whatever way this function returns, the writers deliver what was
  // queued and log lines go back to stderr.
  struct Reset {
    std::unique_ptr<Outputs>& o;
    ~Reset() {
      if (o) o->stop();
      g_outputs = nullptr;
    }
  } reset{outputs};

  RingSet::Options ring_opts;
  uint32_t pages = o.mapsize_pages == 0 ? ring_pages_for_machine() : round_up_pow2(o.mapsize_pages);
  if (o.mapsize_pages != 0 && pages != o.mapsize_pages)
    log("--mapsize {} rounded up to {} pages", o.mapsize_pages, pages);
  ring_opts.ring_bytes = pages * static_cast<uint32_t>(sysconf(_SC_PAGESIZE));
  ring_opts.wakeup_bytes = o.wakeup_bytes < 0 ? ring_opts.ring_bytes / 4 : static_cast<uint64_t>(o.wakeup_bytes);
  ring_opts.perf = o.buffer == "perf";
  ModuleOptions mopts;
  mopts.discovery.library = o.library;
  mopts.discovery.pids = o.pids;
  mopts.mode = o.mode;
  mopts.syscall_fd = o.syscall_fd;
  const bool keylog_mode = o.mode == "keylog";
  const bool pcap_mode = o.mode == "pcap";

  // -m pcap: interface, link type and filter are checked before any BPF work.
  unsigned ifindex = 0;
  bool loopback = false;
  uint16_t linktype = pcapng::kLinktypeEthernet;
  std::unique_ptr<PacketFilter> filter;
  if (pcap_mode) {
    ifindex = if_nametoindex(o.ifname.c_str());
    if (ifindex == 0) {
      console("no network interface '{}' ({}); see `ip link` for the names", o.ifname, std::strerror(errno));
      return 1;
    }
    // ARPHRD_ETHER (1) and ARPHRD_LOOPBACK (772) carry an Ethernet header
    // at tc; tunnels (ARPHRD_NONE ...) start at the IP header.
    int arphrd = 0;
    std::ifstream(fmt::format("/sys/class/net/{}/type", o.ifname)) >> arphrd;
    loopback = arphrd == 772;
    if (arphrd != 1 && arphrd != 772) linktype = pcapng::kLinktypeRaw;
    auto f = PacketFilter::compile(o.filter, linktype == pcapng::kLinktypeRaw ? PacketFilter::Link::kRaw : PacketFilter::Link::kEthernet, o.snaplen);
    if (!f) {
      console("{}", f.error().message);
      return 1;
    }
    filter = std::move(*f);
  }

  auto ring_set = RingSet::create(ring_opts);
  if (!ring_set) {
    console("{}", ring_set.error().message);
    return 1;
  }
  RingSet& rings_owner = **ring_set;
  if (auto r = rings_owner.set_filter(o.pids, o.uid, 0); !r) {
    console("{}", r.error().message);
    return 1;
  }
  auto capture = module.load(mopts, rings_owner);
  if (!capture) {
    console("{}", capture.error().message);
    return 1;
  }
  CaptureModule& cap = **capture;
  // Warnings always; in keylog mode they say why a library gives no keys
  // (silence would look like a capture with no handshakes).
  for (const auto& n : cap.notes()) {
    if (n.severity == Note::Severity::kWarning) {
      if (keylog_mode) console("{}", n.text);
      else log("{}", n.text);
    } else if (o.debug) {
      log("{}", n.text);
    }
  }
  if (o.debug) {
    log("syscall tracepoints: {} (--syscall-fd {})",
        cap.syscall_tracepoints() ? "attached (they run for every read/write syscall on the machine)"
                                  : "not attached",
        o.syscall_fd);
    for (const auto& t : cap.targets())
      log("target: {} ({} functions{})", t.display, t.offsets.size(),
          t.pids.empty() ? std::string() : fmt::format(", pids {}", fmt::join(t.pids, ",")));
  }

  std::unique_ptr<PacketCapture> packets;
  if (pcap_mode) {
    if (cap.key_targets() == 0)
      console("no hooked library gives TLS keys (see above): packets are captured, but Wireshark will not decrypt them");
    auto p = PacketCapture::create(rings_owner, o.snaplen);
    if (!p) {
      console("{}", p.error().message);
      return 1;
    }
    packets = std::move(*p);
    // On lo every packet passes egress and then ingress: once is enough.
    if (auto r = packets->attach(static_cast<int>(ifindex), o.ifname, true, !loopback); !r) {
      console("{}", r.error().message);
      return 1;
    }
  }

  if (keylog_mode) {
    if (cap.key_targets() == 0) {
      console("no hooked library gives TLS keys (see above); nothing to capture in -m keylog");
      return 1;
    }
  }

  // -m keylog: key lines to -k. -w: events go to the capture file (like
  // tcpdump -w), and also to every --eventaddr when some are given. Either
  // way their losses are in the summary like any output's.
  std::unique_ptr<EventSink> output;
  KeylogSink* keylog = nullptr;
  CaptureFileSink* capture_file = nullptr;
  PcapSink* pcap = nullptr;
  std::unique_ptr<KeylogSink> pcap_keys;  // -m pcap with -k: keys also to the key log file
  // The event files' rotation applies to every file output (rotated and
  // reopened on each output's writer thread).
  RotatingFile::Options rotation;
  rotation.max_bytes = o.output.rotate_mb * 1024 * 1024;
  rotation.max_age = std::chrono::seconds(o.output.rotate_seconds);
  rotation.keep = o.output.rotate_keep;
  if (pcap_mode) {
    if (o.keylog_given) {
      auto k = KeylogSink::open(o.keylog_file, rotation);
      if (!k) {
        console("{}", k.error().message);
        return 1;
      }
      pcap_keys = std::move(*k);
      keylog = pcap_keys.get();
    }
    PcapSink::Options popts;
    popts.path = o.capture_file;
    popts.if_name = o.ifname;
    popts.linktype = linktype;
    popts.snaplen = o.snaplen;
    popts.userappl = std::string("clearcap ") + CLEARCAP_VERSION;
    auto p = PcapSink::open(popts, std::move(filter), pcap_keys.get(), rotation);
    if (!p) {
      console("{}", p.error().message);
      return 1;
    }
    pcap = p->get();
    output = std::move(*p);
  } else if (keylog_mode) {
    auto k = KeylogSink::open(o.keylog_file, rotation);
    if (!k) {
      console("{}", k.error().message);
      return 1;
    }
    keylog = k->get();
    output = std::move(*k);
  } else if (!o.capture_file.empty()) {
    CaptureFileSink::Options wopts;
    wopts.level = o.zstd_level;
    wopts.clearcap_version = CLEARCAP_VERSION;
    auto w = CaptureFileSink::open_rotating(o.capture_file, rotation, wopts);
    if (!w) {
      console("{}", w.error().message);
      return 1;
    }
    capture_file = w->get();
    output = std::move(*w);
  }
  std::unique_ptr<TeeSink> tee;
  EventSink* sink_ptr = &outputs->sink();
  if (output && outputs->has_event_outputs() && !pcap_mode) {  // packets are for the pcapng only
    tee = std::make_unique<TeeSink>(*output, outputs->sink());
    sink_ptr = tee.get();
  } else if (output) {
    sink_ptr = output.get();
  }
  std::unique_ptr<EcaptureqServer> ecq;
  if (ecq_url) {
    EcaptureqServer::Options eo;
    eo.url = *ecq_url;
    eo.token = o.ecaptureq_token;
    eo.format = FormatOptions{o.output.hex, static_cast<size_t>(o.output.tsize)};
    auto server = EcaptureqServer::start(eo);
    if (!server) {
      log("{}", server.error().message);
      return 1;
    }
    ecq = std::move(*server);
    g_log_tap.store(ecq.get(), std::memory_order_release);
    g_ecq_stats = ecq.get();
    log("ecaptureq: streaming on {}{}", ecq->url(), o.ecaptureq_token.empty() ? "" : " (token required)");
  }
  // Whatever way this function returns, no log line may reach a stopped server.
  struct TapGuard {
    ~TapGuard() {
      g_log_tap.store(nullptr, std::memory_order_release);
      g_ecq_stats = nullptr;
    }
  } tap_guard;
  std::unique_ptr<TeeSink> ecq_tee;
  if (ecq) {
    ecq_tee = std::make_unique<TeeSink>(*sink_ptr, *ecq);
    sink_ptr = ecq_tee.get();
  }
  EventSink& sink = *sink_ptr;

  moodycamel::spsc_sema::LightweightSemaphore wake;
  const auto& rings = rings_owner.ring_fds();
  int nreaders = o.readers > 0 ? o.readers : std::min<int>(4, static_cast<int>(rings.size()));
  nreaders = std::min<int>(nreaders, static_cast<int>(rings.size()));
  std::vector<std::vector<int>> groups(static_cast<size_t>(nreaders));
  for (size_t i = 0; i < rings.size(); ++i) groups[i % groups.size()].push_back(rings[i]);
  RingReader::Options ropts;
  ropts.poll_ms = o.poll_ms;
  ropts.perf = rings_owner.perf();
  std::vector<std::unique_ptr<RingReader>> readers;
  std::vector<BatchSource*> reader_ptrs;
  for (int i = 0; i < nreaders; ++i) {
    readers.push_back(std::make_unique<RingReader>(i, groups[static_cast<size_t>(i)], rings_owner.ring_bytes(),
                                                   ropts, &wake));
    if (auto r = readers.back()->open(); !r) {
      console("{}", r.error().message);
      return 1;
    }
    reader_ptrs.push_back(readers.back().get());
  }
  Processor::Options popts;
  popts.merge_window_ns = std::max<uint64_t>(100'000'000ull, 5ull * static_cast<uint64_t>(o.poll_ms) * 1'000'000ull);
  Processor processor(reader_ptrs, sink, popts, &wake);
  processor.set_format(FormatOptions{o.output.hex, static_cast<size_t>(o.output.tsize)});
  processor.start();
  for (auto& r : readers) r->start();

  // Before "ready:": whoever waits for that line can rely on this one.
  if (keylog_mode)
    console("keys: from {} of {} target(s), written to {} as each handshake completes", cap.key_targets(),
        cap.targets().size(), o.keylog_file);
  if (pcap_mode)
    console("packets: {} ({}), {}, filter '{}' (applied in userspace), snap length {}; keys from {} of {} target(s) "
        "as Decryption Secrets Blocks{}",
        o.ifname, loopback ? "egress only: loopback" : "egress and ingress", o.capture_file, o.filter, o.snaplen,
        cap.key_targets(), cap.targets().size(), keylog ? fmt::format(" and to {}", o.keylog_file) : "");
  // Composed before the API can retarget anything, printed once all is up.
  const std::string ready_line = fmt::format("ready: attached {} probes to {} target(s) ({}), {} {}ring(s) of {} KiB, {} reader(s)", cap.uprobes(),
      cap.targets().size(),
      fmt::join([&] {
        std::vector<std::string> names;
        for (const auto& t : cap.targets()) names.push_back(t.display);
        return names;
      }(),
                ", "),
      rings.size(), rings_owner.perf() ? "perf " : "", rings_owner.ring_bytes() / 1024, nreaders);
  log("outputs: {}", outputs->describe());
  auto started = std::chrono::steady_clock::now();

  std::unique_ptr<RemoteControl> control;
  std::unique_ptr<ApiServer> api;
  if (listen_addr) {
    LiveConfig live;
    live.pids = o.pids;
    live.uid = o.uid;
    live.hex = o.output.hex;
    live.truncate = o.output.tsize;
    live.library = o.library;
    live.mode = o.mode;
    live.ring_bytes = rings_owner.ring_bytes();
    live.ecapture_q = ecq ? ecq->url() : std::string();
    live.probe_pids = o.pids;
    for (const auto& t : cap.targets()) live.targets.push_back(t.display);
    live.uprobes = cap.uprobes();
    RemoteControl::Hooks hooks;
    hooks.metrics = [&] {
      return metrics_text(collect(rings_owner, processor, readers, *outputs, output.get()), readers, ecq.get(),
                          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    };
    hooks.counters_json = [&] { return counters_json(collect(rings_owner, processor, readers, *outputs, output.get())); };
    hooks.log = [](const std::string& line) { log_line(line); };
    control = std::make_unique<RemoteControl>(module, cap, rings_owner, processor, std::move(live), std::move(hooks));
    ApiServer::Options ao;
    ao.addr = *listen_addr;
    ao.token = o.listen_token;
    auto server = ApiServer::start(ao, [c = control.get()](const ApiRequest& r) { return c->handle(r); });
    if (!server) {
      log("{}", server.error().message);
      cap.detach();
      for (auto& r : readers) r->request_stop();
      for (auto& r : readers) r->join();
      processor.join();
      return 1;
    }
    api = std::move(*server);
    log("config API: listening on http://{}/{}", api->address(), o.listen_token.empty() ? "" : " (token required)");
  }

  console("{}", ready_line);

  int exit_code = 0;
  Counters last_status;
  auto last_status_at = started;
  while (true) {
    timespec tick{1, 0};
    int sig = sigtimedwait(&stop_set, nullptr, &tick);
    if (sig == SIGINT || sig == SIGTERM) break;
    if (sig == SIGHUP) {
      // logrotate: every file output is closed and opened again by its writer.
      outputs->reopen();
      if (capture_file) capture_file->request_reopen();
      if (keylog) keylog->request_reopen();
      if (pcap) pcap->request_reopen();
      log("SIGHUP: reopened output files");
    }
    auto now = std::chrono::steady_clock::now();
    if (o.stats_interval > 0 && now - last_status_at >= std::chrono::seconds(o.stats_interval)) {
      Counters t = collect(rings_owner, processor, readers, *outputs, output.get());
      console("{}", stats_line(t, last_status, std::chrono::duration<double>(now - last_status_at).count()));
      last_status = t;
      last_status_at = now;
    }
    bool failed = false;
    for (auto& r : readers) {
      if (r->finished() && !r->error().empty()) {
        console("reader {} failed: {}", r->id(), r->error());
        failed = true;
      }
    }
    if (failed) {
      exit_code = 1;
      break;
    }
  }

  // No configuration change may race the shutdown.
  if (api) api->stop();
  // Stop producing, then drain: readers empty their rings, the processor
  // delivers everything, the writers deliver their queues (or count what
  // they could not), and only then are the losses summed up.
  cap.detach();
  if (packets) packets->detach();
  for (auto& r : readers) r->request_stop();
  for (auto& r : readers) r->join();
  processor.join();
  sink.flush();
  if (capture_file) capture_file->finish();  // last frame compressed and written, file closed
  outputs->close_events();
  if (pcap) pcap->finish();  // held connections written (counted as missed), file closed
  if (keylog) keylog->finish();  // queued key lines written, file closed
  if (!processor.error().empty()) {
    console("processor failed: {}", processor.error());
    exit_code = 1;
  }

  Counters t = collect(rings_owner, processor, readers, *outputs, output.get());
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  print_summary(t, secs, keylog, pcap);
  if (capture_file)
    console("capture file: {} frames, {} of them compressed at a faster level than --zstd-level {} because "
        "compression fell behind",
        capture_file->frames_written(), capture_file->frames_faster(), o.zstd_level);
  for (const auto& x : outputs->extras())
    if (x.network) console("output {}: {} records delivered, {} connection(s) made", x.name, x.delivered, x.connects);
  if (ecq) {
    // The summary lines above reach the clients before the close.
    g_log_tap.store(nullptr, std::memory_order_release);
    ecq->stop();
  }
  return exit_code;
}

}  // namespace clearcap
