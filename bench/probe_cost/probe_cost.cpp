// Probe cost (root): what one probed call costs the calling thread, with no
// probe, with the count-only floor (an entry uprobe + uretprobe that only
// count: bpf/probe_floor.bpf.c), with the copy floor (the returned bytes
// copied into a ring record and nothing else: the least any capture does),
// and with clearcap's own tls probes attached
// by TlsCapture's attach code and the reader -> processor -> JSON encoder
// pipeline running, so records are really consumed.
//
// Three workloads are called N times per measurement:
//  * fn:  cc_probe_target, a test function in this binary whose prologue is
//         the one of libssl 3's SSL_write (`sub $0x18,%rsp`, checked at run
//         time): the trap costs what it costs on SSL_write, without the
//         cryptography around it;
//  * ssl: the real SSL_write of the system libssl, over an in-memory BIO
//         pair (the ciphertext is read out and dropped);
//  * sys: write(2) of one byte to /dev/null, a syscall unrelated to TLS:
//         what clearcap costs every other process on the machine.
// Neither call has a socket, so clearcap records carry fd -1 and no 4-tuple;
// that skips only the once-per-connection tuple lookup, never per-call work.
//
// Beside wall time per call, each condition reports its BPF programs' own
// time per call (run_time_ns from the kernel's BPF statistics, switched on
// for the run): the trap hides it in wall time on a VM, but on bare metal
// it is what clearcap adds to the trap.
//
// Conditions run interleaved (round r runs every condition once, starting at
// a rotating position) and each figure is the median over rounds: on a busy
// VM the ratios to the floor are what can be trusted, not absolute times.
//
// Subcommand `attach-floor` attaches the floor probes to a running process's
// libssl and waits for SIGINT (used by tools/perf-harness).
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "core/counters.h"
#include "core/elf_symbols.h"
#include "core/privileges.h"
#include "core/processor.h"
#include "core/prog_stats.h"
#include "core/ring_reader.h"
#include "core/ring_set.h"
#include "modules/registry.h"
#include "modules/tls/tls_capture.h"
#include "modules/tls/tls_targets.h"
#include "sinks/encoders/json_encoder.h"
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
  // Where clearcap's probes for SSL_write sit by default (--probe-placement
  // auto): the function SSL_write and SSL_write_ex call; 0 when this
  // libssl keeps them at SSL_write.
  uint64_t ssl_write_placed_off = 0;
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
  TlsTarget placed{t.libssl, t.libssl, {}, {}};
  place_tls_probes(placed);
  if (auto it = placed.offsets.find(kSslWriteInner); it != placed.offsets.end()) t.ssl_write_placed_off = it->second;

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

// kCopyFloor: the copy floor of bpf/probe_floor.bpf.c (the returned bytes
// copied into a ring record, nothing else): clearcap's program time minus
// its program time is what clearcap's own record work costs.
enum class Probe { kNone, kFloor, kCopyFloor, kClearcap };

const char* probe_name(Probe p) {
  switch (p) {
    case Probe::kNone: return "none";
    case Probe::kFloor: return "floor";
    case Probe::kCopyFloor: return "copy-floor";
    case Probe::kClearcap: return "clearcap";
  }
  return "?";
}
enum class Work { kFn, kSsl, kSys };

const char* work_name(Work w) { return w == Work::kFn ? "fn" : w == Work::kSsl ? "ssl" : "sys"; }

struct Condition {
  std::string name;
  Work work;
  Probe probe;
  size_t payload;
  bool wake_every;  // wakeup_bytes = 0
  // clearcap's --syscall-fd: auto (default) attaches the syscall
  // tracepoints only while a library's fd layout is unknown (here: the fn
  // workload's test function) or a connection without a socket is seen
  // (never here: no SyscallFdDemand runs); always keeps them attached.
  TlsCapture::Options::SyscallFd syscall_fd = TlsCapture::Options::SyscallFd::kAuto;
  bool perf_buffer = false;  // --buffer perf: perf event rings instead of BPF rings
  // Probes where clearcap puts them by default (--probe-placement auto)
  // instead of at SSL_write; compared with the floor there ("-placed").
  bool placed = false;
};

struct Sample {
  double ns_per_call;
  double prog_ns_per_call = 0;  // BPF program time of the condition's programs, per call
  std::vector<ProgTime> progs;  // per program, over the timed calls
  uint64_t events = 0, losses = 0;
};

