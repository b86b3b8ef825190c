// The eCaptureQ server with a real WebSocket client (Beast, in-process): a
// client that does not read has its messages dropped, counted, and is told
// with a PROCESS_LOG line; the processor side never waits.
#include "sinks/ecaptureq/ecaptureq_server.h"

#include <sys/fsuid.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <regex>
#include <thread>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <gtest/gtest.h>

#include "ecaptureq.pb.h"
#include "test_record.h"

namespace clearcap {
namespace {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;

uint16_t port_of(const std::string& url) {
  std::smatch m;
  EXPECT_TRUE(std::regex_search(url, m, std::regex(":(\\d+)/")));
  return static_cast<uint16_t>(std::stoi(m[1]));
}

template <class Pred>
bool wait_until(Pred p, std::chrono::seconds limit = std::chrono::seconds(20)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!p()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

TEST(EcaptureqServer, SlowClientDropsAreCountedAndTold) {
  EcaptureqServer::Options o;
  o.url.host = "127.0.0.1";
  o.client_queue_messages = 8;
  o.heartbeat = std::chrono::hours(1);
  auto server = EcaptureqServer::start(o);
  ASSERT_TRUE(server) << server.error().message;
  auto& srv = **server;

  net::io_context ioc;
  tcp::socket sock(ioc);
  sock.open(tcp::v4());
  // A small receive window: the server's socket fills after a few messages.
  sock.set_option(net::socket_base::receive_buffer_size(4096));
  sock.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port_of(srv.url())));
  websocket::stream<tcp::socket> ws(std::move(sock));
  ws.handshake("127.0.0.1", "/");
  ASSERT_TRUE(wait_until([&] { return srv.clients() == 1; }));

  test::TestRecord rec;
  rec.ipv4("127.0.0.1", 1, "127.0.0.1", 2).with_payload(std::string(16000, 'x'));
  Event ev = rec.event();
  constexpr int kEvents = 600;
  for (int i = 0; i < kEvents; ++i) {
    srv.write(ev);  // the processor's call: must return at once
    // Keep the hand-over pool from filling: this test is about the client queue.
    if (i % 50 == 49) {
      ASSERT_TRUE(wait_until([&] { return srv.pending() == 0; }));
    }
  }
  srv.flush();
  ASSERT_TRUE(wait_until([&] { return srv.pending() == 0; }));
  std::vector<SinkStats> stats;
  srv.collect_stats(stats);
  ASSERT_EQ(stats.size(), 2u);
  EXPECT_EQ(stats[0].dropped_events, 0u);  // the hand-over lost nothing
  const uint64_t dropped = stats[1].dropped_events;
  EXPECT_GT(dropped, 0u) << "the client queue never overflowed";
  EXPECT_GE(stats[1].dropped_bytes, dropped * rec.payload.size());

