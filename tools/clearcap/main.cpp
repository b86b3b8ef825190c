// clearcap command line. Flags follow eCapture's spelling (spec/cli.md).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "tools/clearcap/export_command.h"
#include "modules/registry.h"
#include "tools/clearcap/capture_command.h"
#include "sinks/transports/output_file.h"
#include "bpf/abi/packet.h"

#ifndef CLEARCAP_VERSION
#define CLEARCAP_VERSION "dev"
#endif

int main(int argc, char** argv) {
  CLI::App app{"clearcap: shows what programs send and receive in the clear (TLS plaintext via eBPF uprobes).\n"
               "Needs root (or CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH) and a kernel with BTF.",
               "clearcap"};
  app.set_version_flag("-v,--version", std::string("clearcap ") + CLEARCAP_VERSION);
  app.require_subcommand(1);
  app.fallthrough();
  app.footer("Examples:\n"
             "  clearcap tls                               every OpenSSL user on the system, human-readable\n"
             "  clearcap tls --format json                 one JSON object per line\n"
             "  clearcap tls --pid 1234 --pid 5678         only these processes (probes attached only there)\n"
             "  clearcap tls --libssl /usr/bin/node        a program with OpenSSL linked in\n"
             "  clearcap gnutls                            every GnuTLS user (wget, gnutls-cli, ...)\n"
             "  clearcap nss                               every NSS user (Firefox, Thunderbird, tstclnt, ...)\n"
             "  clearcap tls -w cap.ccap                   record to a compressed capture file (Ctrl-C to stop)\n"
             "  clearcap export cap.ccap -o cap.pcapng     ... then open it in Wireshark (HTTP dissected, no keys)\n"
             "  clearcap tls -m keylog -k keys.log         TLS secrets for Wireshark (tls.keylog_file)\n"
             "  clearcap tls --format json --eventaddr tcp://127.0.0.1:9000 --eventaddr events.jsonl\n"
             "                                             to a collector and a file at once\n"
             "  clearcap tls -l /var/log/clearcap.log --eventroratesize 100 --rotate-keep 10\n"
             "                                             log and events to a file, rotated at 100 MB\n"
             "SIGHUP reopens every output file (logrotate: create or copytruncate).\n"
             "  clearcap tls --ecaptureq ws://127.0.0.1:28257/ --listen 127.0.0.1:28256\n"
             "                                             stream to eCaptureQ clients; retarget with POST /tls\n"
             "  clearcap tls -m pcap -i eth0 -w out.pcapng tcp port 443\n"
             "                                             packets + keys in one pcapng: Wireshark decrypts it alone\n"
             "Stop with Ctrl-C: clearcap drains what is buffered and prints a summary with every loss by cause.");

  clearcap::register_module_sources();
  clearcap::CaptureCommandOptions o;
  // Paths, addresses and filters never hold control characters (a newline
  // in a path is a mistake or an attack on log readers).
  const CLI::Validator printable(
      [](std::string& s) {
        for (unsigned char c : s)
          if (c < 0x20 || c == 0x7f) return std::string("holds a control character (newline, tab, escape...)");
        return std::string();
      },
      "TEXT");
  // Numbers: CLI11 wraps "-1" into a huge unsigned value; refuse signs.
  const CLI::Validator unsigned_number(
      [](std::string& s) {
        return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos
                   ? std::string()
                   : std::string("must be a non-negative whole number");
      },
      "UINT");
  app.add_option("-p,--pid", o.pids, "Only these processes (repeatable or comma list); probes are attached only in them")
      ->delimiter(',')
      ->check(CLI::Range(1, 4194304));  // PID_MAX_LIMIT
  app.add_option("-u,--uid", o.uid, "Only this user id (0 = all users)")
      ->check(unsigned_number);
  app.add_option("--cgroup_path,--cgroup-path", o.cgroup_path,
                 "Only processes in this cgroup v2 directory or below it (absolute, or relative to the cgroup2 mount), "
                 "e.g. system.slice/nginx.service")
      ->check(printable);
  auto& out = o.output;
  app.add_option("--format", out.format,
                 "Output format: text (human), json (one object per line), proto (length-delimited eCaptureQ "
                 "LogEntry messages, as protobuf's writeDelimitedTo)")
      ->check(CLI::IsMember({"text", "json", "proto"}))
      ->capture_default_str();
  app.add_flag("--hex", out.hex,
               "Payloads as a hex dump (text; proto: the payload field carries the dump; json always has exact bytes)");
  app.add_option("-t,--tsize", out.tsize,
                 "Truncate each payload in the output to N bytes (0 = whole payload); text/json mark it truncated")
      ->check(unsigned_number & CLI::Range(uint64_t{0}, uint64_t{UINT32_MAX}));
  app.add_flag("--http-summary", out.http_summary,
               "Only one line per HTTP exchange (time, process, tuple, method, host, path, status, sizes, latency), "
               "like an access log; nothing else is printed");
  app.add_option("--http-body-max", out.http_body_max,
                 "Bytes of each HTTP body kept and shown decoded (gzip, deflate, br, zstd); longer bodies are cut and "
                 "counted (the raw bytes stay whole in data events and capture files)")
      ->check(unsigned_number & CLI::Range(uint64_t{0}, uint64_t{64} << 20))
      ->capture_default_str();
  app.add_flag("!--no-http", out.http,
               "Do not parse HTTP: no message or exchange events, every event typed by its first bytes");
  app.add_option("-l,--logaddr", out.logaddr,
                 "Where clearcap's own log goes, and the events too unless --eventaddr is given: stdout, stderr, a "
                 "file path, tcp://host:port, ws://host:port/path (default: log on stderr, events on stdout). Ready "
                 "line, errors, --stats and the summary are also printed on stderr")
      ->check(printable);
  app.add_option("--eventaddr", out.eventaddrs,
                 "Where events go (repeatable: each event goes to every one; a slow one never slows the others): "
                 "stdout, a file path, tcp://host:port, ws://host:port/path. Network outputs reconnect with backoff "
                 "and count what they could not deliver")
      ->check(printable);
  app.add_option("--eventroratesize", out.rotate_mb,
                 "Rotate every output file (events, log, -w capture file, key log, pcapng) before it would grow past N MiB "
                 "(rotated name: FILE.YYYYmmdd-HHMMSS.EXT); 0 = off")
      ->check(CLI::Range(uint64_t{0}, uint64_t{1} << 30));
  app.add_option("--eventroratetime", out.rotate_seconds, "Rotate every output file (events, log, -w capture file, key log, pcapng) every N seconds (at the "
                 "next write); 0 = off")
      ->check(CLI::Range(uint64_t{0}, uint64_t{10} * 365 * 86400));
  app.add_option("--rotate-keep", out.rotate_keep, "Keep at most N rotated files per output file, deleting the oldest; 0 = all. SIGHUP reopens every "
                 "output file (logrotate)")
      ->check(unsigned_number & CLI::Range(0u, 1000000u));
  // Every file clearcap writes holds plaintext or keys.
  const CLI::Validator file_mode_check(
      [](std::string& s) {
        auto m = clearcap::parse_file_mode(s);
        return m ? std::string() : m.error().message;
      },
      "MODE");
  std::string file_mode = "0600";
  app.add_option("--file-mode", file_mode,
                 "Mode of every file clearcap creates (events, log, -w capture file, key log, pcapng, each rotated "
                 "piece): they hold plaintext or keys, so only the owner may read them unless this loosens it, e.g. "
                 "0640. An existing file is narrowed to it, never widened")
      ->check(file_mode_check)
      ->capture_default_str();
  bool private_files = false;
  app.add_flag("--private-files", private_files, "Accepted for old command lines: files are private by default (--file-mode)");
  app.add_option("--output-queue-mb", out.queue_mb,
                 "Queue per output, in MiB: what a slow or absent destination may fall behind before events are "
                 "dropped (and counted). 32 MiB by default: ~80 ms of JSON at full speed, several scheduler periods "
                 "of a writer thread that shares its CPU; memory is used as the queue first fills. -w's queue is "
                 "half of this, at least 16 MiB")
      ->check(CLI::Range(uint64_t{1}, uint64_t{4096}))
      ->capture_default_str();
  app.add_option("--mapsize", o.mapsize_pages,
                 "Ring buffer size per CPU, in 4 KiB pages (rounded up to a power of two). Default: 8 MiB spread over "
                 "the possible CPUs, at least 4 MiB and at most 8 MiB per CPU (8 MiB on 1 CPU, 4 MiB each from "
                 "2 CPUs on); each ring counts twice in the RSS (its data is mapped twice)")
      ->check(CLI::Range(16u, 1u << 18));
  app.add_option("--wakeup-bytes", o.wakeup_bytes,
                 "Wake the reader when this many bytes wait in a ring (default: a quarter of the ring; 0 = on every "
                 "record, which costs far more per call)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 32));
  app.add_option("--buffer", o.buffer,
                 "Kernel-to-user transport: ring (BPF ring buffers, one per CPU; Linux 5.8+) or perf (perf event "
                 "arrays, one perf ring per CPU of the same size: the transport of older kernels). Same records, "
                 "counters and outputs; see docs/performance.md for how they compare")
      ->check(CLI::IsMember({"ring", "perf"}))
      ->capture_default_str();
  app.add_option("--syscall-fd", o.syscall_fd,
                 "When to run the syscall tracepoints that find the socket of a TLS connection whose library object "
                 "has no socket BIO (curl's own BIO, memory BIOs) or whose library's layout could not be learned "
                 "(node, unknown builds); while attached, every read/write syscall on the machine runs a small "
                 "program. auto (default): while a hooked library's layout is unknown, and from the first "
                 "connection without a socket BIO until none has been seen for 60 s (that connection's records "
                 "before the attach have no addresses); always (every connection gets its fd and addresses where "
                 "any can be found); needed (only while a layout is unknown); never")
      ->check(CLI::IsMember({"auto", "always", "needed", "never"}))
      ->capture_default_str();
  app.add_option("--probe-placement", o.probe_placement,
                 "Where the probes sit: auto (default): where the kernel handles a probe with one trap, not two. "
                 "A probe on an instruction the kernel must single-step costs a second trap per call; where "
                 "SSL_read/SSL_write start with one, they are hooked at the function both they and their _ex "
                 "variants call, found in the library's machine code (its records' source then reads "
                 "\"SSL_read/SSL_read_ex\"). symbol: every probe at its function's entry. --debug says where "
                 "each target's probes sit and why")
      ->check(CLI::IsMember({"auto", "symbol"}))
      ->capture_default_str();
  app.add_option("--readers", o.readers, "Reader threads (default: one per CPU, at most 4)")->check(CLI::Range(1, 256));
  app.add_option("--reader-priority", o.reader_priority,
                 "Real-time (SCHED_FIFO) priority of the ring reader threads; 0 = normal scheduling. A reader runs "
                 "briefly when woken (it empties its rings) and sleeps; with normal scheduling it first waits for "
                 "the running thread's time slice to end, milliseconds in which a busy CPU fills megabytes of ring. "
                 "Falls back to normal scheduling where refused (--debug says)")
      ->check(CLI::Range(0, 99))
      ->capture_default_str();
  app.add_option("--poll-ms", o.poll_ms, "How often readers look for records written without a wake-up")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--stats", o.stats_interval,
                 "Print a status line (events, rate, losses by cause) to stderr every N seconds (0 = only the summary "
                 "at exit)")
      ->check(CLI::Range(0, 86400));
  app.add_option("--rescan", o.rescan_seconds,
                 "Every N seconds, look for copies of the library that appeared after start (a process with its "
                 "own copy, a dlopen, a container started later) and hook them; what cannot be hooked is logged and "
                 "counted. 0 = never. Not with a library flag (that file only)")
      ->check(CLI::Range(0, 3600))
      ->capture_default_str();
  app.add_option("--shutdown-timeout", o.shutdown_timeout,
                 "Seconds from SIGINT/SIGTERM to exit, whatever the outputs do: outputs that have not delivered "
                 "what they hold by then (a stalled collector, a stdout nobody reads) are abandoned and what they "
                 "held is counted as lost in the summary. A second SIGINT exits at once, also with the summary")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  app.add_option("--ecaptureq", o.ecaptureq,
                 "Stream events and clearcap's log to eCaptureQ WebSocket clients (protobuf LogEntry frames) on this "
                 "URL, e.g. ws://127.0.0.1:28257/ (loopback unless another host is named; port 0 = any free port)")
      ->check(printable);
  app.add_option("--listen", o.listen,
                 "Serve the configuration API on HOST:PORT, e.g. 127.0.0.1:28256: POST /<module> (/tls, /gnutls, /nss) changes the pid/uid/cgroup "
                 "filters, truncate/hex or the library of the running capture; GET /status, GET /metrics "
                 "(Prometheus); see docs/remote.md")
      ->check(printable);
  // Tokens: a file or the environment; argv still works but ps shows it.
  auto token_flags = [&app, &printable](const std::string& flag, std::string& value, std::string& file, const char* env,
                            const char* what) {
    app.add_option(flag, value,
                   fmt::format("Require this token from {} (Authorization: Bearer TOKEN); visible to every local user "
                               "in ps: prefer {}-file or {}",
                               what, flag, env));
    app.add_option(flag + "-file", file,
                   fmt::format("Read the token for {} from this file (first line; owned by root or you, mode 0600). "
                               "Without a token only root, the user who started clearcap and --allow-uid may "
                               "connect, on loopback only",
                               what))
        ->check(printable);
  };
  token_flags("--ecaptureq-token", o.ecaptureq_token, o.ecaptureq_token_file, "CLEARCAP_ECAPTUREQ_TOKEN",
              "eCaptureQ clients (also ?token=TOKEN)");
  token_flags("--listen-token", o.listen_token, o.listen_token_file, "CLEARCAP_LISTEN_TOKEN",
              "every API request");
  app.add_option("--allow-uid", o.allow_uids,
                 "Also let this local user (uid; repeatable or comma list) use --listen and --ecaptureq without a token")
      ->delimiter(',')
      ->check(unsigned_number);
  app.add_flag("-d,--debug", o.debug, "Verbose log: targets, skipped files, libbpf and verifier messages");

  // One subcommand per module (modules/registry.cpp), with the module's own
  // library flag and modes; the other flags are shared.
  std::string& mode = o.mode;
  std::vector<std::string> filter_words;
  struct Sub {
    const clearcap::ModuleInfo* info;
    CLI::App* app;
    std::optional<std::string> library;
  };
  std::vector<Sub> subs;
  subs.reserve(clearcap::modules().size());
  for (const clearcap::ModuleInfo* m : clearcap::modules()) {
    std::string title = m->summary;
    if (!m->aliases.empty()) {
      title += " (alias";
      title += m->aliases.size() > 1 ? "es: " : ": ";
      for (size_t i = 0; i < m->aliases.size(); ++i) title += (i ? ", " : "") + m->aliases[i];
      title += ")";
    }
    subs.push_back({m, app.add_subcommand(m->name, title), std::nullopt});
    Sub& sub = subs.back();
    CLI::App* cmd = sub.app;
    for (const auto& a : m->aliases) cmd->alias(a);
    cmd->add_option(m->library_flag, sub.library, m->library_help)->check(printable);
    const bool keys = m->modes.size() > 1;
    std::vector<std::string> accepted = m->modes;
    if (keys) {
      accepted.push_back("key");
      accepted.push_back("pcapng");
    }
    cmd->add_option("-m,--model", mode,
                    keys ? "Capture mode: text (plaintext events); keylog or key (TLS secrets in NSS key log format "
                           "for Wireshark, written to -k as each handshake completes); pcap or pcapng (packets of -i "
                           "IFACE and the TLS keys as Decryption Secrets Blocks in one pcapng file, -w; Wireshark "
                           "decrypts it without a key log file)"
                         : "Capture mode: text (plaintext events; the only mode of this module)")
        ->check(CLI::IsMember(accepted))
        ->capture_default_str();
    cmd->add_option("-w,--capture-file,--pcapfile", o.capture_file,
                    keys ? "Write raw events to this clearcap capture file (zstd-compressed batches, like tcpdump -w) "
                           "instead of printing them; convert later with clearcap export. With -m pcap: the pcapng "
                           "file (default save.pcapng, created mode 0600: it holds TLS secrets)"
                         : "Write raw events to this clearcap capture file (zstd-compressed batches, like tcpdump -w) "
                           "instead of printing them; convert later with clearcap export")
        ->check(printable);
    cmd->add_option("--zstd-level", o.zstd_level,
                    "zstd level for -w (1 = fastest; higher = smaller files, more CPU on the writer thread)")
        ->check(CLI::Range(-7, 19))
        ->capture_default_str();
    if (!keys) continue;
    cmd->add_option("-i,--ifname", o.ifname,
                    "-m pcap: the network interface to capture on (required), e.g. eth0 or lo. tc programs on its "
                    "egress and ingress (egress only on lo, where every packet passes both)")
        ->check(printable);
    cmd->add_option("--snaplen", o.snaplen,
                    "-m pcap: bytes kept of each packet at most; longer packets are cut (their wire length is kept "
                    "and the cut is counted). Default and maximum 262144, as tcpdump (GSO packets on lo exceed "
                    "64 KiB); 65400 with --buffer perf")
        ->check(CLI::Range(64u, CC_PACKET_MAX));
    cmd->add_option("filter", filter_words,
                    "-m pcap: a pcap filter expression (pcap-filter(7)), e.g. tcp port 443. Applied in userspace "
                    "(libpcap) to every packet the tc program copies; packets left out are counted in the summary");
    cmd->add_option("-k,--keylogfile", o.keylog_file,
                    "Key log file for -m keylog, and with -m pcap also when given (created mode 0600, appended to; "
                    "one set of lines per handshake, deduplicated by client random)")
        ->capture_default_str()
        ->check(printable);
  }

  clearcap::ExportOptions eo;
  auto* exp = app.add_subcommand(
      "export",
      "Convert clearcap capture files (-w) offline to pcapng (synthesized TCP, for Wireshark), jsonl, txt or har. "
      "Several files are merged by time. Damaged files are exported up to the damage, which is reported with its "
      "offset (exit code 1).");
  exp->add_option("files", eo.inputs, "Capture files written by clearcap <module> -w")->required()->check(CLI::ExistingFile);
  exp->add_option("-o,--output", eo.output, "Output file; the format comes from its extension (.pcapng .jsonl .txt .har)")
      ->required()
      ->check(printable);
  exp->add_option("--format", eo.format, "Output format, overriding the extension")
      ->check(CLI::IsMember({"pcapng", "jsonl", "txt", "har"}));
  exp->add_flag("!--no-progress", eo.progress, "No progress bar (it is shown only when stderr is a terminal)");
  std::string export_mode = "0600";
  exp->add_option("--file-mode", export_mode, "Mode of the output file (it holds plaintext): 0600 unless loosened")
      ->check(file_mode_check)
      ->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::RequiredError& e) {
    // CLI11 only says "A subcommand is required"; name what was given.
    if (app.get_subcommands().empty()) {
      std::string given;
      for (int i = 1; i < argc; ++i)
        if (argv[i][0] != '-') {
          given = argv[i];
          break;
        }
      std::string names;
      for (const clearcap::ModuleInfo* m : clearcap::modules()) {
        names += m->name;
        if (!m->aliases.empty()) {
          names += " (alias";
          for (size_t i = 0; i < m->aliases.size(); ++i) names += (i ? ", " : " ") + m->aliases[i];
          names += ")";
        }
        names += ", ";
      }
      std::fprintf(stderr, "clearcap: %s; modules: %sexport. Run clearcap --help.\n",
                   given.empty() ? "no module given" : ("unknown module '" + given + "'").c_str(), names.c_str());
      return 2;
    }
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  out.file_mode = *clearcap::parse_file_mode(file_mode);
  // Two fifths of the shutdown budget for the outputs' last deliveries (at
  // most 3 s): detaching the probes and draining the rings come first.
  out.drain_timeout = std::chrono::milliseconds(std::clamp(o.shutdown_timeout * 400, 200, 3000));
  eo.file_mode = *clearcap::parse_file_mode(export_mode);
  if (exp->parsed()) return clearcap::run_export_command(eo);
  const Sub* chosen = nullptr;
  for (const Sub& sub : subs)
    if (sub.app->parsed()) chosen = &sub;
  if (!chosen) return 2;
  o.library = chosen->library;
  if (mode == "key") mode = "keylog";
  if (mode == "pcapng") mode = "pcap";
  o.keylog_given = chosen->app->get_option_no_throw("-k") && chosen->app->count("-k") > 0;
  for (const auto& w : filter_words) o.filter += (o.filter.empty() ? "" : " ") + w;
  if (mode == "pcap") {
    if (o.snaplen == 0) o.snaplen = o.buffer == "perf" ? CC_PACKET_MAX_PERF : CC_PACKET_MAX;
    if (o.ifname.empty()) {
      std::fprintf(stderr, "clearcap: -m pcap needs an interface: -i IFACE (e.g. -i eth0, -i lo)\n");
      return 2;
    }
    if (o.capture_file.empty()) o.capture_file = "save.pcapng";
  } else if (!o.filter.empty() || !o.ifname.empty()) {
    std::fprintf(stderr, "clearcap: -i and a filter expression ('%s') are for -m pcap only\n", o.filter.c_str());
    return 2;
  }
  if (mode == "keylog" && !o.capture_file.empty()) {
    std::fprintf(stderr, "clearcap: -w records plaintext events (-m text); -m keylog writes keys to -k FILE\n");
    return 2;
  }
  return clearcap::run_capture_command(*chosen->info, o);
}
