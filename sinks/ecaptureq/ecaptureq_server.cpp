#include "sinks/ecaptureq/ecaptureq_server.h"

#include "sinks/encoders/http_render.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <ctime>
#include <deque>
#include <exception>
#include <optional>
#include <set>
#include <thread>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <fmt/format.h>
#include <readerwriterqueue/readerwriterqueue.h>

#include "core/peer_access.h"
#include "core/thread_setup.h"
#include "sinks/ecaptureq/ecaptureq_convert.h"
#include "sinks/encoders/format_util.h"

namespace clearcap {

namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Message = std::shared_ptr<const std::string>;

Result<WsUrl> parse_ws_url(std::string_view url) {
  constexpr std::string_view kScheme = "ws://";
  auto bad = [&](std::string_view why) {
    return make_error(fmt::format("--ecaptureq {}: {}; expected ws://HOST:PORT/ such as ws://127.0.0.1:28257/", url, why),
                      EINVAL);
  };
  if (!url.starts_with(kScheme)) return bad(url.starts_with("wss://") ? "wss:// (TLS) is not supported" : "not a ws:// URL");
  std::string_view rest = url.substr(kScheme.size());
  size_t slash = rest.find('/');
  std::string_view hostport = rest.substr(0, slash);
  WsUrl u;
  u.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (u.path.find_first_of("?#") != std::string::npos) return bad("the path must not carry a query");
  std::string_view host, port;
  if (hostport.starts_with('[')) {
    size_t close = hostport.find(']');
    if (close == std::string_view::npos) return bad("unterminated [IPv6] address");
    host = hostport.substr(1, close - 1);
    std::string_view after = hostport.substr(close + 1);
    if (!after.starts_with(':')) return bad("no port");
    port = after.substr(1);
  } else {
    size_t colon = hostport.rfind(':');
    if (colon == std::string_view::npos) return bad("no port");
    host = hostport.substr(0, colon);
    port = hostport.substr(colon + 1);
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value > 65535)
    return bad(fmt::format("'{}' is not a port number", port));
  u.port = static_cast<uint16_t>(value);
  u.host = host.empty() ? "127.0.0.1" : std::string(host);
  return u;
}

namespace {

std::string_view sv(beast::string_view s) { return {s.data(), s.size()}; }

Message serialize(const ecaptureq::LogEntry& e) { return std::make_shared<const std::string>(e.SerializeAsString()); }

std::string_view query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view kv = query.substr(0, amp);
    if (kv.size() > name.size() && kv.starts_with(name) && kv[name.size()] == '=') return kv.substr(name.size() + 1);
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

}  // namespace

class Session;

// One event handed from the processor to the io thread: the Event's views
// re-pointed into storage of its own (the original points into a ring batch
// that is recycled after the call).
struct EventSlot {
  Event ev;
  uint8_t saddr[CC_ADDR_LEN];
  uint8_t daddr[CC_ADDR_LEN];
  char comm[CC_COMM_LEN];
  std::string payload;  // the bytes shown under FormatOptions (truncate applied)
  bool hex = false;     // FormatOptions::hex in force when it was filled
};

class EcaptureqServer::Impl {
 public:
  explicit Impl(Options o)
      : opts(std::move(o)), full(opts.pool_slots), free_slots(opts.pool_slots), format(opts.format) {}

  void accept_next();
  void admit(tcp::socket socket);
  void wait_wake();
  void drain();
  void broadcast(const Message& m);
  void remove(const std::shared_ptr<Session>& s);
  void begin_stop(std::chrono::milliseconds grace);
  // Processor thread: wakes the io thread if it sleeps.
  void notify() {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (armed.load(std::memory_order_relaxed) && armed.exchange(false)) {
      uint64_t one = 1;
      [[maybe_unused]] ssize_t n = ::write(efd, &one, sizeof(one));
    }
  }

  Options opts;
  // Outlives the sessions (their tickets), which may die with the io_context.
  std::optional<PeerGate> gate;  // set once bound
  // Declared first, destroyed last: sessions and pending handlers go first.
  net::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  net::steady_timer backoff{ioc};
  std::atomic<uint64_t> accept_errors{0};
  int efd = -1;
  net::posix::stream_descriptor wake{ioc};
  uint64_t wake_buf = 0;
  net::steady_timer grace_timer{ioc};
  std::jthread thread;

