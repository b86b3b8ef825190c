#include "modules/tls/key_layout.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include <fmt/format.h>

#include "modules/tls/key_probe_cert.inc"
#include "proto/tls13_kdf.h"

namespace clearcap {

namespace {

using Bytes = std::vector<uint8_t>;

constexpr int kTls12 = 0x0303;
constexpr int kTls13 = 0x0304;
// Bytes searched in the SSL object and in each object reached through a
// pointer. The SSL object of OpenSSL 3.x is about 6 KiB; reading past an
// allocation is harmless here (process_vm_readv stops at unmapped pages), and
// matches there are weeded out by the cross-checks.
constexpr size_t kRootBytes = 12 * 1024;
constexpr size_t kChildBytes = 2 * 1024;
constexpr int kSearchDepth = 2;        // pointers followed while searching (<= CC_KEY_MAX_DEPTH)
constexpr size_t kMaxObjects = 20000;  // per search, to bound start-up time

// The library functions the probe calls, found with dlsym. Integer lengths
// are passed as long: OpenSSL takes int, BoringSSL size_t; on x86-64 both
// read the same register.
struct Api {
  const void* (*TLS_method)();
  void* (*SSL_CTX_new)(const void*);
  void (*SSL_CTX_free)(void*);
  void (*SSL_CTX_set_keylog_callback)(void*, void (*)(const void*, const char*));
  int (*SSL_CTX_use_certificate_ASN1)(void*, long, const unsigned char*);
  int (*SSL_CTX_use_PrivateKey_ASN1)(int, void*, const unsigned char*, long);
  long (*SSL_CTX_ctrl)(void*, int, long, void*);              // OpenSSL: min/max version are macros on it
  int (*SSL_CTX_set_min_proto_version)(void*, uint16_t);      // BoringSSL: real functions
  int (*SSL_CTX_set_max_proto_version)(void*, uint16_t);
  int (*SSL_CTX_set_ciphersuites)(void*, const char*);        // optional (OpenSSL 1.1.1+)
  void* (*SSL_new)(void*);
  void (*SSL_free)(void*);
  int (*SSL_set_fd)(void*, int);
  void (*SSL_set_bio)(void*, void*, void*);
  void* (*BIO_new)(const void*);
  const void* (*BIO_s_mem)();
  int (*BIO_new_bio_pair)(void**, size_t, void**, size_t);  // optional
  void (*SSL_set_connect_state)(void*);
  void (*SSL_set_accept_state)(void*);
  int (*SSL_do_handshake)(void*);
  int (*SSL_get_error)(const void*, int);
};

constexpr int kEvpPkeyEc = 408;               // NID_X9_62_id_ecPublicKey, same in every build
constexpr int kCtrlSetMinProtoVersion = 123;  // SSL_CTRL_SET_MIN_PROTO_VERSION
constexpr int kCtrlSetMaxProtoVersion = 124;
constexpr int kErrorWantRead = 2, kErrorWantWrite = 3;

std::vector<std::string>* g_keylog_lines = nullptr;  // child process only

void keylog_cb(const void*, const char* line) {
  if (g_keylog_lines) g_keylog_lines->emplace_back(line);
}

// One completed handshake between two objects of the library under test.
struct Handshake {
  int version = 0;
  void* client = nullptr;
  void* server = nullptr;
  Bytes client_random;
  std::map<std::string, Bytes> secrets;  // NSS label -> secret
};

Result<Bytes> unhex(std::string_view s) {
  Bytes out;
  if (s.size() % 2) return make_error("odd hex length", EINVAL);
  for (size_t i = 0; i < s.size(); i += 2) {
    auto v = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; };
    int hi = v(s[i]), lo = v(s[i + 1]);
    if (hi < 0 || lo < 0) return make_error("bad hex digit", EINVAL);
    out.push_back(static_cast<uint8_t>(hi << 4 | lo));
  }
  return out;
}

Result<Handshake> run_handshake(const Api& api, int version, const char* suites) {
  Handshake hs;
  hs.version = version;
  void* cctx = api.SSL_CTX_new(api.TLS_method());
  void* sctx = api.SSL_CTX_new(api.TLS_method());
  if (!cctx || !sctx) return make_error("SSL_CTX_new failed", EIO);
  for (void* ctx : {cctx, sctx}) {
    api.SSL_CTX_set_keylog_callback(ctx, keylog_cb);
    if (api.SSL_CTX_set_max_proto_version) {
      api.SSL_CTX_set_min_proto_version(ctx, static_cast<uint16_t>(version));
      api.SSL_CTX_set_max_proto_version(ctx, static_cast<uint16_t>(version));
    } else {
      api.SSL_CTX_ctrl(ctx, kCtrlSetMinProtoVersion, version, nullptr);
      api.SSL_CTX_ctrl(ctx, kCtrlSetMaxProtoVersion, version, nullptr);
    }
    if (suites && api.SSL_CTX_set_ciphersuites) api.SSL_CTX_set_ciphersuites(ctx, suites);
  }
  if (api.SSL_CTX_use_certificate_ASN1(sctx, kProbeCertDer_len, kProbeCertDer) != 1 ||
      api.SSL_CTX_use_PrivateKey_ASN1(kEvpPkeyEc, sctx, kProbeKeyDer, kProbeKeyDer_len) != 1)
    return make_error("the library refused the probe's certificate or key", EIO);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv)) return make_error("socketpair failed", errno);
  hs.client = api.SSL_new(cctx);
  hs.server = api.SSL_new(sctx);
  api.SSL_set_fd(hs.client, sv[0]);
  api.SSL_set_fd(hs.server, sv[1]);
  api.SSL_set_connect_state(hs.client);
  api.SSL_set_accept_state(hs.server);
  std::vector<std::string> lines;
  g_keylog_lines = &lines;
  bool cdone = false, sdone = false;
  for (int i = 0; i < 1000 && !(cdone && sdone); ++i) {
    for (auto [ssl, done] : {std::pair{hs.client, &cdone}, std::pair{hs.server, &sdone}}) {
      if (*done) continue;
      int rc = api.SSL_do_handshake(ssl);
      if (rc == 1) {
        *done = true;
        continue;
      }
      int e = api.SSL_get_error(ssl, rc);
      if (e != kErrorWantRead && e != kErrorWantWrite)
        return make_error(fmt::format("TLS {} handshake failed (SSL_get_error {})", version == kTls13 ? "1.3" : "1.2", e), EIO);
    }
  }
  g_keylog_lines = nullptr;
  if (!(cdone && sdone)) return make_error("the probe handshake did not complete", EIO);
  // The objects and contexts stay alive: the search reads them. The child exits soon.
  for (const std::string& l : lines) {
    auto sp1 = l.find(' '), sp2 = l.rfind(' ');
    if (sp1 == std::string::npos || sp1 == sp2) continue;
    auto cr = unhex(std::string_view(l).substr(sp1 + 1, sp2 - sp1 - 1));
    auto sec = unhex(std::string_view(l).substr(sp2 + 1));
    if (!cr || !sec || cr->size() != 32) continue;
    hs.client_random = *cr;
    hs.secrets[l.substr(0, sp1)] = *sec;
  }
  if (hs.client_random.empty()) return make_error("the key log callback reported nothing", EIO);
  return hs;
}

