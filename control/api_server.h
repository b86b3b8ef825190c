// HTTP/1.1 server of the configuration API (`--listen`, Boost.Beast).
// Routing and the meaning of requests belong to the handler; this class
// owns sockets, limits and access (core/peer_access.h): without a token
// only root, the starting user and --allow-uid may connect (403 right after
// accept); with one, a wrong or missing bearer token gets 401; a foreign
// Host or Origin gets 403 and a POST that is not application/json 415,
// all before the handler sees anything. At most max_connections are held
// (max_per_peer per user or address; beyond: 503 and close). Request
// headers are capped at 8 KiB and bodies at 64 KiB (413), a request must
// arrive within 30 s, malformed HTTP gets 400 and the connection is closed.
// accept() failing (EMFILE) backs off 100 ms instead of spinning; existing
// connections keep being served.
//
// Thread: start(), stop() and the destructor for the owner. The handler runs
// on the server's io threads (two, so that GET /metrics answers while a
// re-attach runs in the other): it must be thread-safe and must not throw
// (an exception becomes a 500 with code 2).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace clearcap {

struct ApiRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query as sent
  std::string body;
};

struct ApiReply {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
};

// "HOST:PORT", ":PORT" (loopback), "[IPv6]:PORT", with or without http://.
struct ListenAddr {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
};
Result<ListenAddr> parse_listen_addr(std::string_view text);

// {"code":N,"module_type":"M","msg":"...","data":null} with msg escaped.
std::string api_body(int code, std::string_view module, std::string_view msg);

class ApiServer {
 public:
  using Handler = std::function<ApiReply(const ApiRequest&)>;
  struct Options {
    ListenAddr addr;
    std::string token;  // non-empty: Authorization: Bearer <token> required
    std::vector<uid_t> allow_uids;  // --allow-uid (PeerAccess)
    std::string module;  // module_type of the replies this class makes itself (the running module)
    int threads = 2;
    size_t max_connections = 64;
    size_t max_per_peer = 16;
  };
  struct Counters {
    uint64_t refused = 0;        // connections refused (peer not allowed, limits)
    uint64_t accept_errors = 0;  // accept() failures (EMFILE...), each followed by a pause
  };

  static Result<std::unique_ptr<ApiServer>> start(Options opts, Handler handler);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Closes the listener and every connection, joins the io threads.
  void stop();
  // "127.0.0.1:28256" as bound (the real port when 0 was asked for).
  const std::string& address() const { return address_; }
  Counters counters() const;

  class Impl;

 private:
  explicit ApiServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::string address_;
};

}  // namespace clearcap