  // Processor -> io thread: slots travel through `full` and come back
  // through `free_slots` (each queue: one producer, one consumer).
  std::vector<std::unique_ptr<EventSlot>> slots;
  moodycamel::ReaderWriterQueue<EventSlot*> full;
  moodycamel::ReaderWriterQueue<EventSlot*> free_slots;
  std::atomic<bool> armed{false};  // the io thread sleeps on the eventfd
  FormatOptions format;            // processor thread
  ecaptureq::LogEntry entry;       // io thread: reused, keeps capacities

  // io thread only
  std::deque<Message> history;
  std::set<std::shared_ptr<Session>> sessions;
  bool stopping = false;

  // any thread (relaxed counters)
  std::atomic<uint64_t> pool_dropped{0}, pool_dropped_bytes{0};
  std::atomic<uint64_t> client_dropped{0}, client_dropped_bytes{0};
  std::atomic<uint64_t> internal_errors{0};
  std::atomic<size_t> nclients{0};
  std::atomic<bool> stopped{false};
  std::string url;
};

// One client connection. io thread only.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(EcaptureqServer::Impl& server, tcp::socket&& socket, std::unique_ptr<ConnectionLimits::Ticket> ticket)
      : server_(server), stream_(std::move(socket)), heartbeat_(server.ioc), ticket_(std::move(ticket)) {}