// Reads this process's memory without faulting: stops at the first page that
// is not mapped readable. Returns the bytes read.
size_t read_self(uint64_t addr, uint8_t* out, size_t len) {
  size_t done = 0;
  while (done < len) {
    uint64_t a = addr + done;
    size_t chunk = std::min<size_t>(len - done, 4096 - (a & 4095));
    iovec local{out + done, chunk};
    iovec remote{reinterpret_cast<void*>(a), chunk};
    ssize_t n = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
    if (static_cast<size_t>(n) < chunk) break;
  }
  return done;
}

// A pointer at addr; 0 when it cannot be read (or is null).
uint64_t read_ptr(uint64_t addr) {
  uint64_t v = 0;
  return read_self(addr, reinterpret_cast<uint8_t*>(&v), 8) == 8 ? v : 0;
}

int32_t read_i32(uint64_t addr, bool* ok) {
  int32_t v = 0;
  *ok = read_self(addr, reinterpret_cast<uint8_t*>(&v), 4) == 4;
  return v;
}

std::optional<Bytes> read_path(uint64_t ssl, const cc_key_path& p) {
  uint64_t addr = ssl;
  for (int i = 0; i < p.depth; ++i) {
    addr = read_ptr(addr + p.off[i]);
    if (!addr) return std::nullopt;
  }
  Bytes b(p.len);
  if (read_self(addr + p.off[p.depth], b.data(), b.size()) != b.size()) return std::nullopt;
  return b;
}

