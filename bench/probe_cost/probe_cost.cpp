// Probe cost (root): what one probed call costs the calling thread, with no
// probe, with the count-only floor (an entry uprobe + uretprobe that only
// count: bpf/probe_floor.bpf.c), and with clearcap's own tls probes attached
// by TlsCapture's attach code and the reader -> processor -> JSON encoder
// pipeline running, so records are really consumed.
//
// Two functions are called N times per measurement:
//  * fn:  cc_probe_target, a test function in this binary whose prologue is
//         the one of libssl 3's SSL_write (`sub $0x18,%rsp`, checked at run
//         time): the trap costs what it costs on SSL_write, without the
//         cryptography around it;
//  * ssl: the real SSL_write of the system libssl, over an in-memory BIO
//         pair (the ciphertext is read out and dropped).
// Neither call has a socket, so clearcap records carry fd -1 and no 4-tuple;
// that skips only the once-per-connection tuple lookup, never per-call work.
//
// Conditions run interleaved (round r runs every condition once, starting at
// a rotating position) and each figure is the median over rounds: on a busy
// VM the ratios to the floor are what can be trusted, not absolute times.
//
// Subcommand `attach-floor` attaches the floor probes to a running process's
// libssl and waits for SIGINT (used by tools/perf-harness).
#include <dlfcn.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "core/elf_symbols.h"
#include "core/privileges.h"
#include "core/processor.h"
#include "core/ring_reader.h"
#include "core/tls_capture.h"
#include "sinks/json_encoder.h"
#include "skel/probe_floor_skeleton.h"

// libssl 3.0's SSL_write starts `48 83 ec 18  sub $0x18,%rsp` (objdump -d
// libssl.so.3). Written in assembly so no compiler can change the prologue;
// it returns `num` like a successful SSL_write, so clearcap's uretprobe
// copies `num` bytes from `buf` exactly as it would for the real call.
extern "C" int cc_probe_target(void* ssl, const void* buf, int num);
asm(R"(
    .text
    .globl cc_probe_target
    .type cc_probe_target, @function
    .p2align 4
cc_probe_target:
    sub $0x18, %rsp
    mov %edx, %eax
    add $0x18, %rsp
    ret
    .size cc_probe_target, .-cc_probe_target
)");

namespace clearcap {
namespace {

template <typename... Args>
void log(fmt::format_string<Args...> f, Args&&... args) {
  fmt::print(stderr, "probe_cost: {}\n", fmt::format(f, std::forward<Args>(args)...));
}

// Consumes records the way clearcap does (decode, merge, JSON encode) but
// drops the text: the cost under test is the caller's, not a write(2).
class EncodeDropSink : public EventSink {
 public:
  void write(const Event& ev) override {
    out_.clear();
    enc_.encode(ev, out_);
    bytes_ += out_.size();
  }
  void flush() override {}
  void collect_stats(std::vector<SinkStats>&) const override {}

 private:
  JsonEncoder enc_{FormatOptions{}};
  std::string out_;
  uint64_t bytes_ = 0;
};

// ---------------------------------------------------------------- TLS pair

struct TlsPair {
  SSL_CTX* sctx = nullptr;
  SSL_CTX* cctx = nullptr;
  SSL* server = nullptr;
  SSL* client = nullptr;
  BIO* c_net = nullptr;  // the client's ciphertext comes out here
  BIO* s_net = nullptr;
  std::vector<unsigned char> sink = std::vector<unsigned char>(1 << 17);