  void start() {
    // The upgrade request must arrive soon and be small.
    stream_.expires_after(std::chrono::seconds(10));
    parser_.emplace();
    parser_->header_limit(8 * 1024);
    parser_->body_limit(4 * 1024);
    bhttp::async_read(stream_, buf_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->on_request(ec); });
  }

  void deliver(const Message& m) {
    if (closed_ || !ws_) return;
    if (queue_.size() >= server_.opts.client_queue_messages ||
        queued_bytes_ + m->size() > server_.opts.client_queue_bytes) {
      ++dropped_;
      server_.client_dropped.fetch_add(1, std::memory_order_relaxed);
      server_.client_dropped_bytes.fetch_add(m->size(), std::memory_order_relaxed);
      return;
    }
    queue_.push_back(m);
    queued_bytes_ += m->size();
    if (!writing_) write_next();
  }

  void shutdown() {
    closing_ = true;
    if (!writing_) write_next();
  }

 private:
  void on_request(beast::error_code ec) {
    if (ec) return;  // timeout, garbage, too large: just drop the connection
    req_ = parser_->release();
    const std::string_view target = sv(req_.target());
    const size_t q = target.find('?');
    const std::string_view path = target.substr(0, q);
    const std::string_view query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
    if (path != server_.opts.url.path)
      return reply(bhttp::status::not_found, fmt::format("no eCaptureQ stream at {}; use {}", path, server_.opts.url.path));
    if (!websocket::is_upgrade(req_))
      return reply(bhttp::status::bad_request, "this is clearcap's eCaptureQ WebSocket stream: connect with a WebSocket client");
    if (auto why = server_.gate->access().check_headers(sv(req_[bhttp::field::host]), sv(req_[bhttp::field::origin])))
      return reply(bhttp::status::forbidden, *why);
    if (!server_.gate->access().token_ok(sv(req_[bhttp::field::authorization]), query_param(query, "token")))
      return reply(bhttp::status::unauthorized, "a token is required: Authorization: Bearer <token> or ?token=<token>");
    stream_.expires_never();
    ws_.emplace(std::move(stream_));
    ws_->set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_->set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(bhttp::field::server, "clearcap"); }));
    // Client frames are read and ignored: keep them small.
    ws_->read_message_max(64 * 1024);
    ws_->binary(true);
    ws_->async_accept(req_, [self = shared_from_this()](beast::error_code ec) { self->on_accept(ec); });
  }

  void reply(bhttp::status status, std::string text) {
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>(status, req_.version());
    res->set(bhttp::field::server, "clearcap");
    res->set(bhttp::field::content_type, "text/plain");
    res->keep_alive(false);
    res->body() = std::move(text) + "\n";
    res->prepare_payload();
    bhttp::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code, size_t) {
      beast::error_code ignored;
      self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    });
  }

  void on_accept(beast::error_code ec) {
    if (ec) return;
    if (server_.stopping) return;
    server_.sessions.insert(shared_from_this());
    server_.nclients.store(server_.sessions.size(), std::memory_order_relaxed);
    send_heartbeat();  // on connect, then every interval
    for (const Message& m : server_.history) deliver(m);
    arm_heartbeat();
    read_next();
  }

  void read_next() {
    ws_->async_read(rbuf_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->close();
      self->rbuf_.consume(self->rbuf_.size());
      self->read_next();
    });
  }

  void send_heartbeat() {
    ecaptureq::LogEntry e;
    fill_heartbeat(++heartbeats_, static_cast<int64_t>(std::time(nullptr)), e);
    deliver(serialize(e));
  }

  void arm_heartbeat() {
    heartbeat_.expires_after(server_.opts.heartbeat);
    heartbeat_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->closed_) return;
      self->send_heartbeat();
      self->arm_heartbeat();
    });
  }

  void write_next() {
    if (closed_) return;
    if (dropped_ > reported_ && queue_.size() < server_.opts.client_queue_messages) {
      // Tell the client what it missed, ahead of what follows the gap.
      ecaptureq::LogEntry e;
      fill_log_line(fmt::format("clearcap: {} messages were dropped for this client because it reads too slowly "
                               "({} in total)",
                               dropped_ - reported_, dropped_),
                   e);
      reported_ = dropped_;
      Message m = serialize(e);
      queued_bytes_ += m->size();
      queue_.push_front(std::move(m));
    }
    if (queue_.empty()) {
      writing_ = false;
      if (closing_ && !close_sent_) {
        close_sent_ = true;
        ws_->async_close(websocket::close_reason(websocket::close_code::going_away, "clearcap is stopping"),
                         [self = shared_from_this()](beast::error_code) { self->close(); });
      }
      return;
    }
    writing_ = true;
    ws_->async_write(net::buffer(*queue_.front()), [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->close();
      self->queued_bytes_ -= self->queue_.front()->size();
      self->queue_.pop_front();
      self->write_next();
    });
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    heartbeat_.cancel();
    queue_.clear();
    queued_bytes_ = 0;
    if (ws_) {
      beast::error_code ignored;
      beast::get_lowest_layer(*ws_).socket().close(ignored);
    }
    server_.remove(shared_from_this());
  }

  EcaptureqServer::Impl& server_;
  beast::tcp_stream stream_;  // until the upgrade
  std::optional<websocket::stream<beast::tcp_stream>> ws_;
  beast::flat_buffer buf_;
  beast::flat_buffer rbuf_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  bhttp::request<bhttp::string_body> req_;
  net::steady_timer heartbeat_;
  std::unique_ptr<ConnectionLimits::Ticket> ticket_;
  std::deque<Message> queue_;
  size_t queued_bytes_ = 0;
  bool writing_ = false;
  bool closing_ = false;
  bool close_sent_ = false;
  bool closed_ = false;
  int64_t heartbeats_ = 0;
  uint64_t dropped_ = 0;
  uint64_t reported_ = 0;
};

void EcaptureqServer::Impl::accept_next() {
  acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
    if (ec) {
      // EMFILE and the like: pause instead of spinning; keep serving the
      // clients we have.
      accept_errors.fetch_add(1, std::memory_order_relaxed);
      backoff.expires_after(std::chrono::milliseconds(100));
      backoff.async_wait([this](beast::error_code e) {
        if (!e && !stopping) accept_next();
      });
      return;
    }
    admit(std::move(socket));
    accept_next();
  });
}

namespace {
void refuse(tcp::socket& s, unsigned status, const std::string& text) {
  send_refusal(s.native_handle(), status, "text/plain", text + "\n");
  beast::error_code ignored;
  s.close(ignored);
}
}  // namespace

void EcaptureqServer::Impl::admit(tcp::socket socket) {
  beast::error_code e1, e2;
  const auto ours = socket.local_endpoint(e1), peer = socket.remote_endpoint(e2);
  if (e1 || e2) return;
  auto entry = gate->admit(ours.data(), peer.data());
  if (!entry.ticket) return refuse(socket, entry.status, entry.why);
  std::make_shared<Session>(*this, std::move(socket), std::move(entry.ticket))->start();
}