struct Obj {
  uint64_t addr;
  std::vector<uint32_t> chain;  // pointer field offsets from the root
  Bytes mem;
};

// The SSL object and everything reachable from it within kSearchDepth pointers.
std::vector<Obj> reachable(uint64_t root) {
  std::vector<Obj> objs;
  std::set<uint64_t> seen{root};
  Obj r{root, {}, Bytes(kRootBytes)};
  r.mem.resize(read_self(root, r.mem.data(), r.mem.size()));
  objs.push_back(std::move(r));
  size_t level_begin = 0;
  for (int depth = 1; depth <= kSearchDepth; ++depth) {
    size_t level_end = objs.size();
    for (size_t i = level_begin; i < level_end && objs.size() < kMaxObjects; ++i) {
      for (size_t off = 0; off + 8 <= objs[i].mem.size() && objs.size() < kMaxObjects; off += 8) {
        uint64_t v;
        std::memcpy(&v, objs[i].mem.data() + off, 8);
        if (v < 0x10000 || v > 0x7fffffffffffull || (v & 7) || !seen.insert(v).second) continue;
        Obj c{v, objs[i].chain, Bytes(kChildBytes)};
        c.chain.push_back(static_cast<uint32_t>(off));
        c.mem.resize(read_self(v, c.mem.data(), c.mem.size()));
        if (c.mem.size() >= 8) objs.push_back(std::move(c));
      }
    }
    level_begin = level_end;
  }
  return objs;
}

// Every place of `needle` in the objects, shallowest first.
std::vector<cc_key_path> find_all(const std::vector<Obj>& objs, const Bytes& needle, uint8_t read_len) {
  std::vector<cc_key_path> out;
  for (const Obj& o : objs) {
    auto it = o.mem.begin();
    while ((it = std::search(it, o.mem.end(), needle.begin(), needle.end())) != o.mem.end()) {
      cc_key_path p{};
      p.depth = static_cast<uint8_t>(o.chain.size());
      p.len = read_len;
      for (size_t i = 0; i < o.chain.size(); ++i) p.off[i] = o.chain[i];
      p.off[p.depth] = static_cast<uint32_t>(it - o.mem.begin());
      out.push_back(p);
      ++it;
    }
  }
  return out;
}

// Does `p` give `want` in this object? For TLS 1.3 secrets read as 48 bytes,
// a 32-byte secret must be followed by zeros: that is how the capture side
// tells SHA-256 suites from SHA-384 ones (docs/keylog.md).
bool matches(uint64_t ssl, const cc_key_path& p, const Bytes& want) {
  auto got = read_path(ssl, p);
  if (!got || got->size() < want.size() || !std::equal(want.begin(), want.end(), got->begin())) return false;
  return std::all_of(got->begin() + static_cast<long>(want.size()), got->end(), [](uint8_t b) { return b == 0; });
}

std::string describe(const cc_key_path& p) {
  std::string s;
  for (int i = 0; i < p.depth; ++i) s += fmt::format("*{:#x}->", p.off[i]);
  return s + fmt::format("{:#x}[{}]", p.off[p.depth], p.len);
}

