#include "tools/clearcap/capture_command.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "control/api_server.h"
#include "control/remote_control.h"
#include "control/status_text.h"
#include "core/capture_session.h"
#include "core/peer_access.h"
#include "core/privileges.h"
#include "core/syscall_fd_demand.h"
#include "core/target_watch.h"
#include "modules/module_info.h"
#include "modules/packet/packet_capture.h"
#include "sinks/output_set.h"
#include "tools/clearcap/console.h"
#include "tools/clearcap/signals.h"

#ifndef CLEARCAP_VERSION
#define CLEARCAP_VERSION "dev"
#endif

namespace clearcap {

namespace {

uint32_t round_up_pow2(uint32_t v) {
  uint32_t p = 1;
  while (p < v) p <<= 1;
  return p;
}

Counters collect(const CaptureSession& session, const OutputSet& outs, const TargetWatch* watch) {
  Counters t = session.counters();
  if (watch) {
    t.targets_attached_later = watch->attached_later();
    t.targets_not_attached = watch->not_attached();
  }
  if (const http::Stage* stage = outs.http_stage()) t.http = stage->snapshot();
  std::vector<SinkStats> stats;
  outs.collect_stats(stats);
  for (const auto& s : stats)
    t.outputs.push_back(OutputCounters{s.name, s.write_errors, s.dropped_events, s.dropped_bytes, s.last_errno, s.longest_write_ns});
  return t;
}

LiveGauges gauges(const ModuleInfo& module, const CaptureSession& session, const OutputSet& outs, double uptime_s) {
  LiveGauges g;
  g.module = module.name;
  for (const auto& r : session.readers())
    g.reader_queues.emplace_back(r->id(), static_cast<uint64_t>(r->full_queue().size_approx()));
  if (const EcaptureqServer* ecq = outs.ecaptureq()) {
    g.ecaptureq = true;
    g.ecaptureq_pending = ecq->pending();
    g.ecaptureq_clients = ecq->clients();
  }
  g.uptime_s = uptime_s;
  return g;
}

}  // namespace

int run_capture_command(const ModuleInfo& module, const CaptureCommandOptions& o) {
  Console console(o.debug);
  // Bad addresses are reported before any BPF work.
  std::optional<WsUrl> ecq_url;
  if (!o.ecaptureq.empty()) {
    auto u = parse_ws_url(o.ecaptureq);
    if (!u) return console.log("{}", u.error().message), 2;
    ecq_url = *u;
  }
  std::optional<ListenAddr> listen_addr;
  if (!o.listen.empty()) {
    auto a = parse_listen_addr(o.listen);
    if (!a) return console.log("{}", a.error().message), 2;
    listen_addr = *a;
  }
  // Tokens: from a file or the environment; argv works but every local
  // user can read it with ps.
  auto listen_token = load_token({"--listen-token", o.listen_token, o.listen_token_file, "CLEARCAP_LISTEN_TOKEN"});
  if (!listen_token) return console.log("{}", listen_token.error().message), 2;
  auto ecq_token =
      load_token({"--ecaptureq-token", o.ecaptureq_token, o.ecaptureq_token_file, "CLEARCAP_ECAPTUREQ_TOKEN"});
  if (!ecq_token) return console.log("{}", ecq_token.error().message), 2;
  for (const auto& [given, flag] : {std::pair{&o.listen_token, "--listen-token"},
                                    std::pair{&o.ecaptureq_token, "--ecaptureq-token"}})
    if (!given->empty())
      console.log("warning: {} on the command line is visible to every local user (ps); use {}-file FILE (0600) "
                  "or the environment instead",
                  flag, flag);
  const std::vector<uid_t> allow_uids(o.allow_uids.begin(), o.allow_uids.end());
  Cgroup cgroup;
  if (!o.cgroup_path.empty()) {
    auto c = resolve_cgroup(o.cgroup_path);
    if (!c) return console.log("--cgroup_path {}", c.error().message), 2;
    cgroup = *c;
  }
  if (auto r = check_btf(); !r) return console.log("{}", r.error().message), 1;
  if (auto r = check_privileges(); !r) return console.log("{}", r.error().message), 1;
  RunSignals signals;  // before any thread exists

  const bool keylog_mode = o.mode == "keylog", pcap_mode = o.mode == "pcap";
  // -m pcap: interface, link type and filter are checked before any BPF work.
  OutputSet::Record record;
  std::optional<PcapInterface> iface;
  if (pcap_mode) {
    auto i = pcap_interface(o.ifname);
    if (!i) return console.say("{}", i.error().message), 1;
    iface = *i;
    auto f = PacketFilter::compile(o.filter, iface->raw_ip ? PacketFilter::Link::kRaw : PacketFilter::Link::kEthernet,
                                   o.snaplen);
    if (!f) return console.say("{}", f.error().message), 1;
    record.filter = std::move(*f);
  }

  // Outputs first (their writer threads inherit the blocked signals): a bad
  // destination stops clearcap before any probe is attached, and the
  // messages below already go to the log destination. Declared before the
  // session: it is destroyed after the session has delivered everything.
  auto outs_r = OutputSet::create(o.output, o.mode, o.capture_file);
  if (!outs_r) return console.log("{}", outs_r.error().message), 1;
  std::unique_ptr<OutputSet> outs = std::move(*outs_r);
  console.attach_outputs(&outs->outputs());
  struct Detach {
    Console& c;
    ~Detach() {
      c.attach_tap(nullptr);
      c.attach_outputs(nullptr);
    }
  } detach{console};
  // Packets (-m pcap) write into the session's rings: destroyed after it.
  std::unique_ptr<PacketCapture> packets;

  CaptureSession::Options so;
  const uint32_t page = static_cast<uint32_t>(sysconf(_SC_PAGESIZE));
  if (o.mapsize_pages != 0) {
    const uint32_t pages = round_up_pow2(o.mapsize_pages);
    if (pages != o.mapsize_pages) console.log("--mapsize {} rounded up to {} pages", o.mapsize_pages, pages);
    so.rings.ring_bytes = pages * page;
  } else {
    so.rings.ring_bytes = RingSet::default_ring_bytes();
  }
  so.rings.wakeup_bytes = o.wakeup_bytes < 0 ? so.rings.ring_bytes / 4 : static_cast<uint64_t>(o.wakeup_bytes);
  so.rings.perf = o.buffer == "perf";
  so.readers = o.readers;
  so.poll_ms = o.poll_ms;
  so.reader_priority = o.reader_priority;
  so.pids = o.pids;
  so.uid = o.uid;
  so.cgroup = cgroup;
  so.format = FormatOptions{o.output.hex, static_cast<size_t>(o.output.tsize)};
  auto session_r = CaptureSession::create(so, outs->sink());
  if (!session_r) return console.say("{}", session_r.error().message), 1;
  CaptureSession& session = **session_r;

  ModuleOptions mo;
  mo.discovery.library = o.library;
  mo.discovery.pids = o.pids;
  mo.discovery.at_symbols = o.probe_placement == "symbol";
  mo.mode = o.mode;
  mo.syscall_fd = o.syscall_fd;
  auto cap_r = session.add_module([&](const RingSet& rings) { return module.load(mo, rings); });
  if (!cap_r) return console.say("{}", cap_r.error().message), 1;
  CaptureModule& cap = **cap_r;
  session.remember_discovery(mo.discovery);
  // Library files that appear later (new processes, dlopen, containers).
  std::unique_ptr<TargetWatch> watch;
  // Warnings always (in keylog mode on stderr too: why a library gives no
  // keys; silence would look like a capture with no handshakes).
  for (const auto& n : cap.notes()) {
    if (n.severity == Note::Severity::kWarning) keylog_mode ? console.say("{}", n.text) : console.log("{}", n.text);
    else if (o.debug) console.log("{}", n.text);
  }
  if (o.debug) {
    console.log("syscall tracepoints: {} (--syscall-fd {})",
                cap.syscall_tracepoints() ? "attached (they run for every read/write syscall on the machine)"
                                          : "not attached",
                o.syscall_fd);
    for (const auto& t : cap.targets()) {
      console.log("target: {} ({} functions{})", t.display, t.offsets.size(),
                  t.pids.empty() ? std::string() : fmt::format(", pids {}", fmt::join(t.pids, ",")));
      for (const auto& n : t.notes) console.log("target: {}: {}", t.display, n);
    }
  }

  if (pcap_mode) {
    if (cap.key_targets() == 0)
      console.say("no hooked library gives TLS keys (see above): packets are captured, but Wireshark will not "
                  "decrypt them");
    auto p = PacketCapture::create(session.rings(), o.snaplen);
    if (!p) return console.say("{}", p.error().message), 1;
    packets = std::move(*p);
    // On lo every packet passes egress and then ingress: once is enough.
    if (auto r = packets->attach(iface->ifindex, o.ifname, true, !iface->loopback); !r)
      return console.say("{}", r.error().message), 1;
    session.add_producer([&packets] { packets->detach(); });
  }
  if (keylog_mode && cap.key_targets() == 0)
    return console.say("no hooked library gives TLS keys (see above); nothing to capture in -m keylog"), 1;

  record.mode = o.mode;
  record.capture_file = o.capture_file;
  record.zstd_level = o.zstd_level;
  record.keylog_file = o.keylog_file;
  record.keylog_given = o.keylog_given;
  record.version = CLEARCAP_VERSION;
  if (iface) {
    record.pcap.if_name = o.ifname;
    record.pcap.linktype = iface->linktype;
    record.pcap.snaplen = o.snaplen;
  }
  if (auto r = outs->add_record(std::move(record)); !r) return console.say("{}", r.error().message), 1;
  if (ecq_url) {
    EcaptureqServer::Options eo;
    eo.url = *ecq_url;
    eo.token = *ecq_token;
    eo.allow_uids = allow_uids;
    eo.format = so.format;
    if (auto r = outs->add_ecaptureq(eo); !r) return console.log("{}", r.error().message), 1;
    console.attach_tap(outs->ecaptureq());
    console.log("ecaptureq: streaming on {}{}", outs->ecaptureq()->url(),
                ecq_token->empty() ? " (local users: root and the user who started clearcap, --allow-uid)"
                                   : " (token required)");
  }

  if (auto r = session.start(); !r) return console.say("{}", r.error().message), 1;
  if (o.debug)
    for (const auto& r : session.readers())
      console.log("reader {}: {} ring(s), {}", r->id(), r->ring_count(), r->scheduling());
  std::unique_ptr<SyscallFdDemand> syscall_fd_demand;
  if (o.syscall_fd == "auto")
    syscall_fd_demand = std::make_unique<SyscallFdDemand>(
        [&session] { return session.rings().read_stat(CC_STAT_NO_FD); },
        [&session](bool wanted) { return session.want_syscall_fd(wanted); },
        [&console](const std::string& line) { console.log("{}", line); });
  if (module.library && o.rescan_seconds > 0)
    watch = std::make_unique<TargetWatch>(session, cap, *module.library, std::chrono::seconds(o.rescan_seconds),
                                          [&console](const std::string& line) { console.log("{}", line); });

  // Before "ready:": whoever waits for that line can rely on this one.
  if (keylog_mode)
    console.say("keys: from {} of {} target(s), written to {} as each handshake completes", cap.key_targets(),
                cap.targets().size(), o.keylog_file);
  if (pcap_mode)
    console.say("packets: {} ({}), {}, filter '{}' (applied in userspace), snap length {}; keys from {} of {} "
                "target(s) as Decryption Secrets Blocks{}",
                o.ifname, iface->loopback ? "egress only: loopback" : "egress and ingress", o.capture_file, o.filter,
                o.snaplen, cap.key_targets(), cap.targets().size(),
                outs->keylog() ? fmt::format(" and to {}", o.keylog_file) : "");
  // Composed before the API can retarget anything, printed once all is up.
  std::vector<std::string> names;
  for (const auto& t : cap.targets()) names.push_back(t.display);
  const std::string ready_line =
      fmt::format("ready: attached {} probes to {} target(s) ({}), {} {}ring(s) of {} KiB, {} reader(s)",
                  cap.uprobes(), cap.targets().size(), fmt::join(names, ", "), session.rings().ring_fds().size(),
                  session.rings().perf() ? "perf " : "", session.rings().ring_bytes() / 1024, session.reader_count());
  console.log("outputs: {}", outs->outputs().describe());
  const auto started = std::chrono::steady_clock::now();
  auto uptime = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(); };