void EcaptureqServer::Impl::wait_wake() {
  for (;;) {
    drain();
    armed.store(true);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (full.peek() == nullptr) break;
    armed.store(false);
  }
  wake.async_read_some(net::buffer(&wake_buf, sizeof(wake_buf)), [this](beast::error_code ec, size_t) {
    if (ec) return;
    armed.store(false);
    wait_wake();
  });
}

void EcaptureqServer::Impl::drain() {
  EventSlot* slot;
  while (full.try_dequeue(slot)) {
    // Truncation was applied when the slot was filled; hex is applied here.
    fill_log_entry(slot->ev, FormatOptions{slot->hex, 0}, entry);
    Message m = serialize(entry);  // one buffer shared by every client and the history
    free_slots.try_enqueue(slot);
    broadcast(m);
  }
}

void EcaptureqServer::Impl::broadcast(const Message& m) {
  history.push_back(m);
  while (history.size() > opts.history) history.pop_front();
  for (const auto& s : sessions) s->deliver(m);
}

void EcaptureqServer::Impl::remove(const std::shared_ptr<Session>& s) {
  sessions.erase(s);
  nclients.store(sessions.size(), std::memory_order_relaxed);
  if (stopping && sessions.empty()) ioc.stop();
}

void EcaptureqServer::Impl::begin_stop(std::chrono::milliseconds grace) {
  drain();  // the processor has delivered its last event
  stopping = true;
  beast::error_code ignored;
  acceptor.close(ignored);
  backoff.cancel();
  wake.close(ignored);
  if (sessions.empty()) return ioc.stop();
  grace_timer.expires_after(grace);
  grace_timer.async_wait([this](beast::error_code ec) {
    if (!ec) ioc.stop();
  });
  auto copy = sessions;
  for (const auto& s : copy) s->shutdown();
}

EcaptureqServer::EcaptureqServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) { url_ = impl_->url; }

Result<std::unique_ptr<EcaptureqServer>> EcaptureqServer::start(Options opts) {
  auto impl = std::make_unique<Impl>(std::move(opts));
  auto& d = *impl;
  const WsUrl& u = d.opts.url;
  beast::error_code ec;
  tcp::endpoint ep;
  auto addr = net::ip::make_address(u.host, ec);
  if (!ec) {
    ep = tcp::endpoint(addr, u.port);
  } else {
    tcp::resolver resolver(d.ioc);
    auto results = resolver.resolve(u.host, std::to_string(u.port), ec);
    if (ec || results.empty())
      return make_error(fmt::format("--ecaptureq: cannot resolve host '{}': {}", u.host, ec.message()), EINVAL);
    ep = results.begin()->endpoint();
  }
  auto fail = [&](std::string_view what) {
    return make_error(fmt::format("--ecaptureq: cannot {} {}:{}: {} (choose another address or port)", what,
                                  ep.address().to_string(), ep.port(), ec.message()),
                      ec.value());
  };
  d.acceptor.open(ep.protocol(), ec);
  if (ec) return fail("open a socket for");
  d.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  d.acceptor.bind(ep, ec);
  if (ec) return fail("listen on");
  d.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen on");
  auto bound = d.acceptor.local_endpoint(ec);
  auto access = PeerAccess::create(PeerAccess::Options{"--ecaptureq", d.opts.token, d.opts.allow_uids,
                                                       bound.address().to_string(), bound.port()});
  if (!access) return tl::unexpected(access.error());
  d.gate.emplace(std::move(*access), d.opts.max_connections, d.opts.max_per_peer);
  std::string host = bound.address().is_v6() ? "[" + bound.address().to_string() + "]" : bound.address().to_string();
  d.url = fmt::format("ws://{}:{}{}", host, bound.port(), u.path);

  d.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (d.efd < 0) return make_error(fmt::format("--ecaptureq: eventfd: {}", std::strerror(errno)), errno);
  d.wake.assign(d.efd, ec);
  if (ec) return make_error(fmt::format("--ecaptureq: eventfd: {}", ec.message()), ec.value());
  for (size_t i = 0; i < d.opts.pool_slots; ++i) {
    d.slots.push_back(std::make_unique<EventSlot>());
    d.free_slots.try_enqueue(d.slots.back().get());
  }
  d.accept_next();
  d.wait_wake();
  d.thread = std::jthread([&d] {
    name_this_thread("cc-ecaptureq");
    // A handler that throws (bad_alloc) must not end the server: count it
    // and keep serving.
    for (;;) {
      try {
        d.ioc.run();
        return;
      } catch (const std::exception&) {
        d.internal_errors.fetch_add(1, std::memory_order_relaxed);
      }
    }
  });
  return std::unique_ptr<EcaptureqServer>(new EcaptureqServer(std::move(impl)));
}