bool looks_random(const uint8_t* b, size_t n) {
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, b + i, 8);
    if (w == 0 || (w >> 48) == 0) return false;  // zero fill, pointers, small integers
  }
  return true;
}

constexpr const char* kItemNames[CC_KEY__COUNT] = {
    "client_random", "master_secret",    "client_hs_traffic", "server_hs_traffic", "client_app_traffic",
    "server_app_traffic", "exporter", "handshake_secret", "handshake_hash", "version"};

struct Probe {
  const Api& api;
  std::vector<Handshake> t12, t13;
  cc_key_layout layout{};
  std::string summary;

  // Places of `label`'s secret in the first handshake of `runs` that also
  // hold in both objects of every other run.
  bool learn(cc_key_item item, const std::vector<Handshake>& runs, const char* label, uint8_t read_len) {
    auto want = [&](const Handshake& h) -> const Bytes* {
      if (!label) return &h.client_random;
      auto it = h.secrets.find(label);
      return it == h.secrets.end() ? nullptr : &it->second;
    };
    const Bytes* first = want(runs[0]);
    if (!first) return false;
    auto objs = reachable(reinterpret_cast<uint64_t>(runs[0].client));
    for (const cc_key_path& p : find_all(objs, *first, read_len)) {
      bool ok = true;
      for (const Handshake& h : runs) {
        const Bytes* w = want(h);
        ok = ok && w && matches(reinterpret_cast<uint64_t>(h.client), p, *w) &&
             matches(reinterpret_cast<uint64_t>(h.server), p, *w);
      }
      if (ok) {
        layout.items[item] = p;
        summary += fmt::format(" {}={}", kItemNames[item], describe(p));
        return true;
      }
    }
    return false;
  }

  // The negotiated version: an int that is 0x0303 after every TLS 1.2
  // handshake and 0x0304 after every TLS 1.3 one, in the SSL object itself.
  bool learn_version() {
    Bytes a(kRootBytes);
    a.resize(read_self(reinterpret_cast<uint64_t>(t12[0].client), a.data(), a.size()));
    for (uint32_t off = 0; off + 4 <= a.size(); off += 4) {
      cc_key_path p{};
      p.len = 4;
      p.off[0] = off;
      bool ok = true;
      for (auto* runs : {&t12, &t13})
        for (const Handshake& h : *runs)
          for (void* ssl : {h.client, h.server}) {
            auto got = read_path(reinterpret_cast<uint64_t>(ssl), p);
            int32_t v = 0;
            if (got) std::memcpy(&v, got->data(), 4);
            ok = ok && got && v == h.version;
          }
      if (ok) {
        layout.items[CC_KEY_VERSION] = p;
        summary += fmt::format(" version={}", describe(p));
        return true;
      }
    }
    return false;
  }

  // OpenSSL keeps no TLS 1.3 handshake traffic secret after use, but keeps
  // the handshake secret and the transcript hash they come from (RFC 8446
  // 7.1: Derive-Secret(handshake_secret, "c hs traffic", hash)). Find the
  // pair of places that gives the reported secrets.
  bool learn_hs_derivation() {
    const Handshake& h = t13[0];
    auto c = h.secrets.find("CLIENT_HANDSHAKE_TRAFFIC_SECRET");
    if (c == h.secrets.end()) return false;
    size_t hl = c->second.size();
    Bytes mem(kRootBytes);
    mem.resize(read_self(reinterpret_cast<uint64_t>(h.client), mem.data(), mem.size()));
    std::vector<uint32_t> cands;
    // Byte arrays in the SSL object are only 4-byte aligned (OpenSSL 3.0).
    for (uint32_t off = 0; off + hl <= mem.size(); off += 4)
      if (looks_random(mem.data() + off, hl)) cands.push_back(off);
    Bytes out(hl);
    for (uint32_t xs : cands) {
      for (uint32_t ys : cands) {
        if (xs == ys) continue;
        if (!tls13_expand_label({mem.data() + xs, hl}, "c hs traffic", {mem.data() + ys, hl}, out) ||
            out != c->second)
          continue;
        cc_key_path ps{}, ph{};
        ps.len = ph.len = 48;
        ps.off[0] = xs;
        ph.off[0] = ys;
        if (verify_derivation(ps, ph)) {
          layout.items[CC_KEY_HANDSHAKE_SECRET] = ps;
          layout.items[CC_KEY_HANDSHAKE_HASH] = ph;
          summary += fmt::format(" handshake_secret={} handshake_hash={}", describe(ps), describe(ph));
          return true;
        }
      }
    }
    return false;
  }