  // Now read: every event is either received or counted, and the client was
  // told how many it missed.
  auto reader = std::async(std::launch::async, [&] {
    uint64_t events = 0, told = 0;
    bool heartbeat = false;
    while (events + dropped < static_cast<uint64_t>(kEvents) || told < dropped) {
      beast::flat_buffer b;
      ws.read(b);
      ecaptureq::LogEntry e;
      const auto data = b.cdata();
      if (!e.ParseFromArray(data.data(), static_cast<int>(data.size()))) throw std::runtime_error("undecodable");
      if (e.has_event_payload()) ++events;
      if (e.has_heartbeat_payload()) heartbeat = true;
      if (e.has_run_log()) {
        std::smatch m;
        std::string line = e.run_log();
        if (std::regex_search(line, m, std::regex("\\((\\d+) in total\\)"))) told = std::stoull(m[1]);
      }
    }
    return std::make_tuple(events, told, heartbeat);
  });
  if (reader.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
    ::shutdown(ws.next_layer().native_handle(), SHUT_RDWR);
    reader.wait();
    FAIL() << "the client did not receive every event or the drop notice";
  }
  auto [events, told, heartbeat] = reader.get();
  EXPECT_TRUE(heartbeat);
  EXPECT_EQ(events + dropped, static_cast<uint64_t>(kEvents));
  EXPECT_EQ(told, dropped);
  srv.stop();
}

// A raw upgrade request to 127.0.0.1:port; returns the status the server
// answered (0: no answer). With `as_uid`, the socket belongs to that user:
// a socket's owner is the fsuid of the thread that created it, and
// setfsuid() changes only the calling thread.
unsigned try_handshake(uint16_t port, const std::string& target, const std::string& auth, const std::string& host,
                       const std::string& origin, int as_uid = -1) {
  namespace bhttp = beast::http;
  net::io_context ioc;
  tcp::socket sock(ioc);
  if (as_uid >= 0) {
    setfsuid(static_cast<uid_t>(as_uid));
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    setfsuid(0);
    sock.assign(tcp::v4(), fd);
  }
  sock.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  bhttp::request<bhttp::empty_body> req(bhttp::verb::get, target, 11);
  if (!host.empty()) req.set(bhttp::field::host, host);
  req.set(bhttp::field::upgrade, "websocket");
  req.set(bhttp::field::connection, "Upgrade");
  req.set(bhttp::field::sec_websocket_key, "dGhlIHNhbXBsZSBub25jZQ==");
  req.set(bhttp::field::sec_websocket_version, "13");
  if (!origin.empty()) req.set(bhttp::field::origin, origin);
  if (!auth.empty()) req.set(bhttp::field::authorization, auth);
  beast::error_code ec;
  bhttp::write(sock, req, ec);
  beast::flat_buffer b;
  bhttp::response_parser<bhttp::empty_body> res;
  res.skip(true);  // 101 has no body; errors carry a short one we do not need
  bhttp::read_header(sock, b, res, ec);
  return ec ? 0u : res.get().result_int();
}

TEST(EcaptureqServer, RefusesWrongPathMissingTokenAndCrossOrigin) {
  EcaptureqServer::Options o;
  o.url.host = "127.0.0.1";
  o.token = "s3cret-token";
  auto server = EcaptureqServer::start(o);
  ASSERT_TRUE(server) << server.error().message;
  const uint16_t port = port_of((*server)->url());
  const std::string self = "127.0.0.1:" + std::to_string(port);
  EXPECT_EQ(try_handshake(port, "/", "", self, ""), 401u);
  EXPECT_EQ(try_handshake(port, "/", "Bearer wrong", self, ""), 401u);
  EXPECT_EQ(try_handshake(port, "/other", "Bearer s3cret-token", self, ""), 404u);
  EXPECT_EQ(try_handshake(port, "/", "Bearer s3cret-token", self, ""), 101u);
  EXPECT_EQ(try_handshake(port, "/?token=s3cret-token", "", self, ""), 101u);
  // A web page cannot stream the capture, token or not.
  EXPECT_EQ(try_handshake(port, "/?token=s3cret-token", "", self, "http://example.com"), 403u);
  EXPECT_EQ(try_handshake(port, "/", "Bearer s3cret-token", self, "null"), 403u);
  EXPECT_EQ(try_handshake(port, "/", "Bearer s3cret-token", self, "http://" + self), 101u);
}

TEST(EcaptureqServer, WithoutTokenOnlyAllowedLocalUsersAndTheRightHost) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to connect as another user";
  EcaptureqServer::Options o;
  o.url.host = "127.0.0.1";
  auto server = EcaptureqServer::start(o);
  ASSERT_TRUE(server) << server.error().message;
  const uint16_t port = port_of((*server)->url());
  const std::string self = "127.0.0.1:" + std::to_string(port);
  EXPECT_EQ(try_handshake(port, "/", "", self, ""), 101u) << "root";
  EXPECT_EQ(try_handshake(port, "/", "", "localhost:" + std::to_string(port), ""), 101u);
  EXPECT_EQ(try_handshake(port, "/", "", "evil.example:" + std::to_string(port), ""), 403u) << "DNS rebinding";
  EXPECT_EQ(try_handshake(port, "/", "", self, "https://evil.example"), 403u);
  // A socket of uid 65534 (nobody): refused right after accept.
  EXPECT_EQ(try_handshake(port, "/", "", self, "", 65534), 403u);
  EXPECT_EQ((*server)->refused(), 1u);
  (*server)->stop();
  o.allow_uids = {65534};
  auto widened = EcaptureqServer::start(o);
  ASSERT_TRUE(widened) << widened.error().message;
  const uint16_t port2 = port_of((*widened)->url());
  EXPECT_EQ(try_handshake(port2, "/", "", "127.0.0.1:" + std::to_string(port2), "", 65534), 101u)
      << "--allow-uid 65534 lets nobody in";
}

TEST(EcaptureqServer, BeyondLoopbackNeedsAToken) {
  EcaptureqServer::Options o;
  o.url.host = "0.0.0.0";
  auto server = EcaptureqServer::start(o);
  ASSERT_FALSE(server);
  EXPECT_NE(server.error().message.find("needs a token"), std::string::npos) << server.error().message;
  o.token = "s3cret-token";
  EXPECT_TRUE(EcaptureqServer::start(o));
}

TEST(EcaptureqServer, BindErrorNamesTheAddress) {
  EcaptureqServer::Options o;
  o.url.host = "127.0.0.1";
  auto first = EcaptureqServer::start(o);
  ASSERT_TRUE(first);
  o.url.port = port_of((*first)->url());
  auto second = EcaptureqServer::start(o);
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message.find(std::to_string(o.url.port)), std::string::npos) << second.error().message;
}

}  // namespace
}  // namespace clearcap
