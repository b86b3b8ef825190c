// HTTP/2 messages from both directions of a connection: requests and
// responses per stream, bodies, trailers, 1xx, RST_STREAM, push, settings,
// picked up mid-way, gaps, and the stream bound.
#include "proto/http2/session.h"

#include <gtest/gtest.h>

#include "tests/unit/http2_wire.h"

namespace clearcap::http2 {
namespace {

using test::append;
using test::Bytes;
using test::h2_bytes;
using test::h2_frame;
using test::HpackEncoder;
using Hs = std::vector<std::pair<std::string, std::string>>;

constexpr int kClient = 0, kServer = 1;

Hs get(const std::string& path) {
  return {{":method", "GET"}, {":scheme", "https"}, {":authority", "example.test"}, {":path", path}};
}

struct Conn {
  HpackEncoder client_enc, server_enc;
  Bytes client, server;  // each side's byte stream

  Conn() {
    append(client, h2_bytes(kClientPreface));
    append(client, h2_frame(FrameType::kSettings, 0, 0, {}));
    append(server, h2_frame(FrameType::kSettings, 0, 0, {0, 3, 0, 0, 0, 100}));
  }
  void request(uint32_t id, const Hs& hs, const std::string& body = "") {
    append(client, h2_frame(FrameType::kHeaders, body.empty() ? flags::kEndStream | flags::kEndHeaders
                                                               : flags::kEndHeaders,
                            id, client_enc.block(hs)));
    if (!body.empty()) append(client, h2_frame(FrameType::kData, flags::kEndStream, id, h2_bytes(body)));
  }
  void response(uint32_t id, int status, const std::string& body, Hs extra = {}) {
    Hs hs = {{":status", std::to_string(status)}};
    hs.insert(hs.end(), extra.begin(), extra.end());
    append(server, h2_frame(FrameType::kHeaders, flags::kEndHeaders, id, server_enc.block(hs)));
    append(server, h2_frame(FrameType::kData, flags::kEndStream, id, h2_bytes(body)));
  }
};

std::vector<http::Message> run(Session& s, const Bytes& client, const Bytes& server, size_t piece = 0) {
  std::vector<http::Message> out;
  auto feed = [&](int side, const Bytes& b) {
    if (piece == 0) {
      s.feed(side, b, 1000 + side, out);
      return;
    }
    for (size_t i = 0; i < b.size(); i += piece)
      s.feed(side, std::span<const uint8_t>(b).subspan(i, std::min(piece, b.size() - i)), 1000 + side, out);
  };
  feed(kClient, client);
  feed(kServer, server);
  return out;
}

TEST(Http2Session, RequestsAndResponsesByStream) {
  Conn c;
  c.request(1, get("/a"));
  c.request(3, get("/b"), "posted");
  c.response(3, 200, "second");
  c.response(1, 404, "first", {{"content-type", "text/plain"}});
  for (size_t piece : {size_t{0}, size_t{1}, size_t{7}}) {
    Session s(true);
    auto out = run(s, c.client, c.server, piece);
    ASSERT_EQ(out.size(), 4u) << piece;
    EXPECT_EQ(s.request_side(), kClient);
    EXPECT_EQ(out[0].kind, http::Kind::kRequest);
    EXPECT_EQ(out[0].method, "GET");
    EXPECT_EQ(out[0].path, "/a");
    EXPECT_EQ(out[0].authority, "example.test");
    EXPECT_EQ(out[0].stream_id, 1u);
    EXPECT_EQ(out[1].path, "/b");
    EXPECT_EQ(out[1].body, "posted");
    EXPECT_EQ(out[2].kind, http::Kind::kResponse);
    EXPECT_EQ(out[2].stream_id, 3u);
    EXPECT_EQ(out[2].status, 200);
    EXPECT_EQ(out[2].body, "second");
    EXPECT_EQ(out[3].status, 404);
    EXPECT_EQ(out[3].header("content-type"), "text/plain");
    for (const auto& m : out) {
      EXPECT_FALSE(m.incomplete);
      EXPECT_FALSE(m.headers_unknown);
      EXPECT_EQ(m.version, http::Version::kHttp2);
    }
    EXPECT_EQ(s.counters().frame_errors, 0u);
  }
}

TEST(Http2Session, TrailersInterimResponsesResetAndPush) {
  Conn c;
  c.request(1, get("/t"));
  c.request(3, get("/reset"));
  // 103 Early Hints, then the final response with trailers.
  append(c.server, h2_frame(FrameType::kHeaders, flags::kEndHeaders, 1, c.server_enc.block({{":status", "103"}})));
  append(c.server, h2_frame(FrameType::kHeaders, flags::kEndHeaders, 1, c.server_enc.block({{":status", "200"}})));
  append(c.server, h2_frame(FrameType::kData, 0, 1, h2_bytes("body")));
  append(c.server, h2_frame(FrameType::kHeaders, flags::kEndHeaders | flags::kEndStream, 1,
                            c.server_enc.block({{"grpc-status", "0"}})));
  // A push promise for stream 2, then its response.
  Bytes pp = {0, 0, 0, 2};
  append(pp, c.server_enc.block(get("/pushed.css")));
  append(c.server, h2_frame(FrameType::kPushPromise, flags::kEndHeaders, 1, pp));
  c.response(2, 200, "css");
  // Stream 3's response starts, then the server resets it.
  append(c.server, h2_frame(FrameType::kHeaders, flags::kEndHeaders, 3, c.server_enc.block({{":status", "200"}})));
  append(c.server, h2_frame(FrameType::kRstStream, 0, 3, {0, 0, 0, 8}));

  Session s(true);
  auto out = run(s, c.client, c.server);
  ASSERT_EQ(out.size(), 7u);
  EXPECT_EQ(out[0].path, "/t");
  EXPECT_EQ(out[1].path, "/reset");
  EXPECT_EQ(out[2].status, 103);
  EXPECT_EQ(out[3].status, 200);
  EXPECT_EQ(out[3].body, "body");
  EXPECT_EQ(out[3].header("grpc-status"), "0");  // trailers appended
  EXPECT_EQ(out[4].kind, http::Kind::kRequest);  // the pushed request
  EXPECT_EQ(out[4].stream_id, 2u);
  EXPECT_EQ(out[4].path, "/pushed.css");
  EXPECT_EQ(out[5].stream_id, 2u);
  EXPECT_EQ(out[5].body, "css");
  EXPECT_EQ(out[6].stream_id, 3u);
  EXPECT_TRUE(out[6].incomplete);  // reset
}

TEST(Http2Session, PickedUpMidwayReportsUndecodableHeadersAndLearnsRoles) {
  Conn c;
  // Blocks the decoder will never see fill the encoders' tables.
  c.request(1, {{":method", "GET"}, {":path", "/x"}, {"x-secret-ish", "indexed-value"}});
  c.response(1, 200, "a", {{"x-server", "indexed-too"}});
  const size_t client_seen = c.client.size(), server_seen = c.server.size();
  // Picked up here: the framer trusts the framing after three frames.
  for (uint32_t id : {3u, 5u, 7u}) {
    c.request(id, {{":method", "GET"}, {":path", "/y"}, {"x-secret-ish", "indexed-value"}});
    c.response(id, 200, "b" + std::to_string(id), {{"x-server", "indexed-too"}});
  }
  Session s(false);
  auto out = run(s, Bytes(c.client.begin() + client_seen, c.client.end()),
                 Bytes(c.server.begin() + server_seen, c.server.end()));
  ASSERT_EQ(out.size(), 6u);
  // The first blocks refer to entries added before capture: reported, not
  // guessed; whatever decodes is right.
  EXPECT_TRUE(out[0].headers_unknown);
  EXPECT_TRUE(out[0].headers.empty());
  EXPECT_TRUE(out[3].headers_unknown);
  for (const auto& m : out) {
    if (!m.headers_unknown && m.kind == http::Kind::kRequest) {
      EXPECT_EQ(m.path, "/y");
    }
  }
  EXPECT_EQ(out[0].kind, http::Kind::kRequest);
  EXPECT_EQ(out[3].kind, http::Kind::kResponse);
  EXPECT_EQ(s.request_side(), kClient);
  EXPECT_EQ(out[3].body, "b3");
  EXPECT_EQ(out[5].body, "b7");
  EXPECT_EQ(out[3].stream_id, 3u);
  EXPECT_GE(s.counters().hpack_unknown, 2u);
  EXPECT_EQ(s.counters().hpack_errors, 0u);
}

TEST(Http2Session, GapGivesUpTheSidesMessagesAndResynchronises) {
  Conn c;
  c.request(1, get("/before"), std::string(100, 'p'));
  const size_t cut = c.client.size() - 50;  // inside stream 1's DATA
  c.request(3, get("/after"));
  Session s(true);
  std::vector<http::Message> out;
  s.feed(kClient, std::span<const uint8_t>(c.client).first(cut - 40), 1, out);
  s.gap(kClient, out);
  // The next frames arrive after the lost bytes: stream 3's request.
  Bytes rest(c.client.begin() + cut, c.client.end());
  s.feed(kClient, rest, 2, out);
  ASSERT_GE(out.size(), 1u);
  EXPECT_EQ(out[0].path, "/before");
  EXPECT_TRUE(out[0].incomplete);
  // After a gap HPACK's state is unknown: /after used only static entries
  // and literals, so it may decode; either way nothing is guessed.
  for (size_t i = 1; i < out.size(); ++i) {
    if (!out[i].headers_unknown) {
      EXPECT_EQ(out[i].path, "/after");
    }
  }
}

TEST(Http2Session, StreamsBeyondTheBoundAreGivenUpAndCounted) {
  HpackEncoder enc;
  Bytes client = h2_bytes(kClientPreface);
  for (uint32_t id = 1; id < 2 * 20; id += 2)  // 20 streams whose requests never end
    append(client, h2_frame(FrameType::kHeaders, flags::kEndHeaders, id, enc.block(get("/open"))));
  SessionLimits l;
  l.max_streams = 8;
  Session s(true, l);
  std::vector<http::Message> out;
  s.feed(kClient, client, 1, out);
  EXPECT_EQ(out.size(), 12u);
  EXPECT_EQ(s.counters().streams_evicted, 12u);
  for (const auto& m : out) EXPECT_TRUE(m.incomplete);
  s.finish(out);
  EXPECT_EQ(out.size(), 20u);
}

TEST(Http2Session, BodyKeptUpToTheLimitAndCounted) {
  Conn c;
  c.request(1, get("/big"));
  c.response(1, 200, std::string(10000, 'z'));
  SessionLimits l;
  l.max_body_bytes = 100;
  Session s(true, l);
  auto out = run(s, c.client, c.server);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].body.size(), 100u);
  EXPECT_EQ(out[1].body_bytes, 10000u);
  EXPECT_TRUE(out[1].body_cut);
}