  std::unique_ptr<RemoteControl> control;
  std::unique_ptr<ApiServer> api;
  if (listen_addr) {
    LiveConfig live;
    live.pids = o.pids;
    live.uid = o.uid;
    live.cgroup = cgroup;
    live.hex = o.output.hex;
    live.truncate = o.output.tsize;
    live.library = o.library;
    live.mode = o.mode;
    live.ring_bytes = session.rings().ring_bytes();
    live.ecapture_q = outs->ecaptureq() ? outs->ecaptureq()->url() : std::string();
    live.probe_pids = o.pids;
    live.targets = names;
    live.uprobes = cap.uprobes();
    RemoteControl::Hooks hooks;
    hooks.metrics = [&] { return metrics_text(collect(session, *outs, watch.get()), gauges(module, session, *outs, uptime())); };
    hooks.counters_json = [&] { return counters_json(collect(session, *outs, watch.get())); };
    hooks.log = [&console](const std::string& line) { console.log_line(line); };
    control = std::make_unique<RemoteControl>(module, session, cap, std::move(live), std::move(hooks));
    ApiServer::Options ao;
    ao.addr = *listen_addr;
    ao.token = *listen_token;
    ao.allow_uids = allow_uids;
    ao.module = module.name;
    auto server = ApiServer::start(ao, [c = control.get()](const ApiRequest& r) { return c->handle(r); });
    if (!server) return console.log("{}", server.error().message), 1;
    api = std::move(*server);
    console.log("config API: listening on http://{}/{}", api->address(),
                listen_token->empty() ? " (local users: root and the user who started clearcap, --allow-uid)"
                                      : " (token required)");
  }
  console.say("{}", ready_line);

