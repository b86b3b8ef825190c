// The protocol stage between the processor and the outputs: detection,
// kinds of data events, message and exchange events, pairing (order on
// HTTP/1, stream id on HTTP/2), latency, gaps, bounds, summary mode.
#include "proto/http/stage.h"

#include <zlib.h>

#include <gtest/gtest.h>

#include "tests/unit/http2_wire.h"
#include "tests/unit/test_record.h"

namespace clearcap::http {
namespace {

using test::append;
using test::Bytes;
using test::h2_bytes;
using test::h2_frame;
using test::HpackEncoder;
namespace h2 = clearcap::http2;

// What the next sink saw, copied (the stage's messages live only during
// the call).
struct Seen {
  uint16_t type = 0;
  PayloadKind kind = PayloadKind::kUnset;
  bool consumed = false;
  Direction dir = Direction::kWrite;
  uint8_t source = 0;
  uint64_t conn = 0;
  uint64_t boot_ns = 0;
  std::optional<Message> msg;
  std::optional<Message> req, resp;
  int64_t wait_ns = -1, total_ns = -1;
};

class Collect : public EventSink {
 public:
  std::vector<Seen> seen;
  void write(const Event& ev) override {
    Seen s;
    s.type = ev.record_type;
    s.kind = ev.kind;
    s.consumed = ev.consumed;
    s.dir = ev.direction;
    s.source = ev.source;
    s.conn = ev.conn_id;
    s.boot_ns = ev.boot_ns;
    if (ev.http) s.msg = *ev.http;
    if (ev.exchange) {
      if (ev.exchange->request) s.req = *ev.exchange->request;
      if (ev.exchange->response) s.resp = *ev.exchange->response;
      s.wait_ns = ev.exchange->wait_ns;
      s.total_ns = ev.exchange->total_ns;
    }
    seen.push_back(std::move(s));
  }
  void flush() override {}
  void collect_stats(std::vector<SinkStats>&) const override {}