TEST(Http2Session, TenThousandTinyContinuationFramesAreBoundedAndCounted) {
  // A header block split into 10 000 CONTINUATION frames of one indexed
  // field each: 10 001 headers, past HPACK's list bound (1024).
  HpackEncoder enc;
  Bytes client = h2_bytes(kClientPreface);
  append(client, h2_frame(FrameType::kHeaders, flags::kEndStream, 1, {0x82}));
  for (int i = 0; i < 10000; ++i)
    append(client, h2_frame(FrameType::kContinuation, i == 9999 ? flags::kEndHeaders : 0, 1, {0x82}));
  Session s(true);
  std::vector<http::Message> out;
  s.feed(kClient, client, 1, out);
  for (const auto& m : out) EXPECT_LE(m.headers.size(), 1024u);
  EXPECT_EQ(s.counters().hpack_errors, 1u);
  // And a block joined past the framer's bound (256 KiB): a framing error.
  Bytes big = h2_bytes(kClientPreface);
  append(big, h2_frame(FrameType::kHeaders, 0, 1, Bytes(100, 0x82)));
  for (int i = 0; i < 10000; ++i) append(big, h2_frame(FrameType::kContinuation, 0, 1, Bytes(30, 0x82)));
  Session s2(true);
  out.clear();
  s2.feed(kClient, big, 1, out);
  EXPECT_GE(s2.counters().frame_errors, 1u);
  EXPECT_TRUE(out.empty());
}

}  // namespace
}  // namespace clearcap::http2
