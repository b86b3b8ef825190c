// Who may use clearcap's servers (the configuration API of --listen and the
// eCaptureQ stream of --ecaptureq). They hand out plaintext and can blind
// the capture, so nobody gets in by default:
//
//  - Without a token (only possible on loopback), a connection is served
//    only if the socket at its other end belongs to root, to the user who
//    started clearcap (real uid, and SUDO_UID under sudo) or to a uid given
//    with --allow-uid. The owner comes from the kernel's socket tables
//    (NETLINK_SOCK_DIAG, one exact lookup per connection): on loopback the
//    peer's socket is on this machine, in this network namespace.
//  - With a token, every request must carry it (Authorization: Bearer, or
//    ?token= where the server accepts that); a token is required to bind
//    beyond loopback. Tokens come from a 0600 file or the environment, so
//    they need not appear in argv (where `ps` shows them to every user).
//  - Browsers: a request carrying an Origin header is served only if that
//    origin is the server itself (http://<Host>), and without a token Host
//    must name the loopback address and port the server is bound to (DNS
//    rebinding). The API also requires Content-Type: application/json on
//    POST, which a page cannot send cross-origin without a preflight that
//    clearcap never answers.
//
// Thread: PeerAccess is immutable after construction; its methods may be
// called from any thread.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace clearcap {

// The uid owning the TCP socket on this machine whose local address is
// `peer` and whose remote address is `ours` (the other end of a connection
// we accepted); nullopt if there is none (a remote peer) or the lookup failed.
std::optional<uid_t> local_peer_uid(const sockaddr* ours, const sockaddr* peer);

// Reads a token: from `file` (must be a regular file owned by root or the
// effective user, not readable or writable by group or others; the first
// line is the token) or else the environment variable `env`, else `argv_value`.
// Errors name the file and the remedy. The token must be printable ASCII
// without spaces, 8 to 512 characters.
struct TokenSource {
  std::string flag;        // "--listen-token" (for messages)
  std::string argv_value;  // given on the command line (discouraged: visible in ps)
  std::string file;        // --listen-token-file
  std::string env;         // CLEARCAP_LISTEN_TOKEN
};
Result<std::string> load_token(const TokenSource& src);

class PeerAccess {
 public:
  struct Options {
    std::string server;              // "--listen" / "--ecaptureq", for messages
    std::string token;               // non-empty: required on every request
    std::vector<uid_t> allow_uids;   // --allow-uid, besides root and the starting user
    std::string bound_host;          // as bound: "127.0.0.1", "::1", "0.0.0.0"
    uint16_t bound_port = 0;
  };

  // Refuses a configuration that would expose the server (beyond loopback
  // without a token).
  static Result<PeerAccess> create(Options opts);

  // Connection level, right after accept.
  struct Verdict {
    std::optional<std::string> refusal;  // the reason to give before closing (HTTP 403); nullopt = may send requests
    std::string key;                     // for per-peer limits: "uid N" for a local peer, else its address
  };
  Verdict check_connection(const sockaddr* ours, const sockaddr* peer) const;
  // Request level (HTTP 403 unless said otherwise): Host and Origin headers
  // as sent (empty = absent).
  std::optional<std::string> check_headers(std::string_view host, std::string_view origin) const;
  // Constant-time comparison; true when no token is configured.
  bool token_ok(std::string_view bearer_header, std::string_view query_token = {}) const;
  bool has_token() const { return !opts_.token.empty(); }

  // Root, the starting user and --allow-uid, in order, without repeats.
  const std::vector<uid_t>& allowed_uids() const { return allowed_; }

 private:
  explicit PeerAccess(Options o);
  Options opts_;
  std::vector<uid_t> allowed_;
  bool loopback_ = true;
  std::vector<std::string> hosts_;  // host names (Host without its port) accepted without a token
};

// Answers a connection that will not be served, right after accept: a
// complete HTTP/1.1 response sent without waiting (a few hundred bytes fit
// any socket buffer), then what the client already sent is read so that
// the caller's close sends FIN, not an RST that could discard the answer.
// Refused peers hold no file descriptor and no thread.
void send_refusal(int fd, unsigned status, std::string_view content_type, std::string_view body);

// Bounds the connections a server holds, in total and per peer key, so that
// one user's idle connections cannot take clearcap's file descriptors or
// starve the others. A Ticket is held for the life of a connection.
class ConnectionLimits {
 public:
  ConnectionLimits(size_t total, size_t per_peer) : total_(total), per_peer_(per_peer) {}
  class Ticket {
   public:
    Ticket(ConnectionLimits* l, std::string key) : l_(l), key_(std::move(key)) {}
    ~Ticket() { l_->release(key_); }
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;

   private:
    ConnectionLimits* l_;
    std::string key_;
  };
  // nullptr when a limit is reached (the caller answers 503 and closes).
  std::unique_ptr<Ticket> admit(const std::string& key);
  size_t open() const;

 private:
  void release(const std::string& key);
  const size_t total_, per_peer_;
  mutable std::mutex mu_;
  size_t open_ = 0;
  std::map<std::string, size_t> per_key_;
};

// One server's door, right after accept: PeerAccess's connection check,
// then the connection limits. Counts what it turns away. Both servers admit
// through it; only the wording of their answers differs.
// Thread: admit() and refused() from any thread.
class PeerGate {
 public:
  PeerGate(PeerAccess access, size_t max_connections, size_t max_per_peer)
      : access_(std::move(access)), limits_(max_connections, max_per_peer),
        max_connections_(max_connections), max_per_peer_(max_per_peer) {}

  struct Entry {
    std::unique_ptr<ConnectionLimits::Ticket> ticket;  // held for the connection; null = refused
    unsigned status = 0;                               // refused: 403 (not allowed) or 503 (limits)
    std::string why;                                   // refused: what to tell the client
  };
  Entry admit(const sockaddr* ours, const sockaddr* peer);

  const PeerAccess& access() const { return access_; }
  uint64_t refused() const { return refused_.load(std::memory_order_relaxed); }

 private:
  PeerAccess access_;
  ConnectionLimits limits_;
  const size_t max_connections_, max_per_peer_;
  std::atomic<uint64_t> refused_{0};
};

}  // namespace clearcap