  bool verify_derivation(const cc_key_path& ps, const cc_key_path& ph) {
    for (const Handshake& h : t13) {
      for (void* ssl : {h.client, h.server}) {
        auto s = read_path(reinterpret_cast<uint64_t>(ssl), ps);
        auto x = read_path(reinterpret_cast<uint64_t>(ssl), ph);
        for (const char* lbl : {"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET"}) {
          auto it = h.secrets.find(lbl);
          if (!s || !x || it == h.secrets.end()) return false;
          size_t hl = it->second.size();
          Bytes out(hl);
          if (!tls13_expand_label({s->data(), hl}, lbl[0] == 'C' ? "c hs traffic" : "s hs traffic",
                                  {x->data(), hl}, out) ||
              out != it->second)
            return false;
        }
      }
    }
    return true;
  }
};

constexpr int32_t kBioTypeSocket = 5 | 0x0400 | 0x0100;  // BIO_TYPE_SOCKET, OpenSSL 1.1+/3.x and BoringSSL

// What fd_from_ssl() in bpf/tls.bpf.c computes, here in the probe: the fd,
// or -1 when the BIO is not a socket BIO, or -2 when a read fails.
int64_t fd_by_layout(uint64_t ssl, const cc_fd_layout& l) {
  uint64_t bio = read_ptr(ssl + l.rbio_off);
  if (!bio) return -2;
  uint64_t meth = read_ptr(bio + l.method_off);
  bool ok = false;
  int32_t type = meth ? read_i32(meth, &ok) : 0;
  if (!ok) return -2;
  if (type != l.sock_type) return -1;
  int32_t num = read_i32(bio + l.num_off, &ok);
  return ok ? num : -2;
}