  ~TlsPair() {
    SSL_free(client);
    SSL_free(server);
    BIO_free(c_net);
    BIO_free(s_net);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
  }
  static void pump(BIO* from, BIO* to, std::vector<unsigned char>& tmp) {
    int n;
    while ((n = BIO_read(from, tmp.data(), static_cast<int>(tmp.size()))) > 0) BIO_write(to, tmp.data(), n);
  }
  void drain() {
    while (BIO_read(c_net, sink.data(), static_cast<int>(sink.size())) > 0) {
    }
  }
};

Result<std::unique_ptr<TlsPair>> make_tls_pair() {
  auto p = std::make_unique<TlsPair>();
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  if (!key || !cert) return make_error("cannot create a test key and certificate (OpenSSL)");
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("probe-cost"), -1,
                             -1, 0);
  X509_set_issuer_name(cert, name);
  X509_sign(cert, key, EVP_sha256());
  p->sctx = SSL_CTX_new(TLS_server_method());
  p->cctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_use_certificate(p->sctx, cert);
  SSL_CTX_use_PrivateKey(p->sctx, key);
  X509_free(cert);
  EVP_PKEY_free(key);
  SSL_CTX_set_verify(p->cctx, SSL_VERIFY_NONE, nullptr);
  BIO *c_int = nullptr, *s_int = nullptr;
  // Room for a 16 KiB record plus overhead, so SSL_write never blocks.
  BIO_new_bio_pair(&c_int, 1 << 17, &p->c_net, 1 << 17);
  BIO_new_bio_pair(&s_int, 1 << 17, &p->s_net, 1 << 17);
  p->client = SSL_new(p->cctx);
  p->server = SSL_new(p->sctx);
  SSL_set_bio(p->client, c_int, c_int);
  SSL_set_bio(p->server, s_int, s_int);
  SSL_set_connect_state(p->client);
  SSL_set_accept_state(p->server);
  std::vector<unsigned char> tmp(1 << 17);
  for (int i = 0; i < 100 && !(SSL_is_init_finished(p->client) && SSL_is_init_finished(p->server)); ++i) {
    SSL_do_handshake(p->client);
    TlsPair::pump(p->c_net, p->s_net, tmp);
    SSL_do_handshake(p->server);
    TlsPair::pump(p->s_net, p->c_net, tmp);
  }
  if (!SSL_is_init_finished(p->client) || !SSL_is_init_finished(p->server))
    return make_error("the in-memory TLS handshake did not finish (OpenSSL)");
  p->drain();  // session tickets: the client never reads them
  return p;
}

// --------------------------------------------------------------- targets

struct Targets {
  std::string exe;      // this binary, for the test function
  uint64_t fn_off = 0;  // file offset of cc_probe_target
  std::string libssl;   // the libssl this process really uses
  uint64_t ssl_write_off = 0;
};

Result<Targets> find_targets() {
  Targets t;
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return make_error("cannot read /proc/self/exe");
  t.exe.assign(buf, static_cast<size_t>(n));
  auto offs = find_function_offsets(t.exe, {"cc_probe_target"});
  if (!offs) return tl::unexpected(offs.error());
  if (!offs->count("cc_probe_target")) return make_error(t.exe + ": no symbol cc_probe_target (stripped binary?)");
  t.fn_off = offs->at("cc_probe_target");

  Dl_info info{};
  if (!dladdr(reinterpret_cast<void*>(&SSL_write), &info) || !info.dli_fname)
    return make_error("cannot tell which libssl provides SSL_write (dladdr)");
  char real[4096];
  if (!realpath(info.dli_fname, real)) return make_error(std::string("cannot resolve ") + info.dli_fname);
  t.libssl = real;
  auto s = find_function_offsets(t.libssl, {"SSL_write"});
  if (!s) return tl::unexpected(s.error());
  if (!s->count("SSL_write")) return make_error(t.libssl + ": no SSL_write");
  t.ssl_write_off = s->at("SSL_write");

  // The claim of this benchmark: the probed instruction is `sub rsp, imm8`.
  const auto* code = reinterpret_cast<const unsigned char*>(&cc_probe_target);
  if (!(code[0] == 0x48 && code[1] == 0x83 && code[2] == 0xec))
    return make_error(fmt::format("cc_probe_target starts {:02x} {:02x} {:02x}, not sub $imm8,%rsp (48 83 ec)",
                                  code[0], code[1], code[2]));
  const auto* ssl_code = reinterpret_cast<const unsigned char*>(&SSL_write);
  if (!(ssl_code[0] == 0x48 && ssl_code[1] == 0x83 && ssl_code[2] == 0xec))
    log("note: this libssl's SSL_write starts {:02x} {:02x} {:02x}, not sub $imm8,%rsp", ssl_code[0], ssl_code[1],
        ssl_code[2]);
  return t;
}

// ------------------------------------------------------------ conditions

enum class Probe { kNone, kFloor, kClearcap };

struct Condition {
  std::string name;
  bool ssl;  // real SSL_write, else the test function
  Probe probe;
  size_t payload;
  bool wake_every;  // wakeup_bytes = 0
};

struct Sample {
  double ns_per_call;
  uint64_t events = 0, losses = 0;
};

// The pipeline clearcap runs: readers over the rings, processor, encoder.
struct Pipeline {
  moodycamel::spsc_sema::LightweightSemaphore wake;
  EncodeDropSink sink;
  std::vector<std::unique_ptr<RingReader>> readers;
  std::unique_ptr<Processor> processor;