  std::vector<Seen> of(uint16_t type) const {
    std::vector<Seen> out;
    for (const auto& s : seen)
      if (s.type == type) out.push_back(s);
    return out;
  }
};

// One data event of connection `conn`, direction `dir`, at offset `seq`.
void send(Stage& st, uint64_t conn, uint8_t dir, uint64_t seq, std::string_view bytes, uint64_t ts) {
  test::TestRecord r;
  r.raw.conn_id = conn;
  r.raw.direction = dir;
  r.raw.source = dir == CC_DIR_READ ? CC_SRC_SSL_READ : CC_SRC_SSL_WRITE;
  r.raw.seq = seq;
  r.raw.ts_ns = ts;
  r.ipv4("127.0.0.1", 40000, "127.0.0.1", 443);
  r.with_payload(bytes);
  Event ev = r.event(ts + 1000);
  st.write(ev);
}

std::string as_string(const Bytes& b) { return std::string(b.begin(), b.end()); }

std::string gzip(std::string_view in) {
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out(in.size() + 64, '\0');
  z.next_in = (Bytef*)in.data();
  z.avail_in = in.size();
  z.next_out = (Bytef*)out.data();
  z.avail_out = out.size();
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

TEST(HttpStage, Http1RequestResponsePairedWithLatencyAndDecodedBody) {
  Collect c;
  Stage st(c, {});
  const std::string body = "hello, decoded world";
  const std::string gz = gzip(body);
  const std::string req = "GET /a?b=1 HTTP/1.1\r\nHost: example.test\r\n\r\n";
  const std::string resp = "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: " +
                           std::to_string(gz.size()) + "\r\n\r\n" + gz;
  send(st, 7, CC_DIR_WRITE, 0, req, 1'000'000);
  send(st, 7, CC_DIR_READ, 0, resp.substr(0, 30), 3'000'000);  // first byte 2 ms after the request
  send(st, 7, CC_DIR_READ, 30, resp.substr(30), 5'000'000);

  auto data = c.of(CC_REC_DATA);
  ASSERT_EQ(data.size(), 3u);
  EXPECT_EQ(data[0].kind, PayloadKind::kHttp1Request);
  EXPECT_EQ(data[1].kind, PayloadKind::kHttp1Response);
  EXPECT_TRUE(data[0].consumed);
  EXPECT_TRUE(data[2].consumed);

  auto msgs = c.of(kRecHttpMessage);
  ASSERT_EQ(msgs.size(), 2u);
  EXPECT_EQ(msgs[0].kind, PayloadKind::kHttp1Request);
  EXPECT_EQ(msgs[0].msg->path, "/a?b=1");
  EXPECT_EQ(msgs[0].dir, Direction::kWrite);
  EXPECT_EQ(msgs[0].source, CC_SRC_SSL_WRITE);  // the function of the message's own direction
  EXPECT_EQ(msgs[1].source, CC_SRC_SSL_READ);
  EXPECT_EQ(msgs[1].kind, PayloadKind::kHttp1Response);
  EXPECT_EQ(msgs[1].dir, Direction::kRead);
  EXPECT_EQ(msgs[1].msg->status, 200);
  EXPECT_EQ(msgs[1].msg->shown.status, DecodedBody::Status::kDecoded);
  EXPECT_EQ(msgs[1].msg->shown.text, body);

  auto xs = c.of(kRecHttpExchange);
  ASSERT_EQ(xs.size(), 1u);
  ASSERT_TRUE(xs[0].req && xs[0].resp);
  EXPECT_EQ(xs[0].req->path, "/a?b=1");
  EXPECT_EQ(xs[0].resp->status, 200);
  EXPECT_EQ(xs[0].wait_ns, 2'000'000);
  EXPECT_EQ(xs[0].total_ns, 4'000'000);
  EXPECT_EQ(xs[0].kind, PayloadKind::kHttpExchange);
  EXPECT_EQ(st.counters().exchanges.load(), 1u);
  EXPECT_EQ(st.counters().unpaired.load(), 0u);
}

TEST(HttpStage, ServerSideSeesRequestsOnItsReads) {
  Collect c;
  Stage st(c, {});
  send(st, 9, CC_DIR_READ, 0, "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc", 10);
  send(st, 9, CC_DIR_WRITE, 0, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", 20);
  auto data = c.of(CC_REC_DATA);
  ASSERT_EQ(data.size(), 2u);
  EXPECT_EQ(data[0].kind, PayloadKind::kHttp1Request);
  EXPECT_EQ(data[1].kind, PayloadKind::kHttp1Response);
  auto xs = c.of(kRecHttpExchange);
  ASSERT_EQ(xs.size(), 1u);
  EXPECT_EQ(xs[0].req->method, "POST");
  EXPECT_EQ(xs[0].req->body_bytes, 3u);
  auto msgs = c.of(kRecHttpMessage);
  ASSERT_EQ(msgs.size(), 2u);
  EXPECT_EQ(msgs[0].msg->body, "abc");
  EXPECT_EQ(xs[0].resp->status, 201);
}

TEST(HttpStage, PipelinedRequestsPairInOrderAndHeadHasNoBody) {
  Collect c;
  Stage st(c, {});
  send(st, 1, CC_DIR_WRITE, 0,
       "HEAD /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\nGET /3 HTTP/1.1\r\nHost: h\r\n\r\n", 10);
  send(st, 1, CC_DIR_READ, 0,
       "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"  // HEAD: no body follows
       "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno"
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
       20);
  auto xs = c.of(kRecHttpExchange);
  ASSERT_EQ(xs.size(), 3u);
  EXPECT_EQ(xs[0].req->path, "/1");
  EXPECT_EQ(xs[0].resp->status, 200);
  EXPECT_EQ(xs[0].resp->body_bytes, 0u);
  EXPECT_EQ(xs[1].req->path, "/2");
  EXPECT_EQ(xs[1].resp->status, 404);
  EXPECT_EQ(xs[2].req->path, "/3");
  EXPECT_EQ(xs[2].resp->body, "abc");
}

TEST(HttpStage, Http2StreamsPairByStreamId) {
  Collect c;
  Stage st(c, {});
  HpackEncoder ce, se;
  Bytes client = h2_bytes(h2::kClientPreface);
  append(client, h2_frame(h2::FrameType::kSettings, 0, 0, {}));
  for (uint32_t id : {1u, 3u})
    append(client, h2_frame(h2::FrameType::kHeaders, h2::flags::kEndHeaders | h2::flags::kEndStream, id,
                            ce.block({{":method", "GET"},
                                      {":scheme", "https"},
                                      {":authority", "h2.test"},
                                      {":path", "/s" + std::to_string(id)}})));
  Bytes server = h2_frame(h2::FrameType::kSettings, 0, 0, {});
  for (uint32_t id : {3u, 1u}) {  // answered out of order
    append(server, h2_frame(h2::FrameType::kHeaders, h2::flags::kEndHeaders, id,
                            se.block({{":status", id == 1 ? "200" : "204"}})));
    append(server, h2_frame(h2::FrameType::kData, h2::flags::kEndStream, id, h2_bytes("d" + std::to_string(id))));
  }
  send(st, 5, CC_DIR_WRITE, 0, as_string(client), 100);
  send(st, 5, CC_DIR_READ, 0, as_string(server), 200);
  auto data = c.of(CC_REC_DATA);
  ASSERT_EQ(data.size(), 2u);
  EXPECT_EQ(data[0].kind, PayloadKind::kHttp2Request);
  EXPECT_EQ(data[1].kind, PayloadKind::kHttp2Response);
  EXPECT_TRUE(data[1].consumed);
  auto xs = c.of(kRecHttpExchange);
  ASSERT_EQ(xs.size(), 2u);
  EXPECT_EQ(xs[0].req->path, "/s3");
  EXPECT_EQ(xs[0].resp->status, 204);
  EXPECT_EQ(xs[1].req->path, "/s1");
  EXPECT_EQ(xs[1].resp->status, 200);
  EXPECT_EQ(xs[1].resp->body, "d1");
  EXPECT_EQ(xs[1].req->authority, "h2.test");
}

TEST(HttpStage, Http2PickedUpMidwayIsRecognisedFromFrames) {
  Collect c;
  Stage st(c, {});
  HpackEncoder se;
  Bytes server;
  for (uint32_t id : {11u, 13u}) {
    append(server, h2_frame(h2::FrameType::kHeaders, h2::flags::kEndHeaders, id, se.block({{":status", "200"}})));
    append(server, h2_frame(h2::FrameType::kData, h2::flags::kEndStream, id, h2_bytes("x")));
  }
  send(st, 6, CC_DIR_READ, 5000, as_string(server), 100);  // not at the stream's start
  auto data = c.of(CC_REC_DATA);
  ASSERT_EQ(data.size(), 1u);
  EXPECT_TRUE(data[0].kind == PayloadKind::kHttp2Response || data[0].kind == PayloadKind::kHttp2Request);
  EXPECT_EQ(st.counters().connections.load(), 1u);
}

TEST(HttpStage, GapGivesUpTheMessageAndTheNextOneParses) {
  Collect c;
  Stage st(c, {});
  const std::string r1 = "POST /one HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n" + std::string(40, 'a');
  send(st, 2, CC_DIR_WRITE, 0, r1, 10);
  // 60 bytes of /one's body are lost; capture resumes at the next request.
  const uint64_t next = r1.size() + 60;
  send(st, 2, CC_DIR_WRITE, next, "GET /two HTTP/1.1\r\nHost: h\r\n\r\n", 20);
  auto msgs = c.of(kRecHttpMessage);
  ASSERT_EQ(msgs.size(), 2u);
  EXPECT_EQ(msgs[0].msg->path, "/one");
  EXPECT_TRUE(msgs[0].msg->incomplete);
  EXPECT_EQ(msgs[1].msg->path, "/two");
  EXPECT_FALSE(msgs[1].msg->incomplete);
  EXPECT_EQ(st.counters().gaps.load(), 1u);
}

TEST(HttpStage, OverlappingBytesAreSkipped) {
  Collect c;
  Stage st(c, {});
  const std::string r = "GET /o HTTP/1.1\r\nHost: h\r\n\r\n";
  send(st, 3, CC_DIR_WRITE, 0, r.substr(0, 20), 10);
  send(st, 3, CC_DIR_WRITE, 10, r.substr(10), 20);  // bytes 10..19 again
  auto msgs = c.of(kRecHttpMessage);
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].msg->path, "/o");
  EXPECT_EQ(msgs[0].msg->header("host"), "h");
}

TEST(HttpStage, OtherProtocolsPassThroughAsData) {
  Collect c;
  Stage st(c, {});
  for (int i = 0; i < 12; ++i) send(st, 4, CC_DIR_WRITE, uint64_t(i) * 8, "\x01\x02\x03garbage", 10 + i);
  EXPECT_EQ(c.seen.size(), 12u);
  for (const auto& s : c.seen) {
    EXPECT_EQ(s.kind, PayloadKind::kData);
    EXPECT_FALSE(s.consumed);
  }
  EXPECT_EQ(st.counters().connections.load(), 0u);
}

TEST(HttpStage, SummaryModePassesOnlyExchanges) {
  Collect c;
  Stage::Options o;
  o.summary_only = true;
  Stage st(c, o);
  send(st, 1, CC_DIR_WRITE, 0, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 10);
  send(st, 1, CC_DIR_READ, 0, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 20);
  ASSERT_EQ(c.seen.size(), 1u);
  EXPECT_EQ(c.seen[0].type, kRecHttpExchange);
}

TEST(HttpStage, PendingRequestsAreBoundedAndReportedAtTheEnd) {
  Collect c;
  Stage::Options o;
  o.max_pending = 2;
  Stage st(c, o);
  send(st, 1, CC_DIR_WRITE, 0,
       "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\nGET /3 HTTP/1.1\r\nHost: h\r\n\r\n", 10);
  auto xs = c.of(kRecHttpExchange);
  ASSERT_EQ(xs.size(), 1u);  // /1 given up when /3 arrived
  EXPECT_EQ(xs[0].req->path, "/1");
  EXPECT_FALSE(xs[0].resp);
  EXPECT_EQ(st.counters().evicted.load(), 1u);
  st.finish();
  xs = c.of(kRecHttpExchange);
  ASSERT_EQ(xs.size(), 3u);
  EXPECT_EQ(xs[2].req->path, "/3");
  EXPECT_EQ(st.counters().unpaired.load(), 3u);
}

TEST(HttpStage, LeastRecentlyUsedConnectionIsGivenUp) {
  Collect c;
  Stage::Options o;
  o.max_connections = 2;
  Stage st(c, o);
  send(st, 1, CC_DIR_WRITE, 0, "GET /c1 HTTP/1.1\r\nHost: h\r\n\r\n", 10);
  send(st, 2, CC_DIR_WRITE, 0, "GET /c2 HTTP/1.1\r\nHost: h\r\n\r\n", 20);
  send(st, 1, CC_DIR_WRITE, 28, "GET /c1b HTTP/1.1\r\nHost: h\r\n\r\n", 30);  // 1 is used again
  send(st, 3, CC_DIR_WRITE, 0, "GET /c3 HTTP/1.1\r\nHost: h\r\n\r\n", 40);   // 2 goes
  auto xs = c.of(kRecHttpExchange);
  ASSERT_EQ(xs.size(), 1u);
  EXPECT_EQ(xs[0].conn, 2u);
  EXPECT_EQ(xs[0].req->path, "/c2");
  EXPECT_EQ(st.counters().evicted.load(), 1u);
}

TEST(HttpStage, WebSocketUpgradeStopsParsing) {
  Collect c;
  Stage st(c, {});
  send(st, 8, CC_DIR_WRITE, 0,
       "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: x\r\n\r\n", 10);
  const std::string resp = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
  send(st, 8, CC_DIR_READ, 0, resp, 20);
  send(st, 8, CC_DIR_READ, resp.size(), "\x81\x05hello", 30);
  auto data = c.of(CC_REC_DATA);
  ASSERT_EQ(data.size(), 3u);
  EXPECT_EQ(data[2].kind, PayloadKind::kWebSocket);
  EXPECT_FALSE(data[2].consumed);
  auto xs = c.of(kRecHttpExchange);
  ASSERT_EQ(xs.size(), 1u);
  EXPECT_EQ(xs[0].resp->status, 101);
}


TEST(HttpStage, RefusedUpgradeKeepsParsingTheConnection) {
  Collect c;
  Stage st(c, {});
  const std::string up = "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
  const std::string no = "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n";
  const std::string next = "GET /after HTTP/1.1\r\nHost: h\r\n\r\n";
  send(st, 8, CC_DIR_WRITE, 0, up, 10);
  send(st, 8, CC_DIR_READ, 0, no, 20);
  send(st, 8, CC_DIR_WRITE, up.size(), next, 30);
  send(st, 8, CC_DIR_READ, no.size(), "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 40);
  auto data = c.of(CC_REC_DATA);
  ASSERT_EQ(data.size(), 4u);
  EXPECT_EQ(data[0].kind, PayloadKind::kHttp1Request);  // asking is not switching
  for (const auto& d : data) EXPECT_NE(d.kind, PayloadKind::kWebSocket);
  auto xs = c.of(kRecHttpExchange);
  ASSERT_EQ(xs.size(), 2u);
  EXPECT_EQ(xs[0].resp->status, 401);
  EXPECT_EQ(xs[1].req->path, "/after");
  EXPECT_EQ(xs[1].resp->status, 200);
}

TEST(HttpStage, AResponseLostWholeInAGapDoesNotShiftThePairs) {
  Collect c;
  Stage st(c, {});
  const std::string r0 = "GET /0 HTTP/1.1\r\nHost: h\r\n\r\n", r1 = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n";
  const std::string r2 = "GET /2 HTTP/1.1\r\nHost: h\r\n\r\n";
  const std::string a = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na";
  send(st, 1, CC_DIR_WRITE, 0, r0, 10);
  send(st, 1, CC_DIR_READ, 0, a, 15);
  send(st, 1, CC_DIR_WRITE, r0.size(), r1, 20);
  send(st, 1, CC_DIR_WRITE, r0.size() + r1.size(), r2, 25);
  // /1's response is lost whole; /2's arrives after the gap.
  send(st, 1, CC_DIR_READ, 2 * a.size(), "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 30);
  auto xs = c.of(kRecHttpExchange);
  ASSERT_EQ(xs.size(), 3u);
  EXPECT_EQ(xs[0].req->path, "/0");
  EXPECT_EQ(xs[1].req->path, "/1");
  EXPECT_FALSE(xs[1].resp);
  EXPECT_EQ(xs[2].req->path, "/2");
  EXPECT_EQ(xs[2].resp->status, 404);
  EXPECT_EQ(st.counters().unpaired_gap.load(), 1u);
}

TEST(HttpStage, AnEarlyResponsePairsWhenItsRequestEnds) {
  Collect c;
  Stage st(c, {});
  const std::string head = "POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc";
  send(st, 2, CC_DIR_WRITE, 0, head, 10);
  send(st, 2, CC_DIR_READ, 0, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n", 20);
  send(st, 2, CC_DIR_WRITE, head.size(), "defghij", 30);
  auto xs = c.of(kRecHttpExchange);
  ASSERT_EQ(xs.size(), 1u);
  EXPECT_EQ(xs[0].req->path, "/big");
  EXPECT_EQ(xs[0].resp->status, 413);
  EXPECT_EQ(st.counters().unpaired.load(), 0u);
}

TEST(HttpStage, Http2ResetUploadAnsweredEarlyIsOneExchange) {
  Collect c;
  Stage st(c, {});
  HpackEncoder ce, se;
  Bytes client = h2_bytes(h2::kClientPreface);
  append(client, h2_frame(h2::FrameType::kHeaders, h2::flags::kEndHeaders, 1,
                          ce.block({{":method", "POST"}, {":scheme", "https"}, {":path", "/up"}})));
  append(client, h2_frame(h2::FrameType::kData, 0, 1, h2_bytes("part")));
  Bytes server = h2_frame(h2::FrameType::kHeaders, h2::flags::kEndHeaders | h2::flags::kEndStream, 1,
                          se.block({{":status", "413"}}));
  append(server, h2_frame(h2::FrameType::kRstStream, 0, 1, {0, 0, 0, 0}));
  send(st, 5, CC_DIR_WRITE, 0, as_string(client), 100);
  send(st, 5, CC_DIR_READ, 0, as_string(server), 200);
  auto xs = c.of(kRecHttpExchange);
  ASSERT_EQ(xs.size(), 1u);
  EXPECT_EQ(xs[0].req->path, "/up");
  EXPECT_TRUE(xs[0].req->incomplete);
  EXPECT_EQ(xs[0].resp->status, 413);
}

TEST(HttpStage, ServerSettingsBeforeThePrefaceStillSeeTheConnectionFromItsStart) {
  // nginx's view: its SETTINGS (a write) come before it reads the preface.
  Collect c;
  Stage st(c, {});
  HpackEncoder ce, se;
  const Bytes settings = h2_frame(h2::FrameType::kSettings, 0, 0, {0, 3, 0, 0, 0, 100});
  Bytes client = h2_bytes(h2::kClientPreface);
  append(client, h2_frame(h2::FrameType::kSettings, 0, 0, {}));
  append(client, h2_frame(h2::FrameType::kHeaders, h2::flags::kEndHeaders | h2::flags::kEndStream, 1,
                          ce.block({{":method", "GET"}, {":scheme", "https"}, {":path", "/first"}})));
  Bytes resp = h2_frame(h2::FrameType::kHeaders, h2::flags::kEndHeaders, 1, se.block({{":status", "200"}}));
  append(resp, h2_frame(h2::FrameType::kData, h2::flags::kEndStream, 1, h2_bytes("ok")));
  send(st, 9, CC_DIR_WRITE, 0, as_string(settings), 10);
  send(st, 9, CC_DIR_READ, 0, as_string(client), 20);
  send(st, 9, CC_DIR_WRITE, settings.size(), as_string(resp), 30);
  auto data = c.of(CC_REC_DATA);
  ASSERT_EQ(data.size(), 3u);
  EXPECT_EQ(data[1].kind, PayloadKind::kHttp2Request);   // the reads carry requests
  EXPECT_EQ(data[2].kind, PayloadKind::kHttp2Response);
  auto xs = c.of(kRecHttpExchange);
  ASSERT_EQ(xs.size(), 1u);
  EXPECT_EQ(xs[0].req->path, "/first");
  EXPECT_FALSE(xs[0].req->headers_unknown);
  EXPECT_EQ(st.counters().parse_errors.load(), 0u);
  EXPECT_EQ(st.counters().hpack_unknown.load(), 0u);
}

TEST(HttpStage, ANonHttpConnectionIsLookedAtAgainLater) {
  Collect c;
  Stage st(c, {});
  uint64_t seq = 0;
  for (int i = 0; i < 300; ++i) {  // a download picked up in the middle of its body
    send(st, 4, CC_DIR_READ, seq, "body bytes of a large download.", 10 + i);
    seq += 31;
  }
  send(st, 4, CC_DIR_WRITE, 0, "GET /next HTTP/1.1\r\nHost: h\r\n\r\n", 1000);
  send(st, 4, CC_DIR_WRITE, 31, "GET /later HTTP/1.1\r\nHost: h\r\n\r\n", 2000);
  bool seen = false;
  for (int i = 0; i < 300 && !seen; ++i) {
    send(st, 4, CC_DIR_WRITE, 64 + 33 * uint64_t(i), "GET /again HTTP/1.1\r\nHost: hh\r\n\r\n", 3000 + i);
    seen = !c.of(kRecHttpMessage).empty();
  }
  EXPECT_TRUE(seen);
  EXPECT_EQ(st.counters().connections.load(), 1u);
}

TEST(HttpStage, IdleConnectionsAreGivenUp) {
  Collect c;
  Stage::Options o;
  o.idle_ns = 1'000'000'000;
  Stage st(c, o);
  send(st, 1, CC_DIR_WRITE, 0, "GET /idle HTTP/1.1\r\nHost: h\r\n\r\n", 10);
  EXPECT_TRUE(c.of(kRecHttpExchange).empty());
  send(st, 2, CC_DIR_WRITE, 0, "GET /new HTTP/1.1\r\nHost: h\r\n\r\n", 5'000'000'000);
  auto xs = c.of(kRecHttpExchange);
  ASSERT_EQ(xs.size(), 1u);
  EXPECT_EQ(xs[0].req->path, "/idle");
  EXPECT_FALSE(xs[0].resp);
}

TEST(HttpStage, WaitingRequestsDropTheirBodiesUnlessAskedToKeepThem) {
  for (bool keep : {false, true}) {
    Collect c;
    Stage::Options o;
    o.keep_bodies = keep;
    Stage st(c, o);
    send(st, 1, CC_DIR_WRITE, 0, "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody", 10);
    send(st, 1, CC_DIR_READ, 0, "HTTP/1.1 204 No Content\r\n\r\n", 20);
    auto msgs = c.of(kRecHttpMessage);
    ASSERT_EQ(msgs.size(), 2u);
    EXPECT_EQ(msgs[0].msg->body, "body");  // the message event shows it either way
    auto xs = c.of(kRecHttpExchange);
    ASSERT_EQ(xs.size(), 1u);
    EXPECT_EQ(xs[0].req->body_bytes, 4u);
    EXPECT_EQ(xs[0].req->body, keep ? "body" : "");
  }
}

}  // namespace
}  // namespace clearcap::http
