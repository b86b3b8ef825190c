#include "control/api_server.h"

#include "core/json_text.h"
#include "core/peer_access.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <exception>
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

namespace clearcap {

namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

constexpr size_t kHeaderLimit = 8 * 1024;
constexpr size_t kBodyLimit = 64 * 1024;
constexpr auto kRequestTimeout = std::chrono::seconds(30);

std::string_view sv(beast::string_view s) { return {s.data(), s.size()}; }

// "application/json", any case, parameters (charset) allowed.
bool is_json(std::string_view ct) {
  ct = ct.substr(0, ct.find(';'));
  while (!ct.empty() && ct.back() == ' ') ct.remove_suffix(1);
  constexpr std::string_view kJson = "application/json";
  return ct.size() == kJson.size() &&
         std::equal(ct.begin(), ct.end(), kJson.begin(), [](char a, char b) { return std::tolower(a) == b; });
}

void refuse(tcp::socket& s, unsigned status, const std::string& body) {
  send_refusal(s.native_handle(), status, "application/json", body);
  beast::error_code ignored;
  s.close(ignored);
}
}  // namespace

std::string api_body(int code, std::string_view module, std::string_view msg) {
  return fmt::format(R"({{"code":{},"module_type":"{}","msg":"{}","data":null}})", code, json_escape(module),
                     json_escape(msg));
}

Result<ListenAddr> parse_listen_addr(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return make_error(fmt::format("--listen {}: {}; expected HOST:PORT such as 127.0.0.1:28256", text, why), EINVAL);
  };
  std::string_view s = text;
  if (s.starts_with("http://")) s.remove_prefix(7);
  if (s.ends_with('/')) s.remove_suffix(1);
  ListenAddr a;
  std::string_view host, port;
  if (s.starts_with('[')) {
    size_t close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':')
      return bad("expected [IPv6]:PORT");
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    size_t colon = s.rfind(':');
    if (colon == std::string_view::npos) return bad("no port");
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value > 65535)
    return bad(fmt::format("'{}' is not a port number", port));
  a.port = static_cast<uint16_t>(value);
  if (!host.empty()) a.host = host == "localhost" ? "127.0.0.1" : std::string(host);
  return a;
}

class ApiServer::Impl {
 public:
  Impl(Options o, Handler h)
      : opts(std::move(o)), handler(std::move(h)), ioc(opts.threads) {}
  void accept_next();
  void admit(tcp::socket socket);

  Options opts;
  Handler handler;
  std::optional<PeerGate> gate;  // set once bound; outlives the sessions (their tickets), which may die with the io_context
  net::io_context ioc;
  tcp::acceptor acceptor{net::make_strand(ioc)};
  net::steady_timer backoff{acceptor.get_executor()};
  std::atomic<uint64_t> accept_errors{0};
  std::vector<std::jthread> threads;
  bool stopped = false;
};

namespace {

// One connection; its operations run one after the other (no strand needed
// beyond the one its socket was accepted on).
class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(ApiServer::Impl& server, tcp::socket&& s, std::unique_ptr<ConnectionLimits::Ticket> ticket)
      : server_(server), stream_(std::move(s)), ticket_(std::move(ticket)) {}

  void read_next() {
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    parser_->body_limit(kBodyLimit);
    stream_.expires_after(kRequestTimeout);
    bhttp::async_read(stream_, buf_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }

 private:
  void on_read(beast::error_code ec) {
    if (ec == bhttp::error::end_of_stream || ec == beast::error::timeout || ec == net::error::operation_aborted ||
        ec == net::error::connection_reset || ec == net::error::eof)
      return close();
    if (ec == bhttp::error::body_limit || ec == bhttp::error::header_limit)
      return send(bhttp::status::payload_too_large,
                  api_body(1, server_.opts.module,
                           fmt::format("request too large: headers are limited to {} bytes and bodies to {} bytes",
                                       kHeaderLimit, kBodyLimit)),
                  false);
    if (ec)
      return send(bhttp::status::bad_request,
                  api_body(1, server_.opts.module, fmt::format("malformed HTTP request: {}", ec.message())), false);
    auto& req = parser_->get();
    const bool keep = req.keep_alive();
    const PeerAccess& access = server_.gate->access();
    if (auto why = access.check_headers(sv(req[bhttp::field::host]), sv(req[bhttp::field::origin])))
      return send(bhttp::status::forbidden, api_body(1, server_.opts.module, *why), false);
    if (!access.token_ok(sv(req[bhttp::field::authorization])))
      return send(bhttp::status::unauthorized,
                  api_body(1, server_.opts.module, "a token is required: Authorization: Bearer <token>"), keep);
    if (req.method() == bhttp::verb::post && !is_json(sv(req[bhttp::field::content_type])))
      return send(bhttp::status::unsupported_media_type,
                  api_body(1, server_.opts.module,
                           "the body must be sent as Content-Type: application/json (curl: -H 'Content-Type: "
                           "application/json')"),
                  false);
    ApiRequest r{std::string(sv(req.method_string())), std::string(sv(req.target())), std::move(req.body())};
    ApiReply reply;
    try {
      reply = server_.handler(r);
    } catch (const std::exception& e) {
      reply = ApiReply{500, "application/json", api_body(2, server_.opts.module, fmt::format("internal error: {}", e.what()))};
    }
    send(static_cast<bhttp::status>(reply.status), std::move(reply.body), keep, reply.content_type);
  }

  void send(bhttp::status status, std::string body, bool keep_alive,
            std::string_view content_type = "application/json") {
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>(status, 11);
    res->set(bhttp::field::server, "clearcap");
    res->set(bhttp::field::content_type, std::string(content_type));
    res->keep_alive(keep_alive);
    res->body() = std::move(body);
    res->prepare_payload();
    bhttp::async_write(stream_, *res, [self = shared_from_this(), res, keep_alive](beast::error_code ec, size_t) {
      if (ec || !keep_alive) return self->close();
      self->read_next();
    });
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  ApiServer::Impl& server_;
  beast::tcp_stream stream_;
  std::unique_ptr<ConnectionLimits::Ticket> ticket_;
  beast::flat_buffer buf_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
};

}  // namespace

void ApiServer::Impl::accept_next() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
    if (ec) {
      // EMFILE and the like: the pending connection stays in the backlog;
      // retrying at once would spin. Pause, keep serving the others.
      accept_errors.fetch_add(1, std::memory_order_relaxed);
      backoff.expires_after(std::chrono::milliseconds(100));
      backoff.async_wait([this](beast::error_code e) {
        if (!e) accept_next();
      });
      return;
    }
    admit(std::move(socket));
    accept_next();
  });
}