  Result<void> start(TlsSkeleton& skel, size_t want_readers) {
    const auto& rings = skel.ring_fds();
    size_t nreaders = std::min<size_t>(want_readers ? want_readers : 4, rings.size());  // clearcap's default
    std::vector<std::vector<int>> groups(nreaders);
    for (size_t i = 0; i < rings.size(); ++i) groups[i % nreaders].push_back(rings[i]);
    std::vector<BatchSource*> srcs;
    for (size_t i = 0; i < nreaders; ++i) {
      readers.push_back(
          std::make_unique<RingReader>(static_cast<int>(i), groups[i], skel.ring_bytes(), RingReader::Options{}, &wake));
      if (auto r = readers.back()->open(); !r) return r;
      srcs.push_back(readers.back().get());
    }
    processor = std::make_unique<Processor>(srcs, sink, Processor::Options{}, &wake);
    processor->start();
    for (auto& r : readers) r->start();
    return {};
  }
  void stop() {
    for (auto& r : readers) r->request_stop();
    for (auto& r : readers) r->join();
    if (processor) processor->join();
  }
};

class Runner {
 public:
  Runner(Targets t, TlsPair& tls, size_t calls, size_t readers)
      : t_(std::move(t)), tls_(tls), calls_(calls), readers_(readers) {}

  Result<Sample> run(const Condition& c) {
    std::vector<unsigned char> payload(c.payload);
    for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<unsigned char>('a' + i % 26);
    void* fake_ssl = &payload;  // any stable pointer: one connection

    std::unique_ptr<ProbeFloorSkeleton> floor;
    std::unique_ptr<TlsCapture> cap;
    Pipeline pipe;
    if (c.probe == Probe::kFloor) {
      auto f = ProbeFloorSkeleton::open_and_load();
      if (!f) return tl::unexpected(f.error());
      floor = std::move(*f);
      auto r = c.ssl ? floor->attach(t_.libssl, t_.ssl_write_off, getpid())
                     : floor->attach(t_.exe, t_.fn_off, getpid());
      if (!r) return tl::unexpected(r.error());
    } else if (c.probe == Probe::kClearcap) {
      TlsCapture::Options o;
      o.skel.wakeup_bytes = c.wake_every ? 0 : o.skel.ring_bytes / 4;  // clearcap's default: ring/4
      o.discovery.libssl = t_.libssl;
      o.discovery.pids = {getpid()};
      auto created = TlsCapture::create(o);
      if (!created) return tl::unexpected(created.error());
      cap = std::move(*created);
      if (!c.ssl) {
        TlsTarget fn{t_.exe, t_.exe, {{"SSL_write", t_.fn_off}}, {getpid()}};
        if (auto r = cap->attach_target(fn); !r) return tl::unexpected(r.error());
      }
      if (auto r = pipe.start(cap->skeleton(), readers_); !r) return tl::unexpected(r.error());
    }

    auto call = [&] {
      if (c.ssl) {
        if (SSL_write(tls_.client, payload.data(), static_cast<int>(payload.size())) <= 0) return false;
        tls_.drain();
      } else {
        if (cc_probe_target(fake_ssl, payload.data(), static_cast<int>(payload.size())) <= 0) return false;
      }
      return true;
    };
    const size_t warmup = std::max<size_t>(10, calls_ / 50);
    for (size_t i = 0; i < warmup; ++i)
      if (!call()) return make_error("SSL_write failed on the in-memory pair");
    auto t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < calls_; ++i)
      if (!call()) return make_error("SSL_write failed on the in-memory pair");
    auto t1 = std::chrono::steady_clock::now();

