#include "core/peer_access.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

namespace clearcap {
namespace {

// An IPv4 peer of a dual-stack IPv6 socket shows as ::ffff:a.b.c.d; its
// own socket is an AF_INET one.
sockaddr_storage unmapped(const sockaddr* sa) {
  sockaddr_storage out{};
  if (sa->sa_family == AF_INET6) {
    const auto* s6 = reinterpret_cast<const sockaddr_in6*>(sa);
    if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
      auto* s4 = reinterpret_cast<sockaddr_in*>(&out);
      s4->sin_family = AF_INET;
      s4->sin_port = s6->sin6_port;
      std::memcpy(&s4->sin_addr, &s6->sin6_addr.s6_addr[12], 4);
      return out;
    }
    std::memcpy(&out, sa, sizeof(sockaddr_in6));
  } else if (sa->sa_family == AF_INET) {
    std::memcpy(&out, sa, sizeof(sockaddr_in));
  }
  return out;
}

bool is_loopback(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET)
    return (ntohl(reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr.s_addr) >> 24) == 127;
  if (ss.ss_family == AF_INET6) return IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr);
  return false;
}

std::string address_text(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (ss.ss_family == AF_INET) inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr, buf, sizeof(buf));
  if (ss.ss_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr, buf, sizeof(buf));
  return buf;
}

void fill_endpoint(const sockaddr_storage& ss, __be16* port, __be32 addr[4]) {
  if (ss.ss_family == AF_INET) {
    const auto* s4 = reinterpret_cast<const sockaddr_in*>(&ss);
    *port = s4->sin_port;
    addr[0] = s4->sin_addr.s_addr;
  } else {
    const auto* s6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    *port = s6->sin6_port;
    std::memcpy(addr, &s6->sin6_addr, 16);
  }
}

bool equal_ci(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return std::tolower(x) == std::tolower(y); });
}

// "host:port", "[v6]:port", "host" -> the host part ("v6" without brackets).
std::string_view host_name(std::string_view host) {
  if (host.starts_with('[')) {
    const size_t close = host.find(']');
    return close == std::string_view::npos ? host : host.substr(1, close - 1);
  }
  const size_t colon = host.find(':');
  return colon == std::string_view::npos ? host : host.substr(0, colon);
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  // The length of the configured token is not a secret worth hiding.
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

Result<std::string> check_token_text(const std::string& flag, std::string token) {
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
  if (token.size() < 8 || token.size() > 512)
    return make_error(fmt::format("{}: a token must be 8 to 512 characters long", flag), EINVAL);
  for (char c : token)
    if (c <= ' ' || c > '~')
      return make_error(fmt::format("{}: a token must be printable ASCII without spaces or control characters", flag),
                        EINVAL);
  return token;
}

}  // namespace

std::optional<uid_t> local_peer_uid(const sockaddr* ours, const sockaddr* peer) {
  const sockaddr_storage l = unmapped(ours), r = unmapped(peer);
  if (l.ss_family != r.ss_family || (l.ss_family != AF_INET && l.ss_family != AF_INET6)) return std::nullopt;
  const int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) return std::nullopt;
  struct {
    nlmsghdr nlh;
    inet_diag_req_v2 req;
  } msg{};
  msg.nlh.nlmsg_len = sizeof(msg);
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST;  // no NLM_F_DUMP: one exact lookup
  msg.req.sdiag_family = static_cast<__u8>(l.ss_family);
  msg.req.sdiag_protocol = IPPROTO_TCP;
  msg.req.idiag_states = ~0u;
  // The peer's socket: its local end is our remote end and the other way round.
  fill_endpoint(r, &msg.req.id.idiag_sport, msg.req.id.idiag_src);
  fill_endpoint(l, &msg.req.id.idiag_dport, msg.req.id.idiag_dst);
  msg.req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  msg.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  std::optional<uid_t> uid;
  if (sendto(fd, &msg, sizeof(msg), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel)) ==
      static_cast<ssize_t>(sizeof(msg))) {
    alignas(nlmsghdr) char buf[8192];
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      int len = static_cast<int>(n);
      for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
        if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg))) continue;
        uid = static_cast<uid_t>(static_cast<const inet_diag_msg*>(NLMSG_DATA(h))->idiag_uid);
        break;
      }
    }
  }
  ::close(fd);
  return uid;
}