void ApiServer::Impl::admit(tcp::socket socket) {
  beast::error_code e1, e2;
  const auto ours = socket.local_endpoint(e1), peer = socket.remote_endpoint(e2);
  if (e1 || e2) return;  // already gone
  auto entry = gate->admit(ours.data(), peer.data());
  if (!entry.ticket) return refuse(socket, entry.status, api_body(entry.status == 503 ? 6 : 1, opts.module, entry.why));
  std::make_shared<HttpSession>(*this, std::move(socket), std::move(entry.ticket))->read_next();
}

ApiServer::Counters ApiServer::counters() const {
  return Counters{impl_->gate ? impl_->gate->refused() : 0, impl_->accept_errors.load(std::memory_order_relaxed)};
}

ApiServer::ApiServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<ApiServer>> ApiServer::start(Options opts, Handler handler) {
  auto impl = std::make_unique<Impl>(std::move(opts), std::move(handler));
  auto& d = *impl;
  beast::error_code ec;
  tcp::endpoint ep;
  auto addr = net::ip::make_address(d.opts.addr.host, ec);
  if (!ec) {
    ep = tcp::endpoint(addr, d.opts.addr.port);
  } else {
    tcp::resolver resolver(d.ioc);
    auto results = resolver.resolve(d.opts.addr.host, std::to_string(d.opts.addr.port), ec);
    if (ec || results.empty())
      return make_error(fmt::format("--listen: cannot resolve host '{}': {}", d.opts.addr.host, ec.message()), EINVAL);
    ep = results.begin()->endpoint();
  }
  auto fail = [&] {
    return make_error(fmt::format("--listen: cannot listen on {}:{}: {} (choose another address or port)",
                                  ep.address().to_string(), ep.port(), ec.message()),
                      ec.value());
  };
  d.acceptor.open(ep.protocol(), ec);
  if (ec) return fail();
  d.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  d.acceptor.bind(ep, ec);
  if (ec) return fail();
  d.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return fail();
  auto bound = d.acceptor.local_endpoint(ec);
  auto access = PeerAccess::create(PeerAccess::Options{"--listen", d.opts.token, d.opts.allow_uids,
                                                       bound.address().to_string(), bound.port()});
  if (!access) return tl::unexpected(access.error());
  d.gate.emplace(std::move(*access), d.opts.max_connections, d.opts.max_per_peer);
  std::string address = bound.address().is_v6() ? fmt::format("[{}]:{}", bound.address().to_string(), bound.port())
                                                 : fmt::format("{}:{}", bound.address().to_string(), bound.port());
  d.accept_next();
  for (int i = 0; i < std::max(1, d.opts.threads); ++i) {
    d.threads.emplace_back([&d] {
      for (;;) {
        try {
          d.ioc.run();
          return;
        } catch (const std::exception&) {
          // keep serving: a handler failure must not end the API
        }
      }
    });
  }
  std::unique_ptr<ApiServer> self(new ApiServer(std::move(impl)));
  self->address_ = std::move(address);
  return self;
}

ApiServer::~ApiServer() { stop(); }

void ApiServer::stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  net::post(impl_->acceptor.get_executor(), [d = impl_.get()] {
    beast::error_code ignored;
    d->acceptor.close(ignored);
  });
  // Open keep-alive connections would keep run() busy until their timeout.
  impl_->ioc.stop();
  for (auto& t : impl_->threads)
    if (t.joinable()) t.join();
}

}  // namespace clearcap