    Sample s;
    s.ns_per_call = std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(calls_);
    const uint64_t made = warmup + calls_;
    if (floor) {
      auto h = floor->hits();
      if (!h) return tl::unexpected(h.error());
      // Every call must have trapped twice, or the floor measured nothing.
      if (h->first != made || h->second != made)
        return make_error(fmt::format("{}: floor probes hit {}/{} times, expected {}", c.name, h->first, h->second,
                                      made));
    }
    if (cap) {
      cap->detach();
      pipe.stop();
      auto st = cap->skeleton().read_stats();
      if (!st) return tl::unexpected(st.error());
      const auto& b = *st;
      s.events = pipe.processor->events();
      s.losses = b[CC_STAT_RINGBUF_FULL] + b[CC_STAT_READ_FAULT] + b[CC_STAT_CHUNK_LIMIT] +
                 b[CC_STAT_NO_ENTRY_STATE] + b[CC_STAT_CALL_STATE_FULL] + b[CC_STAT_CONN_STATE_FULL] +
                 b[CC_STAT_NO_RING];
      if (s.losses)
        log("{}: losses: ring full {}, read faults {}, no entry state {}, call table full {}, conn table full {}",
            c.name, b[CC_STAT_RINGBUF_FULL], b[CC_STAT_READ_FAULT], b[CC_STAT_NO_ENTRY_STATE],
            b[CC_STAT_CALL_STATE_FULL], b[CC_STAT_CONN_STATE_FULL]);
      const uint64_t chunks = (c.payload + CC_CHUNK_MAX - 1) / CC_CHUNK_MAX;
      if (s.events + s.losses != made * chunks)
        return make_error(fmt::format("{}: {} events + {} losses, expected {} records: probes not on the path?",
                                      c.name, s.events, s.losses, made * chunks));
    }
    return s;
  }

 private:
  Targets t_;
  TlsPair& tls_;
  size_t calls_;
  size_t readers_;  // 0: clearcap's default
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int run_bench(size_t calls, int rounds, size_t readers, const std::string& json_out, const std::string& only) {
  auto targets = find_targets();
  if (!targets) {
    log("{}", targets.error().message);
    return 1;
  }
  auto tls = make_tls_pair();
  if (!tls) {
    log("{}", tls.error().message);
    return 1;
  }
  std::vector<Condition> conds;
  for (bool ssl : {false, true}) {
    const char* fn = ssl ? "ssl" : "fn";
    if (!only.empty() && only != fn) continue;
    conds.push_back({fmt::format("{}/none/1k", fn), ssl, Probe::kNone, 1024, false});
    conds.push_back({fmt::format("{}/floor/1k", fn), ssl, Probe::kFloor, 1024, false});
    conds.push_back({fmt::format("{}/clearcap/1k", fn), ssl, Probe::kClearcap, 1024, false});
    conds.push_back({fmt::format("{}/clearcap/16k", fn), ssl, Probe::kClearcap, 16384, false});
    conds.push_back({fmt::format("{}/clearcap-wake/1k", fn), ssl, Probe::kClearcap, 1024, true});
    conds.push_back({fmt::format("{}/clearcap-wake/16k", fn), ssl, Probe::kClearcap, 16384, true});
    if (ssl) {  // encryption grows with the payload: the 16 KiB rows need their own baselines
      conds.push_back({"ssl/none/16k", ssl, Probe::kNone, 16384, false});
      conds.push_back({"ssl/floor/16k", ssl, Probe::kFloor, 16384, false});
    }
  }
  Runner runner(*targets, **tls, calls, readers);
  std::vector<std::vector<Sample>> samples(conds.size());
  for (int r = 0; r < rounds; ++r) {
    for (size_t k = 0; k < conds.size(); ++k) {
      size_t i = (k + static_cast<size_t>(r)) % conds.size();  // rotate: no condition always runs first
      auto s = runner.run(conds[i]);
      if (!s) {
        log("{}", s.error().message);
        return 1;
      }
      samples[i].push_back(*s);
    }
    log("round {}/{} done", r + 1, rounds);
  }

  auto med = [&](size_t i) {
    std::vector<double> v;
    for (const auto& s : samples[i]) v.push_back(s.ns_per_call);
    return median(v);
  };
  auto find = [&](const std::string& name) -> double {
    for (size_t i = 0; i < conds.size(); ++i)
      if (conds[i].name == name) return med(i);
    return 0;
  };
  std::string json = "{\n  \"calls_per_sample\": " + std::to_string(calls) + ",\n  \"rounds\": " +
                     std::to_string(rounds) + ",\n  \"libssl\": \"" + targets->libssl + "\",\n  \"results\": [\n";
  fmt::print("{:<24} {:>12} {:>10} {:>10} {:>10} {:>8}\n", "condition", "ns/call", "x floor", "x none",
             "events", "losses");
  for (size_t i = 0; i < conds.size(); ++i) {
    const auto& c = conds[i];
    const char* fn = c.ssl ? "ssl" : "fn";
    // The floor and no-probe rows for the same function (and, for SSL_write,
    // the same payload size: encryption cost grows with it).
    std::string size = c.ssl && c.payload == 16384 ? "16k" : "1k";
    double floor = find(fmt::format("{}/floor/{}", fn, size));
    double none = find(fmt::format("{}/none/{}", fn, size));
    double m = med(i);
    uint64_t ev = 0, lost = 0;
    for (const auto& s : samples[i]) {
      ev += s.events;
      lost += s.losses;
    }
    fmt::print("{:<24} {:>12.0f} {:>10.3f} {:>10.1f} {:>10} {:>8}\n", c.name, m, floor > 0 ? m / floor : 0,
               none > 0 ? m / none : 0, ev, lost);
    std::string all;
    for (const auto& s : samples[i]) all += (all.empty() ? "" : ", ") + fmt::format("{:.1f}", s.ns_per_call);
    json += fmt::format(
        "    {{\"name\": \"{}\", \"function\": \"{}\", \"probe\": \"{}\", \"payload\": {}, \"wakeup_every_event\": "
        "{}, \"ns_per_call_median\": {:.1f}, \"ratio_to_floor\": {:.4f}, \"ratio_to_none\": {:.4f}, \"events\": {}, "
        "\"losses\": {}, \"ns_per_call_samples\": [{}]}}{}\n",
        c.name, c.ssl ? "SSL_write" : "cc_probe_target",
        c.probe == Probe::kNone ? "none" : c.probe == Probe::kFloor ? "floor" : "clearcap", c.payload,
        c.wake_every ? "true" : "false", m, floor > 0 ? m / floor : 0, none > 0 ? m / none : 0, ev, lost, all,
        i + 1 < conds.size() ? "," : "");
  }
  json += "  ]\n}\n";
  if (!json_out.empty()) {
    std::ofstream f(json_out);
    f << json;
    if (!f) {
      log("cannot write {}", json_out);
      return 1;
    }
  }
  return 0;
}

// Count-only probes on the functions clearcap hooks, in one process: the
// perf harness's "floor" condition.
int attach_floor(int pid, const std::string& libssl) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  auto floor = ProbeFloorSkeleton::open_and_load();
  if (!floor) {
    log("{}", floor.error().message);
    return 1;
  }
  auto target = inspect_tls_target(libssl);
  if (!target) {
    log("{}", target.error().message);
    return 1;
  }
  for (const auto& [fn, off] : target->offsets) {
    // SSL_set_fd has no return probe in clearcap either.
    if (auto r = (*floor)->attach(target->path, off, pid, fn != "SSL_set_fd"); !r) {
      log("{}", r.error().message);
      return 1;
    }
  }
  log("ready: {} count-only probes on {} in pid {}", (*floor)->probes(), libssl, pid);
  int sig = 0;
  sigwait(&set, &sig);
  (*floor)->detach();
  auto h = (*floor)->hits();
  if (h) log("hits: {} entries, {} returns", h->first, h->second);
  return 0;
}

}  // namespace
}  // namespace clearcap