  int exit_code = 0;
  Counters last_status;
  auto last_status_at = started;
  while (true) {
    const auto got = signals.wait(200);
    if (got == RunSignals::Got::kStop) break;
    // Like tcpdump: once the reader of stdout is gone, the run is over.
    if (const std::string gone = outs->outputs().closed_for_good(); !gone.empty()) {
      console.say("{} was closed by its reader: stopping", gone);
      break;
    }
    if (got == RunSignals::Got::kReopen) {
      outs->reopen();  // logrotate: every file output is closed and opened again by its writer
      console.log("SIGHUP: reopened output files");
    }
    const auto now = std::chrono::steady_clock::now();
    if (o.stats_interval > 0 && now - last_status_at >= std::chrono::seconds(o.stats_interval)) {
      Counters t = collect(session, *outs, watch.get());
      console.say("{}", stats_line(t, last_status, std::chrono::duration<double>(now - last_status_at).count()));
      last_status = t;
      last_status_at = now;
    }
    if (auto e = session.reader_error(); !e.empty()) {
      console.say("{}", e);
      exit_code = 1;
      break;
    }
  }

  // No configuration change may race the shutdown. Then stop producing and
  // drain; the writers deliver their queues (or count what they could not),
  // and only then are the losses summed up. All of it on a thread of its
  // own, bounded: after --shutdown-timeout, or at a second SIGINT/SIGTERM,
  // the process ends at once with the summary, counting what the outputs
  // still hold as lost.
  const auto give_up_at = std::chrono::steady_clock::now() + std::chrono::seconds(o.shutdown_timeout);
  const std::string timeout_why = fmt::format("--shutdown-timeout ({} s) reached", o.shutdown_timeout);
  auto bounded = [&](std::function<void()> step) { return signals.run_bounded(std::move(step), give_up_at, timeout_why); };
  auto print_summary = [&] {
    const Counters t = collect(session, *outs, watch.get());
    for (const auto& line : summary_lines(t, uptime(), outs->summary_lines(t.bpf[CC_STAT_PACKETS_TRUNCATED])))
      console.say("{}", line);
    for (const auto& line : outs->delivery_lines()) console.say("{}", line);
  };
  if (std::string why = bounded([&] {
        if (watch) watch->stop();  // no re-target may race the stop (the counters stay readable)
        syscall_fd_demand.reset();
        if (api) api->stop();
        session.stop();
        outs->finish();
      });
      !why.empty()) {
    console.say("shutdown: {}: exiting without waiting for the outputs; what they still hold is counted as lost",
                why);
    outs->abandon();
    print_summary();
    std::fflush(stderr);
    std::_Exit(exit_code);  // no destructor: threads may still be blocked in the outputs
  }
  if (!session.processor().error().empty()) {
    console.say("processor failed: {}", session.processor().error());
    exit_code = 1;
  }
  print_summary();
  // The summary reaches eCaptureQ clients and log destinations before they
  // close; that last delivery is bounded too (the summary is on stderr).
  console.attach_tap(nullptr);
  if (!bounded([&] { outs->close(); }).empty()) {
    std::fflush(stderr);
    std::_Exit(exit_code);
  }
  return exit_code;
}

}  // namespace clearcap