// Where the fd lives. Two objects get two distinctive fd numbers (dups of
// one socket, placed high so that no small integer of the object matches by
// chance); a place must give each object its own number, and a BIO pair
// (whose num field is 0: stdin, were its type not checked) or a memory BIO
// must not pass for a socket.
Result<FdLayoutResult> probe_fd_layout(const Api& api) {
  if (!api.SSL_set_bio || !api.BIO_new || !api.BIO_s_mem)
    return make_error("it lacks SSL_set_bio, BIO_new or BIO_s_mem", ENOSYS);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) return make_error("socketpair failed", errno);
  int fd_a = fcntl(sv[0], F_DUPFD_CLOEXEC, 713);
  int fd_b = fcntl(sv[0], F_DUPFD_CLOEXEC, 1597);
  if (fd_a < 0 || fd_b < 0) return make_error("cannot place the probe's fds (F_DUPFD)", errno);
  void* ctx = api.SSL_CTX_new(api.TLS_method());
  if (!ctx) return make_error("SSL_CTX_new failed", EIO);
  void* a = api.SSL_new(ctx);
  void* b = api.SSL_new(ctx);
  void* m = api.SSL_new(ctx);
  void* mem = nullptr;
  void* pair_end = nullptr;
  if (!api.BIO_new_bio_pair || api.BIO_new_bio_pair(&mem, 0, &pair_end, 0) != 1) mem = api.BIO_new(api.BIO_s_mem());
  if (!a || !b || !m || !mem) return make_error("SSL_new or BIO_new failed", EIO);
  if (api.SSL_set_fd(a, fd_a) != 1 || api.SSL_set_fd(b, fd_b) != 1) return make_error("SSL_set_fd failed", EIO);
  api.SSL_set_bio(m, mem, mem);
  // The objects stay alive: the child exits soon.
  const uint64_t root = reinterpret_cast<uint64_t>(a);
  Bytes mem_a(kRootBytes);
  mem_a.resize(read_self(root, mem_a.data(), mem_a.size()));
  // Lowest offsets first: the read BIO comes before the write BIO in every
  // library's SSL struct, and both are the same socket BIO after SSL_set_fd.
  for (uint32_t rb = 0; rb + 8 <= mem_a.size(); rb += 8) {
    uint64_t bio = 0;
    std::memcpy(&bio, mem_a.data() + rb, 8);
    if (bio < 0x10000 || bio > 0x7fffffffffffull || (bio & 7)) continue;
    Bytes bm(256);
    bm.resize(read_self(bio, bm.data(), bm.size()));
    for (uint32_t num = 0; num + 4 <= bm.size(); num += 4) {
      int32_t v = 0;
      std::memcpy(&v, bm.data() + num, 4);
      if (v != fd_a) continue;
      for (uint32_t mo = 0; mo + 8 <= bm.size(); mo += 8) {
        cc_fd_layout l{1, rb, num, mo, kBioTypeSocket, 0};
        if (fd_by_layout(root, l) == fd_a && fd_by_layout(reinterpret_cast<uint64_t>(b), l) == fd_b &&
            fd_by_layout(reinterpret_cast<uint64_t>(m), l) == -1)
          return FdLayoutResult{l, fmt::format("rbio={:#x} num={:#x} method={:#x} type={:#x}", rb, num, mo,
                                               kBioTypeSocket)};
      }
    }
  }
  return make_error("the socket fd was not found behind the SSL object", ENOENT);
}

void* open_library(const std::string& path, std::string* why) {
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* e = dlerror();
    *why = fmt::format("cannot load it with dlopen ({}); a program with OpenSSL linked in statically "
                       "cannot be probed, and clearcap has no offset table for it",
                       e ? e : "unknown error");
  }
  return lib;
}

// Finds the functions the probes call; returns the names of those missing
// that the key probe needs.
std::string resolve_api(void* lib, Api& api) {
  std::string missing;
  auto sym = [&](auto& fn, const char* name, bool required) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, name));
    if (!fn && required) missing += std::string(missing.empty() ? "" : ", ") + name;
  };
  sym(api.TLS_method, "TLS_method", true);
  sym(api.SSL_CTX_new, "SSL_CTX_new", true);
  sym(api.SSL_CTX_free, "SSL_CTX_free", true);
  sym(api.SSL_CTX_set_keylog_callback, "SSL_CTX_set_keylog_callback", true);
  sym(api.SSL_CTX_use_certificate_ASN1, "SSL_CTX_use_certificate_ASN1", true);
  sym(api.SSL_CTX_use_PrivateKey_ASN1, "SSL_CTX_use_PrivateKey_ASN1", true);
  sym(api.SSL_CTX_set_min_proto_version, "SSL_CTX_set_min_proto_version", false);
  sym(api.SSL_CTX_set_max_proto_version, "SSL_CTX_set_max_proto_version", false);
  sym(api.SSL_CTX_ctrl, "SSL_CTX_ctrl", !api.SSL_CTX_set_max_proto_version);
  sym(api.SSL_CTX_set_ciphersuites, "SSL_CTX_set_ciphersuites", false);
  sym(api.SSL_new, "SSL_new", true);
  sym(api.SSL_free, "SSL_free", true);
  sym(api.SSL_set_fd, "SSL_set_fd", true);
  sym(api.SSL_set_bio, "SSL_set_bio", false);
  sym(api.BIO_new, "BIO_new", false);
  sym(api.BIO_s_mem, "BIO_s_mem", false);
  sym(api.BIO_new_bio_pair, "BIO_new_bio_pair", false);
  sym(api.SSL_set_connect_state, "SSL_set_connect_state", true);
  sym(api.SSL_set_accept_state, "SSL_set_accept_state", true);
  sym(api.SSL_do_handshake, "SSL_do_handshake", true);
  sym(api.SSL_get_error, "SSL_get_error", true);
  return missing;
}