Result<std::string> load_token(const TokenSource& src) {
  if (!src.file.empty()) {
    if (src.file.find('\0') != std::string::npos)
      return make_error(fmt::format("{}-file: the path holds a NUL byte", src.flag), EINVAL);
    const int fd = ::open(src.file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
    if (fd < 0)
      return make_error(fmt::format("{}-file {}: cannot open: {}", src.flag, src.file, std::strerror(errno)), errno);
    struct stat st {};
    std::string text;
    const bool stat_ok = fstat(fd, &st) == 0;
    if (stat_ok && S_ISREG(st.st_mode) && st.st_size <= 4096) {
      text.resize(static_cast<size_t>(st.st_size));
      const ssize_t n = ::read(fd, text.data(), text.size());
      text.resize(n > 0 ? static_cast<size_t>(n) : 0);
    }
    ::close(fd);
    if (!stat_ok || !S_ISREG(st.st_mode) || st.st_size > 4096)
      return make_error(fmt::format("{}-file {}: not a regular file of at most 4 KiB", src.flag, src.file), EINVAL);
    if (st.st_uid != 0 && st.st_uid != geteuid())
      return make_error(fmt::format("{}-file {}: belongs to uid {}; a token file must belong to root or to the user "
                                    "running clearcap",
                                    src.flag, src.file, st.st_uid),
                        EPERM);
    if ((st.st_mode & 077) != 0)
      return make_error(fmt::format("{}-file {}: mode {:04o} lets other users read or change the token; chmod 600 it",
                                    src.flag, src.file, st.st_mode & 07777),
                        EPERM);
    text = text.substr(0, text.find('\n'));
    return check_token_text(src.flag + "-file " + src.file, std::move(text));
  }
  if (!src.env.empty())
    if (const char* v = std::getenv(src.env.c_str()); v && *v) return check_token_text(src.env, v);
  if (!src.argv_value.empty()) return check_token_text(src.flag, src.argv_value);
  return std::string();
}

PeerAccess::PeerAccess(Options o) : opts_(std::move(o)) {}

Result<PeerAccess> PeerAccess::create(Options o) {
  PeerAccess a(std::move(o));
  auto add = [&a](uid_t u) {
    if (std::find(a.allowed_.begin(), a.allowed_.end(), u) == a.allowed_.end()) a.allowed_.push_back(u);
  };
  add(0);
  add(getuid());
  if (const char* s = std::getenv("SUDO_UID")) {
    char* end = nullptr;
    const unsigned long v = std::strtoul(s, &end, 10);
    if (end != s && *end == '\0' && v < 0xffffffffu) add(static_cast<uid_t>(v));
  }
  for (uid_t u : a.opts_.allow_uids) add(u);

  sockaddr_storage bound{};
  auto* s4 = reinterpret_cast<sockaddr_in*>(&bound);
  auto* s6 = reinterpret_cast<sockaddr_in6*>(&bound);
  if (inet_pton(AF_INET, a.opts_.bound_host.c_str(), &s4->sin_addr) == 1) {
    bound.ss_family = AF_INET;
  } else if (inet_pton(AF_INET6, a.opts_.bound_host.c_str(), &s6->sin6_addr) == 1) {
    bound.ss_family = AF_INET6;
  }
  a.loopback_ = is_loopback(unmapped(reinterpret_cast<const sockaddr*>(&bound)));
  if (!a.loopback_ && a.opts_.token.empty())
    return make_error(fmt::format("{} {}: serving beyond loopback needs a token, or anyone who can reach the port "
                                  "reads plaintext: give {}-token-file FILE (0600) or set the environment variable, "
                                  "or bind to 127.0.0.1",
                                  a.opts_.server, a.opts_.bound_host, a.opts_.server),
                      EINVAL);
  a.hosts_ = {a.opts_.bound_host, "localhost", "127.0.0.1", "::1"};
  return a;
}

PeerAccess::Verdict PeerAccess::check_connection(const sockaddr* ours, const sockaddr* peer) const {
  Verdict v;
  const sockaddr_storage r = unmapped(peer);
  const std::optional<uid_t> uid = local_peer_uid(ours, peer);
  v.key = uid ? fmt::format("uid {}", *uid) : address_text(r);
  if (has_token()) return v;  // every request must carry the token
  if (!uid) {
    v.refusal = fmt::format("{}: the owner of the connecting socket ({}) could not be found; without a token only "
                            "local users may connect",
                            opts_.server, address_text(r));
    return v;
  }
  if (std::find(allowed_.begin(), allowed_.end(), *uid) != allowed_.end()) return v;
  std::string who;
  for (uid_t u : allowed_) who += (who.empty() ? "" : ", ") + std::to_string(u);
  v.refusal = fmt::format("{} serves only uids {} (root, the user who started clearcap, --allow-uid); uid {} is "
                          "refused. Start clearcap with --allow-uid {} or a token to let it in",
                          opts_.server, who, *uid, *uid);
  return v;
}

std::optional<std::string> PeerAccess::check_headers(std::string_view host, std::string_view origin) const {
  // A rebinding attack names its own domain; the loopback names and
  // literals (any port) cannot be rebound.
  if (!has_token() && !host.empty() &&
      std::none_of(hosts_.begin(), hosts_.end(), [&](const std::string& h) { return equal_ci(h, host_name(host)); }))
    return fmt::format("Host '{}' is not this server ({}): refused (DNS rebinding)", host, hosts_.front());
  if (!origin.empty()) {
    // Only a page served by this very host:port is same-origin; clearcap serves none.
    const bool same = origin.starts_with("http://") && !host.empty() && equal_ci(origin.substr(7), host);
    if (!same)
      return fmt::format("cross-origin request from '{}' refused: a web page may not read or change clearcap's "
                         "capture", origin);
  }
  return std::nullopt;
}

bool PeerAccess::token_ok(std::string_view bearer_header, std::string_view query_token) const {
  if (!has_token()) return true;
  constexpr std::string_view kBearer = "Bearer ";
  if (bearer_header.starts_with(kBearer) && constant_time_equal(bearer_header.substr(kBearer.size()), opts_.token))
    return true;
  return !query_token.empty() && constant_time_equal(query_token, opts_.token);
}

void send_refusal(int fd, unsigned status, std::string_view content_type, std::string_view body) {
  const char* reason = status == 403 ? "Forbidden" : status == 503 ? "Service Unavailable" : "Error";
  const std::string text =
      fmt::format("HTTP/1.1 {} {}\r\nServer: clearcap\r\nContent-Type: {}\r\nContent-Length: {}\r\n"
                  "Connection: close\r\n\r\n{}",
                  status, reason, content_type, body.size(), body);
  (void)!::send(fd, text.data(), text.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  ::shutdown(fd, SHUT_WR);
  char sink[4096];
  for (int i = 0; i < 16 && ::recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; ++i) {
  }
}

std::unique_ptr<ConnectionLimits::Ticket> ConnectionLimits::admit(const std::string& key) {
  std::lock_guard lk(mu_);
  size_t& n = per_key_[key];
  if (open_ >= total_ || n >= per_peer_) {
    if (n == 0) per_key_.erase(key);
    return nullptr;
  }
  ++n;
  ++open_;
  return std::make_unique<Ticket>(this, key);
}

void ConnectionLimits::release(const std::string& key) {
  std::lock_guard lk(mu_);
  --open_;
  if (auto it = per_key_.find(key); it != per_key_.end() && --it->second == 0) per_key_.erase(it);
}

size_t ConnectionLimits::open() const {
  std::lock_guard lk(mu_);
  return open_;
}

PeerGate::Entry PeerGate::admit(const sockaddr* ours, const sockaddr* peer) {
  Entry e;
  auto verdict = access_.check_connection(ours, peer);
  if (verdict.refusal) {
    e.status = 403;
    e.why = std::move(*verdict.refusal);
  } else if (!(e.ticket = limits_.admit(verdict.key))) {
    e.status = 503;
    e.why = fmt::format("too many connections (at most {} in all and {} per user): close idle ones",
                        max_connections_, max_per_peer_);
  }
  if (!e.ticket) refused_.fetch_add(1, std::memory_order_relaxed);
  return e;
}

}  // namespace clearcap
