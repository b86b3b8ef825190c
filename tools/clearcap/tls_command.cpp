#include "tools/clearcap/tls_command.h"

#include <net/if.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <thread>

#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/boot_clock.h"
#include "core/privileges.h"
#include "core/processor.h"
#include "core/ring_reader.h"
#include "core/tls_capture.h"
#include "sinks/capture_writer.h"
#include "sinks/keylog.h"
#include "sinks/pcap_sink.h"
#include "sinks/pcapng_blocks.h"
#include "tools/clearcap/outputs.h"

#ifndef CLEARCAP_VERSION
#define CLEARCAP_VERSION "dev"
#endif

namespace clearcap {

namespace {

bool g_debug = false;
// Set while the outputs exist; before that (and after), lines go to stderr.
Outputs* g_outputs = nullptr;

int libbpf_log(enum libbpf_print_level level, const char* format, va_list args) {
  if (!g_debug && level != LIBBPF_WARN) return 0;
  if (!g_debug) return 0;  // warnings are folded into our own errors
  return std::vfprintf(stderr, format, args);
}

// A log line: to the log destination (-l), else stderr.
template <typename... Args>
void log(fmt::format_string<Args...> f, Args&&... args) {
  const std::string line = fmt::format(f, std::forward<Args>(args)...);
  if (g_outputs) g_outputs->log(line);
  else fmt::print(stderr, "clearcap: {}\n", line);
}

// A line the user must see (ready, errors, --stats, summary): logged, and
// also on stderr when the log goes elsewhere.
template <typename... Args>
void console(fmt::format_string<Args...> f, Args&&... args) {
  const std::string line = fmt::format(f, std::forward<Args>(args)...);
  if (g_outputs) g_outputs->console(line);
  else fmt::print(stderr, "clearcap: {}\n", line);
}

uint32_t round_up_pow2(uint32_t v) {
  uint32_t p = 1;
  while (p < v) p <<= 1;
  return p;
}

struct Totals {
  std::array<uint64_t, CC_STAT__COUNT> bpf{};
  uint64_t events = 0, bytes = 0, decode_errors = 0, gaps = 0, gap_bytes = 0, late = 0;
  uint64_t stalls = 0, oversize = 0;
  std::vector<SinkStats> outputs;
};

Totals collect(TlsCapture& cap, const Processor& processor, const std::vector<std::unique_ptr<RingReader>>& readers,
               const Outputs& outputs, const EventSink* sink) {
  Totals t;
  if (auto s = cap.skeleton().read_stats(); s) t.bpf = *s;
  else console("{}", s.error().message);
  t.events = processor.events();
  t.bytes = processor.payload_bytes();
  t.decode_errors = processor.decode_errors();
  t.gaps = processor.gaps();
  t.gap_bytes = processor.gap_bytes();
  t.late = processor.late_events();
  for (const auto& r : readers) {
    t.stalls += r->stalls();
    t.oversize += r->oversize();
  }
  if (sink) sink->collect_stats(t.outputs);  // capture file or key log
  outputs.collect_stats(t.outputs);
  return t;
}

uint64_t lost_records(const Totals& t) {
  const auto& b = t.bpf;
  return b[CC_STAT_RINGBUF_FULL] + b[CC_STAT_READ_FAULT] + b[CC_STAT_CHUNK_LIMIT] + b[CC_STAT_NO_ENTRY_STATE] +
         b[CC_STAT_CALL_STATE_FULL] + b[CC_STAT_CONN_STATE_FULL] + b[CC_STAT_NO_RING] + b[CC_STAT_SCRATCH_BUSY] +
         b[CC_STAT_KEYS_RINGBUF_FULL] + b[CC_STAT_KEYS_READ_FAULT] + b[CC_STAT_PACKETS_RINGBUF_FULL] +
         b[CC_STAT_PACKETS_READ_FAULT] + b[CC_STAT_PACKETS_SCRATCH_BUSY] + t.oversize + t.decode_errors;
}

uint64_t lost_bytes(const Totals& t) {
  const auto& b = t.bpf;
  return b[CC_STAT_RINGBUF_FULL_BYTES] + b[CC_STAT_READ_FAULT_BYTES] + b[CC_STAT_CHUNK_LIMIT_BYTES] +
         b[CC_STAT_PACKETS_RINGBUF_FULL_BYTES];
}

// One line for --stats: totals and the event rate since the previous line.
void print_status(const Totals& t, const Totals& prev, double interval_s) {
  uint64_t output_errors = 0;
  for (const auto& o : t.outputs) output_errors += o.write_errors + o.dropped_events;
  console("stats: events {} (+{:.0f}/s), bytes {}, lost {} records / {} bytes (ring full {}), output errors {}",
      t.events, static_cast<double>(t.events - prev.events) / interval_s, t.bytes, lost_records(t), lost_bytes(t),
      t.bpf[CC_STAT_RINGBUF_FULL], output_errors);
}

void print_summary(const Totals& t, double seconds, const KeylogSink* keylog, const PcapSink* pcap) {
  const auto& b = t.bpf;
  console("--- summary ({:.1f} s) ---", seconds);
  console("events: {} ({} bytes of plaintext)", t.events, t.bytes);
  console("losses: {} ({} bytes known lost)", lost_records(t), lost_bytes(t));
  console("  ring buffer full: {} records ({} bytes)", b[CC_STAT_RINGBUF_FULL], b[CC_STAT_RINGBUF_FULL_BYTES]);
  console("  per-call chunk limit: {} calls ({} bytes)", b[CC_STAT_CHUNK_LIMIT], b[CC_STAT_CHUNK_LIMIT_BYTES]);
  console("  user memory read faults: {} chunks ({} bytes)", b[CC_STAT_READ_FAULT], b[CC_STAT_READ_FAULT_BYTES]);
  console("  calls without entry state: {}; call state table full: {}; connection table full: {}",
      b[CC_STAT_NO_ENTRY_STATE], b[CC_STAT_CALL_STATE_FULL], b[CC_STAT_CONN_STATE_FULL]);
  console("  no ring for CPU: {}; record scratch busy (preempted): {}; oversize records: {}; undecodable records: {}",
      b[CC_STAT_NO_RING], b[CC_STAT_SCRATCH_BUSY], t.oversize, t.decode_errors);
  if (keylog)
    console("keys: {} handshakes written to {} ({} duplicates of a written client random, {} incomplete); key "
        "records dropped (ring full): {}; key reads that faulted: {}",
        keylog->handshakes(), keylog->path(), keylog->duplicates(), keylog->incomplete(), b[CC_STAT_KEYS_RINGBUF_FULL],
        b[CC_STAT_KEYS_READ_FAULT]);
  if (pcap) {
    auto c = pcap->counters();
    console("packets: {} written to {}, {} left out by the filter expression (applied in userspace), {} cut to the "
        "snap length; dropped in the kernel: ring full {} ({} bytes), copy failed {}, scratch busy {}",
        c.packets, pcap->path(), c.filtered, b[CC_STAT_PACKETS_TRUNCATED], b[CC_STAT_PACKETS_RINGBUF_FULL],
        b[CC_STAT_PACKETS_RINGBUF_FULL_BYTES], b[CC_STAT_PACKETS_READ_FAULT], b[CC_STAT_PACKETS_SCRATCH_BUSY]);
    console("pcap keys: {} Decryption Secrets Blocks, {} duplicate key records (other end), {} unusable; TLS "
        "connections held for keys: {}, written without keys (grace period over or limit): {} ({} packets)",
        c.secrets_blocks, c.duplicate_keys, c.unusable_keys, c.held_connections, c.missed_connections,
        c.missed_packets);
  }
  console("stream gaps seen in output: {} ({} bytes); events out of order: {}", t.gaps, t.gap_bytes, t.late);
  for (const auto& o : t.outputs)
    console("output {}: {} write errors, {} bytes and {} events not delivered{}", o.name, o.write_errors,
        o.dropped_bytes, o.dropped_events,
        o.last_errno ? fmt::format(" (last error: {})", std::strerror(o.last_errno)) : "");
  console("events without a known fd: {}; calls skipped by filters: {}; reader stalls: {}", b[CC_STAT_NO_FD],
      b[CC_STAT_FILTERED], t.stalls);
}

}  // namespace

int run_tls_command(const TlsCommandOptions& o) {
  g_debug = o.debug;
  libbpf_set_print(libbpf_log);

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

  TlsCapture::Options copts;
  uint32_t pages = round_up_pow2(o.mapsize_pages);
  if (pages != o.mapsize_pages) log("--mapsize {} rounded up to {} pages", o.mapsize_pages, pages);
  copts.skel.ring_bytes = pages * static_cast<uint32_t>(sysconf(_SC_PAGESIZE));
  copts.skel.wakeup_bytes = o.wakeup_bytes < 0 ? copts.skel.ring_bytes / 4 : static_cast<uint64_t>(o.wakeup_bytes);
  copts.discovery.libssl = o.libssl;
  copts.discovery.pids = o.pids;
  copts.uid = o.uid;
  const bool keylog_mode = o.mode == "keylog";
  const bool pcap_mode = o.mode == "pcap";
  copts.keys = keylog_mode || pcap_mode;
  copts.data = !keylog_mode && !pcap_mode;
  copts.skel.snap_len = o.snaplen;

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

  auto capture = TlsCapture::create(copts);
  if (!capture) {
    console("{}", capture.error().message);
    return 1;
  }
  auto& cap = **capture;
  if (o.debug) {
    for (const auto& n : cap.notes()) log("skipped: {}", n);
    for (const auto& t : cap.targets())
      log("target: {} ({} functions{})", t.display, t.offsets.size(),
          t.pids.empty() ? std::string() : fmt::format(", pids {}", fmt::join(t.pids, ",")));
  }

  if (pcap_mode) {
    for (const auto& n : cap.key_notes())
      if (o.debug || n.rfind("keys cannot", 0) == 0) log("{}", n);
    if (cap.key_targets() == 0)
      console("no hooked library gives TLS keys (see above): packets are captured, but Wireshark will not decrypt them");
    // On lo every packet passes egress and then ingress: once is enough.
    if (auto r = cap.attach_packets(static_cast<int>(ifindex), o.ifname, true, !loopback); !r) {
      console("{}", r.error().message);
      return 1;
    }
  }

  if (keylog_mode) {
    // Why a library gives no keys is always shown: silence would look like
    // a capture with no handshakes.
    for (const auto& n : cap.key_notes())
      if (o.debug || n.rfind("keys cannot", 0) == 0) console("{}", n);
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
  if (pcap_mode) {
    if (o.keylog_given) {
      auto k = KeylogSink::open(o.keylog_file);
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
    auto p = PcapSink::open(popts, std::move(filter), pcap_keys.get());
    if (!p) {
      console("{}", p.error().message);
      return 1;
    }
    pcap = p->get();
    output = std::move(*p);
  } else if (keylog_mode) {
    auto k = KeylogSink::open(o.keylog_file);
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
    auto w = CaptureFileSink::open(o.capture_file, wopts);
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
  EventSink& sink = *sink_ptr;

  moodycamel::spsc_sema::LightweightSemaphore wake;
  const auto& rings = cap.skeleton().ring_fds();
  int nreaders = o.readers > 0 ? o.readers : std::min<int>(4, static_cast<int>(rings.size()));
  nreaders = std::min<int>(nreaders, static_cast<int>(rings.size()));
  std::vector<std::vector<int>> groups(static_cast<size_t>(nreaders));
  for (size_t i = 0; i < rings.size(); ++i) groups[i % groups.size()].push_back(rings[i]);
  RingReader::Options ropts;
  ropts.poll_ms = o.poll_ms;
  std::vector<std::unique_ptr<RingReader>> readers;
  std::vector<BatchSource*> reader_ptrs;
  for (int i = 0; i < nreaders; ++i) {
    readers.push_back(std::make_unique<RingReader>(i, groups[static_cast<size_t>(i)], cap.skeleton().ring_bytes(),
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
  console("ready: attached {} probes to {} target(s) ({}), {} ring(s) of {} KiB, {} reader(s)", cap.uprobes(),
      cap.targets().size(),
      fmt::join([&] {
        std::vector<std::string> names;
        for (const auto& t : cap.targets()) names.push_back(t.display);
        return names;
      }(),
                ", "),
      rings.size(), cap.skeleton().ring_bytes() / 1024, nreaders);
  log("outputs: {}", outputs->describe());
  auto started = std::chrono::steady_clock::now();

  int exit_code = 0;
  Totals last_status;
  auto last_status_at = started;
  while (true) {
    timespec tick{1, 0};
    int sig = sigtimedwait(&stop_set, nullptr, &tick);
    if (sig == SIGINT || sig == SIGTERM) break;
    if (sig == SIGHUP) {
      // logrotate: every file output is closed and opened again by its writer.
      outputs->reopen();
      log("SIGHUP: reopened output files");
    }
    auto now = std::chrono::steady_clock::now();
    if (o.stats_interval > 0 && now - last_status_at >= std::chrono::seconds(o.stats_interval)) {
      Totals t = collect(cap, processor, readers, *outputs, output.get());
      print_status(t, last_status, std::chrono::duration<double>(now - last_status_at).count());
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

  // Stop producing, then drain: readers empty their rings, the processor
  // delivers everything, the writers deliver their queues (or count what
  // they could not), and only then are the losses summed up.
  cap.detach();
  for (auto& r : readers) r->request_stop();
  for (auto& r : readers) r->join();
  processor.join();
  sink.flush();
  if (capture_file) capture_file->finish();  // last frame compressed and written, file closed
  outputs->close_events();
  if (pcap) pcap->finish();  // held connections written (counted as missed), file closed
  if (!processor.error().empty()) {
    console("processor failed: {}", processor.error());
    exit_code = 1;
  }

  Totals t = collect(cap, processor, readers, *outputs, output.get());
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  print_summary(t, secs, keylog, pcap);
  for (const auto& x : outputs->extras())
    if (x.network) console("output {}: {} records delivered, {} connection(s) made", x.name, x.delivered, x.connects);
  return exit_code;
}

}  // namespace clearcap