// Runs in the child: returns the key layout or why there is none.
Result<KeyLayoutResult> probe_keys(const Api& api, const std::string& missing) {
  if (!missing.empty())
    return make_error(fmt::format("it lacks {} (key logging needs OpenSSL 1.1.1 or later, or BoringSSL)", missing),
                      ENOSYS);

  Probe p{api, {}, {}, {}, {}};
  // Two runs per version: the second uses another cipher suite where the
  // library lets us choose (SHA-256 vs SHA-384 secrets), and fresh objects.
  for (const char* suites : {static_cast<const char*>(nullptr), "TLS_AES_128_GCM_SHA256"}) {
    auto a = run_handshake(api, kTls12, nullptr);
    if (!a) return tl::unexpected(a.error());
    p.t12.push_back(std::move(*a));
    auto b = run_handshake(api, kTls13, suites);
    if (!b) return tl::unexpected(b.error());
    p.t13.push_back(std::move(*b));
  }
  std::vector<Handshake> all = p.t12;
  all.insert(all.end(), p.t13.begin(), p.t13.end());
  if (!p.learn(CC_KEY_CLIENT_RANDOM, all, nullptr, 32))
    return make_error("the client random was not found in the SSL object", ENOENT);
  if (!p.learn(CC_KEY_MASTER, p.t12, "CLIENT_RANDOM", 48))
    return make_error("the TLS 1.2 master secret was not found in the SSL object", ENOENT);
  const std::pair<cc_key_item, const char*> tls13[] = {{CC_KEY_CLIENT_APP_TRAFFIC, "CLIENT_TRAFFIC_SECRET_0"},
                                                      {CC_KEY_SERVER_APP_TRAFFIC, "SERVER_TRAFFIC_SECRET_0"},
                                                      {CC_KEY_EXPORTER, "EXPORTER_SECRET"}};
  for (auto [item, label] : tls13)
    if (!p.learn(item, p.t13, label, 48))
      return make_error(fmt::format("the TLS 1.3 {} was not found in the SSL object", label), ENOENT);
  bool chts = p.learn(CC_KEY_CLIENT_HS_TRAFFIC, p.t13, "CLIENT_HANDSHAKE_TRAFFIC_SECRET", 48);
  bool shts = p.learn(CC_KEY_SERVER_HS_TRAFFIC, p.t13, "SERVER_HANDSHAKE_TRAFFIC_SECRET", 48);
  if (!(chts && shts)) {
    p.layout.items[CC_KEY_CLIENT_HS_TRAFFIC] = {};
    p.layout.items[CC_KEY_SERVER_HS_TRAFFIC] = {};
    if (!p.learn_hs_derivation())
      return make_error("the TLS 1.3 handshake traffic secrets (or the secret and hash they come from) were not "
                        "found in the SSL object;" + p.summary,
                        ENOENT);
  }
  if (!p.learn_version()) return make_error("the negotiated version was not found in the SSL object", ENOENT);
  return KeyLayoutResult{p.layout, p.summary.empty() ? p.summary : p.summary.substr(1)};
}

// One answer of the helper process; it sends the fd layout's first, then
// (when asked) the key layout's, so that a crash in the handshakes keeps
// the first.
struct ChildReply {
  int32_t ok;
  int32_t err;
  cc_fd_layout fd;
  cc_key_layout keys;
  char text[2048];  // summary or error message
};

