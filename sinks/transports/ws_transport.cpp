#include "sinks/transports/ws_transport.h"

#include <chrono>
#include <optional>

#include <sys/socket.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <fmt/format.h>
#include <google/protobuf/io/coded_stream.h>

namespace clearcap {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

struct WsTransport::Impl {
  asio::io_context ioc;
  std::optional<websocket::stream<tcp::socket>> ws;
  beast::flat_buffer rbuf;
  bool open = false;
  std::atomic<int> native{-1};  // for interrupt() from another thread

  void start_read() {
    ws->async_read(rbuf, [this](beast::error_code ec, size_t) {
      if (ec) {
        open = false;  // closed by the peer, or a broken connection
        return;
      }
      rbuf.consume(rbuf.size());  // frames from the server are read and ignored
      start_read();
    });
  }
};

WsTransport::WsTransport(std::string host, uint16_t port, std::string path, bool binary, bool strip)
    : impl_(std::make_unique<Impl>()),
      host_(std::move(host)),
      path_(std::move(path)),
      port_(port),
      binary_(binary),
      strip_(strip) {}

WsTransport::~WsTransport() { close(); }

bool WsTransport::connected() const { return impl_->open; }

Result<void> WsTransport::connect() {
  close();
  auto& m = *impl_;
  m.ioc.restart();
  m.ws.emplace(m.ioc);
  beast::error_code ec;
  bool done = false;
  const std::string url = fmt::format("ws://{}:{}{}", host_, port_, path_);
  tcp::resolver resolver(m.ioc);
  auto endpoints = resolver.resolve(host_, std::to_string(port_), ec);
  if (ec) return make_error(fmt::format("{}: cannot resolve {}: {}", url, host_, ec.message()), EHOSTUNREACH);
  // Connect and upgrade asynchronously so that a deadline applies: a peer
  // that accepts but never answers the upgrade must not hold the writer.
  asio::async_connect(m.ws->next_layer(), endpoints, [&](beast::error_code e, const tcp::endpoint&) {
    if (e) {
      ec = e;
      done = true;
      return;
    }
    m.ws->set_option(websocket::stream_base::decorator(
        [](websocket::request_type& req) { req.set(beast::http::field::user_agent, "clearcap"); }));
    m.ws->async_handshake(fmt::format("{}:{}", host_, port_), path_, [&](beast::error_code e2) {
      ec = e2;
      done = true;
    });
  });
  m.ioc.run_for(std::chrono::seconds(3));
  if (!done || ec) {
    const std::string why = done ? ec.message() : "no answer within 3 s";
    const int err = !done ? ETIMEDOUT : ec == asio::error::connection_refused ? ECONNREFUSED : ECONNABORTED;
    close();
    return make_error(fmt::format("{}: cannot connect: {}", url, why), err);
  }
  m.ws->binary(binary_);
  m.native.store(m.ws->next_layer().native_handle());
  m.open = true;
  m.start_read();
  return {};
}

Result<void> WsTransport::send(std::span<const char> record) {
  auto& m = *impl_;
  poll();
  if (!m.open) {
    close();
    return make_error(fmt::format("ws://{}:{}{}: peer closed the connection", host_, port_, path_), EPIPE);
  }
  std::span<const char> body = record;
  if (strip_) {
    // Skip the varint length prefix: one message is one frame.
    google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(record.data()),
                                              static_cast<int>(record.size()));
    uint32_t len = 0;
    if (in.ReadVarint32(&len)) body = record.subspan(static_cast<size_t>(in.CurrentPosition()));
  }
  beast::error_code ec;
  bool done = false;
  m.ws->async_write(asio::buffer(body.data(), body.size()), [&](beast::error_code e, size_t) {
    ec = e;
    done = true;
  });
  m.ioc.restart();
  while (!done && !m.ioc.stopped()) m.ioc.run_one();
  if (!done || ec) {
    const std::string why = done ? ec.message() : "interrupted";
    close();
    return make_error(fmt::format("ws://{}:{}{}: send failed: {}", host_, port_, path_, why), EPIPE);
  }
  return {};
}

void WsTransport::poll() {
  auto& m = *impl_;
  if (!m.ws) return;
  m.ioc.restart();
  m.ioc.poll();
}

void WsTransport::close() {
  auto& m = *impl_;
  m.open = false;
  m.native.store(-1);
  if (m.ws) {
    beast::error_code ec;
    // No close handshake: it could block on a dead peer; the TCP close is
    // enough for the server to notice.
    m.ws->next_layer().shutdown(tcp::socket::shutdown_both, ec);
    m.ws->next_layer().close(ec);
    // Let the pending read see its cancellation before the stream goes.
    m.ioc.restart();
    m.ioc.poll();
    m.ws.reset();
  }
}

void WsTransport::interrupt() {
  const int fd = impl_->native.load();
  if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
}

}  // namespace clearcap