// The pipeline clearcap runs: readers over the rings, processor, encoder.
struct Pipeline {
  moodycamel::spsc_sema::LightweightSemaphore wake;
  EncodeDropSink sink;
  std::vector<std::unique_ptr<RingReader>> readers;
  std::unique_ptr<Processor> processor;

  Result<void> start(const RingSet& skel, size_t want_readers) {
    const auto& rings = skel.ring_fds();
    size_t nreaders = std::min<size_t>(want_readers ? want_readers : 4, rings.size());  // clearcap's default
    std::vector<std::vector<int>> groups(nreaders);
    for (size_t i = 0; i < rings.size(); ++i) groups[i % nreaders].push_back(rings[i]);
    std::vector<BatchSource*> srcs;
    RingReader::Options ropts;
    ropts.perf = skel.perf();
    for (size_t i = 0; i < nreaders; ++i) {
      readers.push_back(std::make_unique<RingReader>(static_cast<int>(i), groups[i], skel.ring_bytes(), ropts, &wake));
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
      : t_(std::move(t)), tls_(tls), calls_(calls), readers_(readers), devnull_(open("/dev/null", O_WRONLY | O_CLOEXEC)) {}
  ~Runner() {
    if (devnull_ >= 0) close(devnull_);
  }

  Result<Sample> run(const Condition& c) {
    std::vector<unsigned char> payload(c.payload);
    for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<unsigned char>('a' + i % 26);
    void* fake_ssl = &payload;  // any stable pointer: one connection

    std::unique_ptr<ProbeFloorSkeleton> floor;
    std::unique_ptr<RingSet> rings;
    std::unique_ptr<TlsCapture> cap;
    Pipeline pipe;
    if (c.probe == Probe::kFloor || c.probe == Probe::kCopyFloor) {
      auto f = ProbeFloorSkeleton::open_and_load(c.probe == Probe::kCopyFloor);
      if (!f) return tl::unexpected(f.error());
      floor = std::move(*f);
      auto r = c.work == Work::kFn ? floor->attach(t_.exe, t_.fn_off, getpid())
                                   : floor->attach(t_.libssl, c.placed ? t_.ssl_write_placed_off : t_.ssl_write_off,
                                                   getpid());
      if (!r) return tl::unexpected(r.error());
    } else if (c.probe == Probe::kClearcap) {
      RingSet::Options ro;
      ro.wakeup_bytes = c.wake_every ? 0 : ro.ring_bytes / 4;  // clearcap's default: ring/4
      ro.perf = c.perf_buffer;
      auto rs = RingSet::create(ro);
      if (!rs) return tl::unexpected(rs.error());
      rings = std::move(*rs);
      if (auto r = rings->set_filter({getpid()}, 0); !r) return tl::unexpected(r.error());
      TlsCapture::Options o;
      o.syscall_fd = c.syscall_fd;
      o.discovery.library = t_.libssl;
      o.discovery.pids = {getpid()};
      // At SSL_write itself, where the floor conditions sit, unless the
      // condition is a "-placed" one (compared with its own floor).
      o.discovery.at_symbols = !c.placed;
      auto created = TlsCapture::create(o, *rings);
      if (!created) return tl::unexpected(created.error());
      cap = std::move(*created);
      if (c.work == Work::kFn) {
        TlsTarget fn{t_.exe, t_.exe, {{"SSL_write", t_.fn_off}}, {getpid()}};
        if (auto r = cap->attach_target(fn); !r) return tl::unexpected(r.error());
      }
      if (auto r = pipe.start(*rings, readers_); !r) return tl::unexpected(r.error());
    }

    auto call = [&] {
      switch (c.work) {
        case Work::kSsl:
          if (SSL_write(tls_.client, payload.data(), static_cast<int>(payload.size())) <= 0) return false;
          tls_.drain();
          return true;
        case Work::kFn:
          return cc_probe_target(fake_ssl, payload.data(), static_cast<int>(payload.size())) > 0;
        case Work::kSys:
          return write(devnull_, payload.data(), payload.size()) == static_cast<ssize_t>(payload.size());
      }
      return false;
    };
    std::vector<std::pair<std::string, int>> progs;
    if (floor) progs = floor->programs();
    if (cap) progs = cap->programs();
    const size_t warmup = std::max<size_t>(10, calls_ / 50);
    for (size_t i = 0; i < warmup; ++i)
      if (!call()) return make_error("SSL_write failed on the in-memory pair");
    auto before = read_prog_times(progs);
    if (!before) return tl::unexpected(before.error());
    auto t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < calls_; ++i)
      if (!call()) return make_error("SSL_write failed on the in-memory pair");
    auto t1 = std::chrono::steady_clock::now();
    auto after = read_prog_times(progs);
    if (!after) return tl::unexpected(after.error());

    Sample s;
    s.ns_per_call = std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(calls_);
    s.progs = prog_time_delta(*before, *after);
    uint64_t prog_ns = 0;
    for (const auto& p : s.progs) prog_ns += p.run_time_ns;
    s.prog_ns_per_call = static_cast<double>(prog_ns) / static_cast<double>(calls_);
    const uint64_t made = warmup + calls_;
    if (floor) {
      auto h = floor->hits();
      if (!h) return tl::unexpected(h.error());
      // Every call must have trapped twice, or the floor measured nothing
      // (and a syscall never).
      const uint64_t want = c.work == Work::kSys ? 0 : made;
      if (h->first != want || h->second != want)
        return make_error(fmt::format("{}: floor probes hit {}/{} times, expected {}", c.name, h->first, h->second,
                                      want));
      auto lost = floor->lost();
      if (!lost) return tl::unexpected(lost.error());
      s.losses = *lost;
    }
    if (cap) {
      cap->detach();
      pipe.stop();
      auto st = rings->read_stats();
      if (!st) return tl::unexpected(st.error());
      const auto& b = *st;
      s.events = pipe.processor->events();
      Counters counted;  // clearcap's own loss table, as its summary sums it
      counted.bpf = b;
      counted.oversize = 0;
      for (const auto& r : pipe.readers) counted.oversize += r->oversize();
      counted.decode_errors = pipe.processor->decode_errors();
      s.losses = counted.lost();
      if (s.losses) log("{}: {}", c.name, stats_line(counted, Counters{}, 1.0));
      const uint64_t chunks = c.work == Work::kSys ? 0 : (c.payload + CC_CHUNK_MAX - 1) / CC_CHUNK_MAX;
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
  int devnull_;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// A median with its distribution-free confidence interval: the order
// statistics [x(k), x(n+1-k)] for the largest k whose coverage under
// Binomial(n, 1/2) is at least 95 % (n >= 6); below that the whole range,
// whose coverage 1 - 2^(1-n) is given in `level`.
struct Ci {
  double median = 0, lo = 0, hi = 0, level = 0;
  // Resolved: the interval lies within +-5 % of the median; a ratio whose
  // interval is wider is "not resolved", whatever its median says.
  bool resolved() const { return median > 0 && lo >= median * 0.95 && hi <= median * 1.05; }
};

Ci median_ci(std::vector<double> v) {
  Ci c;
  if (v.empty()) return c;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  c.median = median(v);
  // P(B <= j) for B ~ Binomial(n, 1/2), accumulated term by term.
  std::vector<double> cdf(n + 1);
  double term = std::pow(0.5, static_cast<double>(n)), acc = 0;
  for (size_t j = 0; j <= n; ++j) {
    acc += term;
    cdf[j] = acc;
    term = term * static_cast<double>(n - j) / static_cast<double>(j + 1);
  }
  size_t k = 1;
  for (size_t cand = n / 2; cand >= 1; --cand) {
    if (1 - 2 * cdf[cand - 1] >= 0.95) {
      k = cand;
      break;
    }
  }
  c.lo = v[k - 1];
  c.hi = v[n - k];
  c.level = 1 - 2 * cdf[k - 1];
  return c;
}

std::string ci_text(const Ci& c, const char* fmt_one) {
  return fmt::format(fmt::runtime(std::string(fmt_one) + " [" + fmt_one + ", " + fmt_one + "]"), c.median, c.lo, c.hi);
}

std::string ci_json(const Ci& c) {
  return fmt::format("{{\"median\": {:.4f}, \"lo\": {:.4f}, \"hi\": {:.4f}, \"level\": {:.3f}, \"resolved\": {}}}",
                     c.median, c.lo, c.hi, c.level, c.resolved() ? "true" : "false");
}

// The 1-minute load average: recorded before and after a run; a figure
// taken above 1.5 is not a quiet-machine figure.
double load_average() {
  double l = -1;
  std::ifstream("/proc/loadavg") >> l;
  return l;
}

int run_bench(size_t calls, int rounds, size_t readers, const std::string& json_out, const std::string& only,
              int gap_ms) {
  const double load_before = load_average();
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
  for (Work w : {Work::kFn, Work::kSsl}) {
    const char* fn = work_name(w);
    if (!only.empty() && only != fn) continue;
    conds.push_back({fmt::format("{}/none/1k", fn), w, Probe::kNone, 1024, false});
    conds.push_back({fmt::format("{}/floor/1k", fn), w, Probe::kFloor, 1024, false});
    conds.push_back({fmt::format("{}/copy-floor/1k", fn), w, Probe::kCopyFloor, 1024, false});
    conds.push_back({fmt::format("{}/clearcap/1k", fn), w, Probe::kClearcap, 1024, false});
    conds.push_back({fmt::format("{}/clearcap/16k", fn), w, Probe::kClearcap, 16384, false});
    conds.push_back({fmt::format("{}/clearcap-wake/1k", fn), w, Probe::kClearcap, 1024, true});
    conds.push_back({fmt::format("{}/clearcap-wake/16k", fn), w, Probe::kClearcap, 16384, true});
    if (w == Work::kSsl) {
      // The other transport (--buffer perf), same records.
      conds.push_back({"ssl/clearcap-perfbuf/1k", w, Probe::kClearcap, 1024, false,
                       TlsCapture::Options::SyscallFd::kAuto, true});
      conds.push_back({"ssl/clearcap-perfbuf/16k", w, Probe::kClearcap, 16384, false,
                       TlsCapture::Options::SyscallFd::kAuto, true});
    }
    if (w == Work::kSsl && targets->ssl_write_placed_off) {
      // Where clearcap hooks SSL_write by default: no single step.
      Condition floor{"ssl/floor-placed/1k", w, Probe::kFloor, 1024, false};
      floor.placed = true;
      conds.push_back(floor);
      Condition cc{"ssl/clearcap-placed/1k", w, Probe::kClearcap, 1024, false};
      cc.placed = true;
      conds.push_back(cc);
    }
    if (w == Work::kSsl) {  // encryption grows with the payload: the 16 KiB rows need their own baselines
      conds.push_back({"ssl/none/16k", w, Probe::kNone, 16384, false});
      conds.push_back({"ssl/floor/16k", w, Probe::kFloor, 16384, false});
      conds.push_back({"ssl/copy-floor/16k", w, Probe::kCopyFloor, 16384, false});
    }
  }
  // Unrelated syscalls: the floor probes never run for them, so "none" is
  // the baseline and the program time is all clearcap's.
  if (only.empty() || only == "sys") {
    conds.push_back({"sys/none/1b", Work::kSys, Probe::kNone, 1, false});
    conds.push_back({"sys/floor/1b", Work::kSys, Probe::kFloor, 1, false});
    // The default (auto): every layout is known and no connection lacks a
    // socket, so no tracepoint is attached; always: attached, gated.
    conds.push_back({"sys/clearcap/1b", Work::kSys, Probe::kClearcap, 1, false,
                     TlsCapture::Options::SyscallFd::kAuto});
    conds.push_back({"sys/clearcap-always/1b", Work::kSys, Probe::kClearcap, 1, false,
                     TlsCapture::Options::SyscallFd::kAlways});
  }
  auto stats_on = BpfStatsOn::enable();
  if (!stats_on) {
    log("{}", stats_on.error().message);
    return 1;
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
      // Idle between samples: the benchmark's own busy threads would
      // otherwise raise the load average it reports as the machine's.
      if (gap_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(gap_ms));
    }
    log("round {}/{} done", r + 1, rounds);
  }

  auto med = [&](size_t i) {
    std::vector<double> v;
    for (const auto& s : samples[i]) v.push_back(s.ns_per_call);
    return median(v);
  };
  auto index_of = [&](const std::string& name) -> int {
    for (size_t i = 0; i < conds.size(); ++i)
      if (conds[i].name == name) return static_cast<int>(i);
    return -1;
  };
  auto find = [&](const std::string& name) -> double {
    int i = index_of(name);
    return i < 0 ? 0 : med(static_cast<size_t>(i));
  };
  // Ratios paired within a round (both conditions ran in it), then the
  // median of those ratios with its interval: slow drift of a shared machine
  // hits both sides of each pair alike.
  auto paired = [&](size_t i, int base) {
    std::vector<double> v;
    if (base < 0) return Ci{};
    for (size_t r = 0; r < samples[i].size() && r < samples[static_cast<size_t>(base)].size(); ++r)
      v.push_back(samples[i][r].ns_per_call / samples[static_cast<size_t>(base)][r].ns_per_call);
    return median_ci(v);
  };
  auto prog_med = [&](size_t i) {
    std::vector<double> v;
    for (const auto& s : samples[i]) v.push_back(s.prog_ns_per_call);
    return median(v);
  };
  const double load_after = load_average();
  std::string json = "{\n  \"calls_per_sample\": " + std::to_string(calls) + ",\n  \"rounds\": " +
                     std::to_string(rounds) + ",\n  \"libssl\": \"" + targets->libssl + "\",\n" +
                     fmt::format("  \"load_before\": {:.2f},\n  \"load_after\": {:.2f},\n", load_before, load_after) +
                     "  \"results\": [\n";
  fmt::print("load average before {:.2f}, after {:.2f}{}\n", load_before, load_after,
             std::max(load_before, load_after) > 1.5 ? " (NOT QUIET: above 1.5, the figures are not citable)" : "");
  fmt::print("medians over {} rounds, [95 % interval of the median; the whole range below 6 rounds]; "
             "? = interval wider than +-5 %: not resolved\n",
             rounds);
  fmt::print("{:<26} {:>10} {:>26} {:>10} {:>28} {:>8} {:>8}\n", "condition", "ns/call", "x floor (paired)", "x none",
             "prog ns/call", "events", "losses");
  for (size_t i = 0; i < conds.size(); ++i) {
    const auto& c = conds[i];
    const char* fn = work_name(c.work);
    // The floor and no-probe rows for the same function (and, for SSL_write,
    // the same payload size: encryption cost grows with it).
    std::string size = c.work == Work::kSys ? "1b" : c.work == Work::kSsl && c.payload == 16384 ? "16k" : "1k";
    const std::string floor_name = fmt::format("{}/floor{}/{}", fn, c.placed ? "-placed" : "", size);
    double floor = find(floor_name);
    double none = find(fmt::format("{}/none/{}", fn, size));
    double m = med(i);
    uint64_t ev = 0, lost = 0;
    for (const auto& s : samples[i]) {
      ev += s.events;
      lost += s.losses;
    }
    const double pm = prog_med(i);
    const Ci ratio = paired(i, index_of(floor_name));
    std::vector<double> pv;
    for (const auto& smp : samples[i]) pv.push_back(smp.prog_ns_per_call);
    const Ci prog = median_ci(pv);
    fmt::print("{:<26} {:>10.0f} {:>26} {:>10.3f} {:>28} {:>8} {:>8}\n", c.name, m,
               ratio.median > 0 ? ci_text(ratio, "{:.3f}") + (ratio.resolved() ? "" : "?") : "-",
               none > 0 ? m / none : 0, prog.median > 0 ? ci_text(prog, "{:.1f}") : "0", ev, lost);
    // Per program: median over rounds of its time per call, and its runs per call.
    std::string per_prog;
    if (!samples[i].empty()) {
      for (size_t k = 0; k < samples[i][0].progs.size(); ++k) {
        std::vector<double> ns, runs;
        for (const auto& s : samples[i]) {
          if (k >= s.progs.size()) continue;
          ns.push_back(static_cast<double>(s.progs[k].run_time_ns) / static_cast<double>(calls));
          runs.push_back(static_cast<double>(s.progs[k].run_cnt) / static_cast<double>(calls));
        }
        double mr = median(runs);
        if (mr == 0) continue;
        const std::string& pname = samples[i][0].progs[k].name;
        fmt::print("    {:<28} {:>8.1f} ns/call {:>6.2f} runs/call {:>8.1f} ns/run\n", pname, median(ns), mr,
                   median(ns) / mr);
        per_prog += fmt::format("{}{{\"name\": \"{}\", \"ns_per_call\": {:.1f}, \"runs_per_call\": {:.3f}}}",
                                per_prog.empty() ? "" : ", ", pname, median(ns), mr);
      }
    }
    std::string all;
    for (const auto& s : samples[i]) all += (all.empty() ? "" : ", ") + fmt::format("{:.1f}", s.ns_per_call);
    json += fmt::format(
        "    {{\"name\": \"{}\", \"function\": \"{}\", \"probe\": \"{}\", \"payload\": {}, \"wakeup_every_event\": "
        "{}, \"ns_per_call_median\": {:.1f}, \"ratio_to_floor\": {:.4f}, \"ratio_to_none\": {:.4f}, \"events\": {}, "
        "\"losses\": {}, \"prog_ns_per_call_median\": {:.1f}, \"ratio_to_floor_paired\": {}, \"prog_ns_per_call\": {}, "
        "\"programs\": [{}], \"ns_per_call_samples\": [{}]}}{}\n",
        c.name, c.work == Work::kSsl ? "SSL_write" : c.work == Work::kFn ? "cc_probe_target" : "write",
        probe_name(c.probe), c.payload,
        c.wake_every ? "true" : "false", m, floor > 0 ? m / floor : 0, none > 0 ? m / none : 0, ev, lost, pm,
        ci_json(ratio), ci_json(prog), per_prog, all,
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
int attach_floor(int pid, const std::string& libssl, bool at_symbols) {
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
  // The floor sits where clearcap's probes sit (--probe-placement): the
  // trap there is what no program can avoid.
  if (!at_symbols) place_tls_probes(*target);
  for (const auto& n : target->notes) log("{}", n);
  for (const auto& [fn, off] : target->offsets) {
    const bool read_moved = target->offsets.count(kSslReadInner) && (fn == "SSL_read" || fn == "SSL_read_ex");
    const bool write_moved = target->offsets.count(kSslWriteInner) && (fn == "SSL_write" || fn == "SSL_write_ex");
    if (read_moved || write_moved) continue;
    // SSL_set_fd and SSL_free have no return probe in clearcap either.
    if (auto r = (*floor)->attach(target->path, off, pid, fn != "SSL_set_fd" && fn != "SSL_free"); !r) {
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
  clearcap::register_module_sources();
  CLI::App app{"probe_cost: ns per probed call, as a ratio to a count-only uprobe (root)"};
  size_t calls = 20000;
  int rounds = 5;
  bool quick = false;
  std::string json_out, only;
  app.add_option("-n,--calls", calls, "calls per sample");
  app.add_option("-r,--rounds", rounds, "interleaved rounds (median over rounds)");
  app.add_flag("--quick", quick, "smoke run: 1 round of 2000 calls");
  app.add_option("--json", json_out, "write the results as JSON to this file");
  app.add_option("--only", only, "fn, ssl or sys: one workload only")->check(CLI::IsMember({"fn", "ssl", "sys"}));
  int gap_ms = 1000;
  app.add_option("--gap-ms", gap_ms, "idle time between samples (default 1000; 0 in --quick)");
  size_t readers = 0;
  app.add_option("--readers", readers, "reader threads (default: clearcap's, one per CPU up to 4)");
  int pid = -1;
  std::string libssl;
  std::string placement = "auto";
  auto* floor_cmd = app.add_subcommand("attach-floor", "count-only probes on a process's libssl until SIGINT");
  floor_cmd->add_option("--pid", pid, "process to probe")->required();
  floor_cmd->add_option("--libssl", libssl, "library file")->required();
  floor_cmd->add_option("--probe-placement", placement, "where the probes sit, as clearcap's option (default auto)")
      ->check(CLI::IsMember({"auto", "symbol"}));
  CLI11_PARSE(app, argc, argv);

  libbpf_set_print([](enum libbpf_print_level, const char*, va_list) { return 0; });
  if (auto r = clearcap::check_privileges(); !r) {
    fmt::print(stderr, "probe_cost: {}\n", r.error().message);
    return 77;  // CTest's skip code: not root
  }
  if (*floor_cmd) return clearcap::attach_floor(pid, libssl, placement == "symbol");
  if (quick) {
    calls = 2000;
    rounds = 1;
    gap_ms = 0;
  }
  return clearcap::run_bench(calls, rounds, readers, json_out, only, gap_ms);
}