template <typename T>
void send_reply(int fd, const Result<T>& r, ChildReply& reply) {
  reply.ok = r.has_value();
  reply.err = r ? 0 : r.error().err;
  std::snprintf(reply.text, sizeof(reply.text), "%s", r ? r->summary.c_str() : r.error().message.c_str());
  if (write(fd, &reply, sizeof(reply)) != static_cast<ssize_t>(sizeof(reply))) _exit(1);
}

// Reads one reply before the deadline; false on EOF or timeout.
bool read_reply(int fd, ChildReply& reply, std::chrono::steady_clock::time_point deadline) {
  size_t got = 0;
  while (got < sizeof(reply)) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd pfd{fd, POLLIN, 0};
    if (poll(&pfd, 1, static_cast<int>(left.count())) <= 0) continue;
    ssize_t n = read(fd, reinterpret_cast<char*>(&reply) + got, sizeof(reply) - got);
    if (n <= 0) return false;
    got += static_cast<size_t>(n);
  }
  reply.text[sizeof(reply.text) - 1] = 0;
  return true;
}

// The result one reply stands for: the layout, the child's reason, or why
// the reply never came.
template <typename T, typename Layout>
Result<T> answer(bool got, const ChildReply& reply, const Layout& layout, const std::string& lost) {
  if (!got) return make_error(lost, EIO);
  if (!reply.ok) return make_error(reply.text, reply.err ? reply.err : EIO);
  return T{layout, reply.text};
}

}  // namespace

LibraryLayouts learn_library_layouts(const std::string& path, bool keys, int timeout_ms) {
  LibraryLayouts out;
  if (!keys) out.keys = make_error("not asked for");
  int fds[2];
  if (pipe2(fds, O_CLOEXEC)) {
    auto e = make_error(fmt::format("pipe: {}", std::strerror(errno)), errno);
    out.fd = e;
    out.keys = e;
    return out;
  }
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(fds[0]);
    close(fds[1]);
    auto why = make_error(fmt::format("fork: {}", std::strerror(e)), e);
    out.fd = why;
    out.keys = why;
    return out;
  }
  if (pid == 0) {
    close(fds[0]);
    ChildReply reply{};
    std::string why;
    void* lib = open_library(path, &why);
    if (!lib) {
      Result<FdLayoutResult> err = make_error(why, ENOEXEC);
      send_reply(fds[1], err, reply);
      if (keys) send_reply(fds[1], err, reply);
      _exit(0);
    }
    Api api{};
    std::string missing = resolve_api(lib, api);
    auto f = api.TLS_method && api.SSL_CTX_new && api.SSL_new && api.SSL_set_fd
                 ? probe_fd_layout(api)
                 : Result<FdLayoutResult>(make_error("it lacks TLS_method, SSL_CTX_new, SSL_new or SSL_set_fd", ENOSYS));
    if (f) reply.fd = f->layout;
    send_reply(fds[1], f, reply);
    if (keys) {
      auto k = probe_keys(api, missing);
      if (k) reply.keys = k->layout;
      send_reply(fds[1], k, reply);
    }
    _exit(0);
  }
  close(fds[1]);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  ChildReply fd_reply{}, key_reply{};
  const bool got_fd = read_reply(fds[0], fd_reply, deadline);
  const bool got_keys = keys && got_fd && read_reply(fds[0], key_reply, deadline);
  close(fds[0]);
  const bool complete = got_fd && (got_keys || !keys);
  if (!complete) kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  std::string lost;  // why an answer is missing
  if (!complete) {
    lost = WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL
               ? fmt::format("the layout probe crashed (signal {}) while running handshakes with it", WTERMSIG(status))
               : fmt::format("the layout probe gave no answer within {} ms", timeout_ms);
  }
  out.fd = answer<FdLayoutResult>(got_fd, fd_reply, fd_reply.fd, lost);
  if (keys) out.keys = answer<KeyLayoutResult>(got_keys, key_reply, key_reply.keys, lost);
  return out;
}

}  // namespace clearcap