int main(int argc, char** argv) {
  CLI::App app{"probe_cost: ns per probed call, as a ratio to a count-only uprobe (root)"};
  size_t calls = 20000;
  int rounds = 5;
  bool quick = false;
  std::string json_out, only;
  app.add_option("-n,--calls", calls, "calls per sample");
  app.add_option("-r,--rounds", rounds, "interleaved rounds (median over rounds)");
  app.add_flag("--quick", quick, "smoke run: 1 round of 2000 calls");
  app.add_option("--json", json_out, "write the results as JSON to this file");
  app.add_option("--only", only, "fn or ssl: one function only")->check(CLI::IsMember({"fn", "ssl"}));
  size_t readers = 0;
  app.add_option("--readers", readers, "reader threads (default: clearcap's, one per CPU up to 4)");
  int pid = -1;
  std::string libssl;
  auto* floor_cmd = app.add_subcommand("attach-floor", "count-only probes on a process's libssl until SIGINT");
  floor_cmd->add_option("--pid", pid, "process to probe")->required();
  floor_cmd->add_option("--libssl", libssl, "library file")->required();
  CLI11_PARSE(app, argc, argv);

  libbpf_set_print([](enum libbpf_print_level, const char*, va_list) { return 0; });
  if (auto r = clearcap::check_privileges(); !r) {
    fmt::print(stderr, "probe_cost: {}\n", r.error().message);
    return 77;  // CTest's skip code: not root
  }
  if (*floor_cmd) return clearcap::attach_floor(pid, libssl);
  if (quick) {
    calls = 2000;
    rounds = 1;
  }
  return clearcap::run_bench(calls, rounds, readers, json_out, only);
}