EcaptureqServer::~EcaptureqServer() { stop(); }

void EcaptureqServer::stop(std::chrono::milliseconds grace) {
  if (impl_->stopped.exchange(true)) return;
  net::post(impl_->ioc, [d = impl_.get(), grace] { d->begin_stop(grace); });
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->sessions.clear();  // the io thread is gone
}

void EcaptureqServer::write(const Event& ev) {
  auto& d = *impl_;
  EventSlot* slot;
  if (!d.free_slots.try_dequeue(slot)) {
    d.pool_dropped.fetch_add(1, std::memory_order_relaxed);
    d.pool_dropped_bytes.fetch_add(ev.payload.size(), std::memory_order_relaxed);
    return;
  }
  // Copy, do not encode: the io thread serializes (bench/bench_ecaptureq.cpp:
  // a copy costs the processor a fraction of a protobuf serialization).
  Event& e = slot->ev;
  e = ev;
  if (ev.saddr) e.saddr = static_cast<const uint8_t*>(std::memcpy(slot->saddr, ev.saddr, CC_ADDR_LEN));
  if (ev.daddr) e.daddr = static_cast<const uint8_t*>(std::memcpy(slot->daddr, ev.daddr, CC_ADDR_LEN));
  const size_t comm_len = std::min(ev.comm.size(), sizeof(slot->comm));
  std::memcpy(slot->comm, ev.comm.data(), comm_len);
  e.comm = std::string_view(slot->comm, comm_len);
  slot->hex = d.format.hex;
  if (ev.http || ev.exchange) {
    // A parsed message or an exchange lives only during this call: it is
    // rendered here, as the text the spec's payload holds for parsed HTTP.
    slot->payload.clear();
    render_http_event(ev, d.format.hex, slot->payload);
    e.http = nullptr;
    e.exchange = nullptr;
    slot->hex = false;
  } else {
    const ShownPayload shown = shown_payload(ev, d.format);
    slot->payload.assign(as_chars(shown.bytes));
  }
  e.payload = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(slot->payload.data()), slot->payload.size());
  d.full.try_enqueue(slot);  // cannot fail: the queue holds every slot
  d.notify();
}

void EcaptureqServer::flush() { impl_->notify(); }

void EcaptureqServer::set_format(const FormatOptions& opts) { impl_->format = opts; }

void EcaptureqServer::collect_stats(std::vector<SinkStats>& out) const {
  SinkStats server;
  server.name = url_;
  server.dropped_events = impl_->pool_dropped.load(std::memory_order_relaxed);
  server.dropped_bytes = impl_->pool_dropped_bytes.load(std::memory_order_relaxed);
  out.push_back(server);
  SinkStats clients;
  clients.name = url_ + " clients";
  clients.dropped_events = impl_->client_dropped.load(std::memory_order_relaxed);
  clients.dropped_bytes = impl_->client_dropped_bytes.load(std::memory_order_relaxed);
  out.push_back(clients);
}

void EcaptureqServer::post_log(std::string line) {
  if (impl_->stopped.load()) return;
  net::post(impl_->ioc, [d = impl_.get(), line = std::move(line)] {
    ecaptureq::LogEntry e;
    fill_log_line(line, e);
    d->broadcast(serialize(e));
  });
}

uint64_t EcaptureqServer::refused() const { return impl_->gate ? impl_->gate->refused() : 0; }
uint64_t EcaptureqServer::accept_errors() const { return impl_->accept_errors.load(std::memory_order_relaxed); }

size_t EcaptureqServer::clients() const { return impl_->nclients.load(std::memory_order_relaxed); }

size_t EcaptureqServer::pending() const { return impl_->full.size_approx(); }

}  // namespace clearcap
