// The HTTP/1.x parser: requests and responses with exact fields, bodies by
// Content-Length and chunked (trailers kept), pipelining, HEAD, 1xx, 204,
// 304, upgrades and CONNECT, the limits, gaps and errors followed by a
// resync, and protocol detection. Every case is also fed byte by byte and
// split in two at every byte: the messages must come out the same.
#include "proto/http1/parser.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace clearcap::http1 {
namespace {

using http::Kind;
using http::Message;
using http::ParseState;
using http::Version;
using Headers = std::vector<std::pair<std::string, std::string>>;
using namespace std::string_literals;  // "..."s: binary bytes with NULs

std::span<const uint8_t> bytes(std::string_view s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

// One step of a connection's direction: bytes, or a gap (lost bytes).
struct Step {
  std::string bytes;
  bool gap = false;
};
Step B(std::string s) { return {std::move(s), false}; }
Step Gap() { return {{}, true}; }

struct Script {
  Kind kind = Kind::kRequest;
  Limits limits{};
  std::vector<std::pair<bool, bool>> expects;  // expect_response(head, connect) before any byte
  std::vector<Step> steps;
};

struct Outcome {
  std::vector<Message> msgs;
  std::vector<ParseState> states;  // one per feed()
  // After each step:
  std::vector<size_t> msgs_after;
  std::vector<uint64_t> errors_after;
  std::vector<bool> upgraded_after, in_message_after;
};

// Feeds each byte step cut at `cuts(step, length)` (ascending, inside the
// step); every feed of step i carries ts (i + 1) * 1000, so that where the
// cuts fall does not change the timestamps.
Outcome run(const Script& s, const std::function<std::vector<size_t>(size_t, size_t)>& cuts) {
  Parser p(s.kind, s.limits);
  for (auto [head, connect] : s.expects) p.expect_response(head, connect);
  Outcome o;
  for (size_t i = 0; i < s.steps.size(); ++i) {
    const Step& st = s.steps[i];
    if (st.gap) {
      p.gap(o.msgs);
    } else {
      const bool was_upgraded = p.upgraded();
      std::vector<size_t> at = cuts(i, st.bytes.size());
      at.push_back(st.bytes.size());
      size_t from = 0;
      for (size_t to : at) {
        const auto state = p.feed(bytes(std::string_view(st.bytes).substr(from, to - from)), (i + 1) * 1000, o.msgs);
        if (was_upgraded) {
          EXPECT_EQ(state, ParseState::kIgnored);
        }
        o.states.push_back(state);
        from = to;
      }
    }
    o.msgs_after.push_back(o.msgs.size());
    o.errors_after.push_back(p.parse_errors());
    o.upgraded_after.push_back(p.upgraded());
    o.in_message_after.push_back(p.in_message());
  }
  return o;
}

Outcome whole(const Script& s) {
  return run(s, [](size_t, size_t) { return std::vector<size_t>{}; });
}

std::string dump(const Message& m) {
  std::string o = m.kind == Kind::kRequest ? "request " : "response ";
  o += std::string(http::version_name(m.version)) + " method=" + m.method + " path=" + m.path +
       " authority=" + m.authority + " scheme=" + m.scheme + " status=" + std::to_string(m.status) +
       " reason=" + m.reason + " stream=" + std::to_string(m.stream_id) + " headers=[";
  for (const auto& [k, v] : m.headers) o += k + ": " + v + "|";
  o += "] unknown=" + std::to_string(m.headers_unknown) + " body=" + m.body +
       " body_bytes=" + std::to_string(m.body_bytes) + " cut=" + std::to_string(m.body_cut) +
       " header_bytes=" + std::to_string(m.header_bytes) + " ns=" + std::to_string(m.first_ns) + ".." +
       std::to_string(m.last_ns) + " incomplete=" + std::to_string(m.incomplete) +
       " upgrade=" + std::to_string(m.upgrade);
  return o;
}

std::vector<std::string> dump(const std::vector<Message>& ms) {
  std::vector<std::string> o;
  for (const auto& m : ms) o.push_back(dump(m));
  return o;
}

void expect_same(const Outcome& got, const Outcome& ref, const std::string& how) {
  ASSERT_EQ(dump(got.msgs), dump(ref.msgs)) << how;
  ASSERT_EQ(got.msgs_after, ref.msgs_after) << how;
  ASSERT_EQ(got.errors_after, ref.errors_after) << how;
  ASSERT_EQ(got.upgraded_after, ref.upgraded_after) << how;
  ASSERT_EQ(got.in_message_after, ref.in_message_after) << how;
}

// The script fed byte by byte, and with each byte step cut in two at every
// byte, gives what it gives fed whole.
void expect_split_invariant(const Script& s) {
  const Outcome ref = whole(s);
  expect_same(run(s,
                  [](size_t, size_t len) {
                    std::vector<size_t> at;
                    for (size_t c = 1; c < len; ++c) at.push_back(c);
                    return at;
                  }),
              ref, "byte by byte");
  for (size_t i = 0; i < s.steps.size(); ++i) {
    for (size_t c = 1; c < s.steps[i].bytes.size(); ++c) {
      expect_same(run(s,
                      [&](size_t step, size_t) {
                        return step == i ? std::vector<size_t>{c} : std::vector<size_t>{};
                      }),
                  ref, "step " + std::to_string(i) + " cut at " + std::to_string(c));
      if (testing::Test::HasFatalFailure()) return;
    }
  }
}

TEST(Http1Parser, SimpleGet) {
  const std::string req =
      "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n";
  const Script s{.kind = Kind::kRequest, .steps = {B(req)}};
  const Outcome o = whole(s);
  EXPECT_EQ(o.states, std::vector<ParseState>{ParseState::kSuccess});
  ASSERT_EQ(o.msgs.size(), 1u);
  const Message& m = o.msgs[0];
  EXPECT_EQ(m.kind, Kind::kRequest);
  EXPECT_EQ(m.version, Version::kHttp11);
  EXPECT_EQ(m.method, "GET");
  EXPECT_EQ(m.path, "/index.html?q=1");
  EXPECT_EQ(m.authority, "example.com");
  EXPECT_EQ(m.scheme, "");
  EXPECT_EQ(m.status, 0);
  EXPECT_EQ(m.reason, "");
  EXPECT_EQ(m.headers, (Headers{{"Host", "example.com"}, {"User-Agent", "curl/8.0"}, {"Accept", "*/*"}}));
  EXPECT_EQ(m.body, "");
  EXPECT_EQ(m.body_bytes, 0u);
  EXPECT_FALSE(m.body_cut);
  EXPECT_EQ(m.header_bytes, req.size());
  EXPECT_EQ(m.first_ns, 1000u);
  EXPECT_EQ(m.last_ns, 1000u);
  EXPECT_FALSE(m.incomplete);
  EXPECT_FALSE(m.upgrade);
  EXPECT_EQ(o.errors_after.back(), 0u);
  EXPECT_FALSE(o.in_message_after.back());
  expect_split_invariant(s);
}

TEST(Http1Parser, PostWithContentLength) {
  const std::string body = R"({"name":"widget","qty":3})";
  const std::string head = "POST /api/items HTTP/1.1\r\nHost: api.example:8443\r\nContent-Type: application/json\r\n"
                           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  const Script s{.steps = {B(head + body)}};
  const Outcome o = whole(s);
  EXPECT_EQ(o.states, std::vector<ParseState>{ParseState::kSuccess});
  ASSERT_EQ(o.msgs.size(), 1u);
  const Message& m = o.msgs[0];
  EXPECT_EQ(m.method, "POST");
  EXPECT_EQ(m.path, "/api/items");
  EXPECT_EQ(m.authority, "api.example:8443");
  EXPECT_EQ(m.headers, (Headers{{"Host", "api.example:8443"},
                                {"Content-Type", "application/json"},
                                {"Content-Length", std::to_string(body.size())}}));
  EXPECT_EQ(m.body, body);
  EXPECT_EQ(m.body_bytes, body.size());
  EXPECT_FALSE(m.body_cut);
  EXPECT_EQ(m.header_bytes, head.size());
  EXPECT_FALSE(m.incomplete);
  expect_split_invariant(s);

  // The body in a later feed: the first says more is needed.
  const Script later{.steps = {B(head), B(body.substr(0, 5)), B(body.substr(5))}};
  const Outcome l = whole(later);
  EXPECT_EQ(l.states, (std::vector<ParseState>{ParseState::kNeedsMoreData, ParseState::kNeedsMoreData,
                                               ParseState::kSuccess}));
  EXPECT_EQ(l.in_message_after, (std::vector<bool>{true, true, false}));
  ASSERT_EQ(l.msgs.size(), 1u);
  EXPECT_EQ(l.msgs[0].body, body);
  EXPECT_EQ(l.msgs[0].first_ns, 1000u);
  EXPECT_EQ(l.msgs[0].last_ns, 3000u);
  expect_split_invariant(later);
}

TEST(Http1Parser, ChunkedResponseWithTrailers) {
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
                           "Trailer: X-Checksum\r\n\r\n";
  const std::string chunks = "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Checksum: abc123\r\nX-Other: t\r\n\r\n";
  const Script s{.kind = Kind::kResponse, .steps = {B(head + chunks)}};
  const Outcome o = whole(s);
  EXPECT_EQ(o.states, std::vector<ParseState>{ParseState::kSuccess});
  ASSERT_EQ(o.msgs.size(), 1u);
  const Message& m = o.msgs[0];
  EXPECT_EQ(m.kind, Kind::kResponse);
  EXPECT_EQ(m.version, Version::kHttp11);
  EXPECT_EQ(m.status, 200);
  EXPECT_EQ(m.reason, "OK");
  EXPECT_EQ(m.method, "");
  EXPECT_EQ(m.authority, "");
  EXPECT_EQ(m.headers, (Headers{{"Content-Type", "text/plain"},
                                {"Transfer-Encoding", "chunked"},
                                {"Trailer", "X-Checksum"},
                                {"X-Checksum", "abc123"},
                                {"X-Other", "t"}}));
  EXPECT_EQ(m.body, "hello, world");
  EXPECT_EQ(m.body_bytes, 12u);
  EXPECT_FALSE(m.body_cut);
  EXPECT_EQ(m.header_bytes, head.size());
  expect_split_invariant(s);
}

TEST(Http1Parser, ChunkedWinsOverContentLength) {
  const Script s{.steps = {B("POST /u HTTP/1.1\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "3\r\nabc\r\n0\r\n\r\nGET /next HTTP/1.1\r\n\r\n")}};
  const Outcome o = whole(s);
  ASSERT_EQ(o.msgs.size(), 2u);
  EXPECT_EQ(o.msgs[0].body, "abc");
  EXPECT_EQ(o.msgs[0].body_bytes, 3u);
  EXPECT_EQ(o.msgs[1].path, "/next");
  EXPECT_EQ(o.errors_after.back(), 0u);
  expect_split_invariant(s);
}

TEST(Http1Parser, ThreePipelinedRequestsInOneFeed) {
  const std::string a = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
  const std::string b = "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n";
  const std::string c = "DELETE /c/1 HTTP/1.1\r\nHost: other\r\n\r\n";
  // Some clients send a CRLF after a body; it is not a message.
  const Script s{.steps = {B(a + b + "hello\r\n" + c)}};
  const Outcome o = whole(s);
  EXPECT_EQ(o.states, std::vector<ParseState>{ParseState::kSuccess});
  ASSERT_EQ(o.msgs.size(), 3u);
  EXPECT_EQ(o.msgs[0].method, "GET");
  EXPECT_EQ(o.msgs[0].path, "/a");
  EXPECT_EQ(o.msgs[0].header_bytes, a.size());
  EXPECT_EQ(o.msgs[0].body_bytes, 0u);
  EXPECT_EQ(o.msgs[1].method, "POST");
  EXPECT_EQ(o.msgs[1].path, "/b");
  EXPECT_EQ(o.msgs[1].body, "hello");
  EXPECT_EQ(o.msgs[1].header_bytes, b.size());
  EXPECT_EQ(o.msgs[2].method, "DELETE");
  EXPECT_EQ(o.msgs[2].path, "/c/1");
  EXPECT_EQ(o.msgs[2].authority, "other");
  EXPECT_EQ(o.msgs[2].header_bytes, c.size());
  for (const auto& m : o.msgs) {
    EXPECT_FALSE(m.incomplete);
    EXPECT_EQ(m.first_ns, 1000u);
  }
  EXPECT_EQ(o.errors_after.back(), 0u);
  expect_split_invariant(s);
}

TEST(Http1Parser, HeadResponseHasNoBodyWhateverItsContentLength) {
  const std::string head_resp = "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nContent-Type: text/html\r\n\r\n";
  const std::string next = "HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope";
  const Script s{.kind = Kind::kResponse, .expects = {{true, false}, {false, false}}, .steps = {B(head_resp + next)}};
  const Outcome o = whole(s);
  EXPECT_EQ(o.states, std::vector<ParseState>{ParseState::kSuccess});
  ASSERT_EQ(o.msgs.size(), 2u);
  EXPECT_EQ(o.msgs[0].status, 200);
  EXPECT_EQ(o.msgs[0].headers, (Headers{{"Content-Length", "1234"}, {"Content-Type", "text/html"}}));
  EXPECT_EQ(o.msgs[0].body, "");
  EXPECT_EQ(o.msgs[0].body_bytes, 0u);
  EXPECT_EQ(o.msgs[0].header_bytes, head_resp.size());
  EXPECT_FALSE(o.msgs[0].incomplete);
  EXPECT_EQ(o.msgs[1].status, 404);
  EXPECT_EQ(o.msgs[1].reason, "Not Found");
  EXPECT_EQ(o.msgs[1].body, "nope");
  expect_split_invariant(s);

  // Without the note, the second response is taken for the first one's body.
  const Outcome unnoted = whole(Script{.kind = Kind::kResponse, .steps = {B(head_resp + next)}});
  EXPECT_TRUE(unnoted.msgs.empty());
}

TEST(Http1Parser, NoContentAndNotModifiedHaveNoBody) {
  const Script s{.kind = Kind::kResponse,
                 .steps = {B("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"
                             "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 100\r\n\r\n"
                             "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")}};
  const Outcome o = whole(s);
  ASSERT_EQ(o.msgs.size(), 3u);
  EXPECT_EQ(o.msgs[0].status, 204);
  EXPECT_EQ(o.msgs[0].reason, "No Content");
  EXPECT_EQ(o.msgs[0].body_bytes, 0u);
  EXPECT_EQ(o.msgs[1].status, 304);
  EXPECT_EQ(o.msgs[1].headers, (Headers{{"ETag", "\"v1\""}, {"Content-Length", "100"}}));
  EXPECT_EQ(o.msgs[1].body_bytes, 0u);
  EXPECT_EQ(o.msgs[2].status, 200);
  EXPECT_EQ(o.msgs[2].body, "ok");
  EXPECT_EQ(o.errors_after.back(), 0u);
  expect_split_invariant(s);
}

TEST(Http1Parser, ContinueIsAMessageOfItsOwnThenTheResponse) {
  // The 100 does not use up the request's note: the second note (HEAD)
  // applies to the third response.
  const Script s{.kind = Kind::kResponse,
                 .expects = {{false, false}, {true, false}},
                 .steps = {B("HTTP/1.1 100 Continue\r\n\r\n"
                             "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                             "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
                             "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")}};
  const Outcome o = whole(s);
  ASSERT_EQ(o.msgs.size(), 4u);
  EXPECT_EQ(o.msgs[0].status, 100);
  EXPECT_EQ(o.msgs[0].reason, "Continue");
  EXPECT_EQ(o.msgs[0].header_bytes, 25u);
  EXPECT_EQ(o.msgs[0].body_bytes, 0u);
  EXPECT_EQ(o.msgs[1].status, 200);
  EXPECT_EQ(o.msgs[1].body, "ok");
  EXPECT_EQ(o.msgs[2].status, 103);
  EXPECT_EQ(o.msgs[2].headers, (Headers{{"Link", "</s.css>; rel=preload"}}));
  EXPECT_EQ(o.msgs[3].status, 200);
  EXPECT_EQ(o.msgs[3].body_bytes, 0u);
  EXPECT_FALSE(o.in_message_after.back());
  expect_split_invariant(s);

  // The request side: Expect: 100-continue, body later.
  const Script req{.steps = {B("PUT /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"), B("abc")}};
  const Outcome r = whole(req);
  ASSERT_EQ(r.msgs.size(), 1u);
  EXPECT_EQ(r.msgs[0].method, "PUT");
  EXPECT_EQ(r.msgs[0].body, "abc");
  EXPECT_EQ(r.msgs[0].first_ns, 1000u);
  EXPECT_EQ(r.msgs[0].last_ns, 2000u);
  expect_split_invariant(req);
}

TEST(Http1Parser, SwitchingProtocolsThenIgnored) {
  const std::string resp =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
  const Script s{.kind = Kind::kResponse,
                 .steps = {B(resp + "\x81\x05hello"), B("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")}};
  const Outcome o = whole(s);
  EXPECT_EQ(o.states, (std::vector<ParseState>{ParseState::kSuccess, ParseState::kIgnored}));
  ASSERT_EQ(o.msgs.size(), 1u);
  EXPECT_EQ(o.msgs[0].status, 101);
  EXPECT_EQ(o.msgs[0].reason, "Switching Protocols");
  EXPECT_TRUE(o.msgs[0].upgrade);
  EXPECT_FALSE(o.msgs[0].incomplete);
  EXPECT_EQ(o.msgs[0].header_bytes, resp.size());
  EXPECT_EQ(o.upgraded_after, (std::vector<bool>{true, true}));
  expect_split_invariant(s);

  // A 101 without the headers is still the end of HTTP here.
  const Outcome bare = whole(Script{.kind = Kind::kResponse, .steps = {B("HTTP/1.1 101 Switching Protocols\r\n\r\n")}});
  ASSERT_EQ(bare.msgs.size(), 1u);
  EXPECT_TRUE(bare.msgs[0].upgrade);
  EXPECT_TRUE(bare.upgraded_after.back());

  // The request that asks for it.
  const Script req{.steps = {B("GET /chat HTTP/1.1\r\nHost: ws.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n\x81\x85\x37\xfa\x21\x3d"),
                             B("GET / HTTP/1.1\r\n\r\n")}};
  const Outcome r = whole(req);
  EXPECT_EQ(r.states, (std::vector<ParseState>{ParseState::kSuccess, ParseState::kIgnored}));
  ASSERT_EQ(r.msgs.size(), 1u);
  EXPECT_EQ(r.msgs[0].path, "/chat");
  EXPECT_TRUE(r.msgs[0].upgrade);
  expect_split_invariant(req);

  // gap() after the upgrade changes nothing.
  Parser p(Kind::kResponse);
  std::vector<Message> out;
  p.feed(bytes(resp), 1, out);
  p.gap(out);
  EXPECT_EQ(p.feed(bytes("HTTP/1.1 200 OK\r\n\r\n"), 2, out), ParseState::kIgnored);
  EXPECT_EQ(out.size(), 1u);
  EXPECT_EQ(p.parse_errors(), 0u);
}

TEST(Http1Parser, ConnectIsAnUpgradeWhenItSucceeds) {
  const Script req{.steps = {B("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
                               "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"s)}};
  const Outcome r = whole(req);
  ASSERT_EQ(r.msgs.size(), 1u);
  EXPECT_EQ(r.msgs[0].method, "CONNECT");
  EXPECT_EQ(r.msgs[0].path, "example.com:443");
  EXPECT_EQ(r.msgs[0].authority, "example.com:443");
  EXPECT_TRUE(r.msgs[0].upgrade);
  EXPECT_TRUE(r.upgraded_after.back());
  expect_split_invariant(req);

  // Without a Host header, the authority is the target.
  const Outcome nohost = whole(Script{.steps = {B("CONNECT db.internal:5432 HTTP/1.1\r\n\r\n")}});
  ASSERT_EQ(nohost.msgs.size(), 1u);
  EXPECT_EQ(nohost.msgs[0].authority, "db.internal:5432");

  const Script ok{.kind = Kind::kResponse,
                  .expects = {{false, true}},
                  .steps = {B("HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03\x00\x7a\x02"s)}};
  const Outcome o = whole(ok);
  ASSERT_EQ(o.msgs.size(), 1u);
  EXPECT_EQ(o.msgs[0].status, 200);
  EXPECT_EQ(o.msgs[0].reason, "Connection established");
  EXPECT_TRUE(o.msgs[0].upgrade);
  EXPECT_TRUE(o.upgraded_after.back());
  expect_split_invariant(ok);

  // Refused: an ordinary response, and the next one too.
  const Script refused{.kind = Kind::kResponse,
                       .expects = {{false, true}, {false, false}},
                       .steps = {B("HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 2\r\n\r\nno"
                                   "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")}};
  const Outcome f = whole(refused);
  ASSERT_EQ(f.msgs.size(), 2u);
  EXPECT_EQ(f.msgs[0].status, 407);
  EXPECT_EQ(f.msgs[0].body, "no");
  EXPECT_FALSE(f.msgs[0].upgrade);
  EXPECT_FALSE(f.msgs[1].upgrade);
  EXPECT_FALSE(f.upgraded_after.back());
  expect_split_invariant(refused);
}

TEST(Http1Parser, OversizeHeadersAreInvalidThenTheNextMessageParses) {
  const std::string bad = "GET /big HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(300, 'x') + "\r\nX-After: 1\r\n\r\n";
  const std::string good = "GET /good HTTP/1.1\r\nHost: a\r\n\r\n";
  const Script s{.limits = {.max_header_bytes = 256}, .steps = {B(bad + good), B(good)}};
  const Outcome o = whole(s);
  EXPECT_EQ(o.states, (std::vector<ParseState>{ParseState::kInvalid, ParseState::kSuccess}));
  ASSERT_EQ(o.msgs.size(), 2u);
  for (const auto& m : o.msgs) {
    EXPECT_EQ(m.path, "/good");
    EXPECT_EQ(m.header_bytes, good.size());
    EXPECT_FALSE(m.incomplete);
  }
  EXPECT_EQ(o.errors_after, (std::vector<uint64_t>{1, 1}));
  expect_split_invariant(s);
}

TEST(Http1Parser, HeaderLimitIsExact) {
  // Exactly max_header_bytes of start line and headers passes; one more
  // byte (here only the final LF is over) fails.
  const std::string prefix = "GET / HTTP/1.1\r\nX-Pad: ";
  const std::string suffix = "\r\n\r\n";
  const std::string at_limit = prefix + std::string(256 - prefix.size() - suffix.size(), 'p') + suffix;
  ASSERT_EQ(at_limit.size(), 256u);
  const Outcome ok = whole(Script{.limits = {.max_header_bytes = 256}, .steps = {B(at_limit)}});
  ASSERT_EQ(ok.msgs.size(), 1u);
  EXPECT_EQ(ok.msgs[0].header_bytes, 256u);

  const std::string over = prefix + std::string(257 - prefix.size() - suffix.size(), 'p') + suffix;
  const Script s{.limits = {.max_header_bytes = 256}, .steps = {B(over + "GET /after HTTP/1.1\r\n\r\n")}};
  const Outcome o = whole(s);
  EXPECT_EQ(o.states, std::vector<ParseState>{ParseState::kInvalid});
  ASSERT_EQ(o.msgs.size(), 1u);
  EXPECT_EQ(o.msgs[0].path, "/after");
  EXPECT_EQ(o.errors_after.back(), 1u);
  expect_split_invariant(s);
}

TEST(Http1Parser, GapInABodyThenThePipelinedNextRequest) {
  // The body that is left after the gap does not end in a newline: the next
  // request follows it directly, its method after other capitals.
  const Script s{.steps = {B("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 40\r\n\r\n0123456789"), Gap(),
                           B("ABC\"}GET /next HTTP/1.1\r\nHost: h\r\n\r\n")}};
  const Outcome o = whole(s);
  EXPECT_EQ(o.states, (std::vector<ParseState>{ParseState::kNeedsMoreData, ParseState::kSuccess}));
  ASSERT_EQ(o.msgs.size(), 2u);
  const Message& cut = o.msgs[0];
  EXPECT_EQ(cut.method, "POST");
  EXPECT_EQ(cut.path, "/a");
  EXPECT_TRUE(cut.incomplete);
  EXPECT_EQ(cut.body, "0123456789");
  EXPECT_EQ(cut.body_bytes, 10u);
  EXPECT_FALSE(cut.body_cut);
  EXPECT_EQ(cut.first_ns, 1000u);
  EXPECT_EQ(cut.last_ns, 1000u);
  const Message& next = o.msgs[1];
  EXPECT_EQ(next.method, "GET");
  EXPECT_EQ(next.path, "/next");
  EXPECT_EQ(next.authority, "h");
  EXPECT_FALSE(next.incomplete);
  EXPECT_EQ(next.header_bytes, std::string_view("GET /next HTTP/1.1\r\nHost: h\r\n\r\n").size());
  EXPECT_EQ(next.first_ns, 3000u);
  EXPECT_EQ(o.errors_after, (std::vector<uint64_t>{0, 1, 1}));
  EXPECT_EQ(o.in_message_after, (std::vector<bool>{true, false, false}));
  expect_split_invariant(s);
}

TEST(Http1Parser, GapInAResponseBodyThenTheNextResponse) {
  const Script s{.kind = Kind::kResponse,
                 .steps = {B("HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n{\"a\":"), Gap(),
                           B("2]}HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}"
                             "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n[1]")}};
  const Outcome o = whole(s);
  ASSERT_EQ(o.msgs.size(), 3u);
  EXPECT_EQ(o.msgs[0].status, 200);
  EXPECT_TRUE(o.msgs[0].incomplete);
  EXPECT_EQ(o.msgs[0].body, "{\"a\":");
  EXPECT_EQ(o.msgs[1].status, 404);
  EXPECT_EQ(o.msgs[1].body, "{}");
  EXPECT_FALSE(o.msgs[1].incomplete);
  EXPECT_EQ(o.msgs[2].body, "[1]");
  EXPECT_EQ(o.errors_after.back(), 1u);
  expect_split_invariant(s);
}

TEST(Http1Parser, GapBetweenMessagesAbandonsNothing) {
  const Script s{.steps = {B("GET /a HTTP/1.1\r\n\r\n"), Gap(), B("GET /b HTTP/1.1\r\n\r\n")}};
  const Outcome o = whole(s);
  ASSERT_EQ(o.msgs.size(), 2u);
  EXPECT_EQ(o.msgs[1].path, "/b");
  EXPECT_EQ(o.errors_after, (std::vector<uint64_t>{0, 0, 0}));
  expect_split_invariant(s);
}

TEST(Http1Parser, APartialStartBeforeAGapDoesNotJoinWhatFollows) {
  // "GET /x HTTP/1." waits for its digit; a gap drops it.
  const Script s{.steps = {B("POST /a HTTP/1.1\r\nContent-Length: 9\r\n\r\nab"), Gap(), B("c GET /x HTTP/1."), Gap(),
                           B("1\r\n\r\nGET /y HTTP/1.1\r\n\r\n")}};
  const Outcome o = whole(s);
  ASSERT_EQ(o.msgs.size(), 2u);
  EXPECT_EQ(o.msgs[0].path, "/a");
  EXPECT_TRUE(o.msgs[0].incomplete);
  EXPECT_EQ(o.msgs[1].path, "/y");
  EXPECT_EQ(o.in_message_after, (std::vector<bool>{true, false, true, false, false}));
  expect_split_invariant(s);
}

TEST(Http1Parser, AStartFoundBySearchingThatTurnsOutBrokenIsPassedOver) {
  // The search finds "GET /x HTTP/1.1"; a broken Content-Length then is a
  // parse error, and the search goes on from there without finding the same
  // line again.
  const Script s{.steps = {B("GET /a HTTP/1.1\r\nContent-Length: 50\r\n\r\nxy"), Gap(),
                           B("z\r\nGET /x HTTP/1.1\r\nContent-Length: 1x\r\n\r\nGET /ok HTTP/1.1\r\n\r\n")}};
  const Outcome o = whole(s);
  EXPECT_EQ(o.states, (std::vector<ParseState>{ParseState::kNeedsMoreData, ParseState::kInvalid}));
  ASSERT_EQ(o.msgs.size(), 2u);
  EXPECT_TRUE(o.msgs[0].incomplete);
  EXPECT_EQ(o.msgs[1].path, "/ok");
  EXPECT_EQ(o.errors_after, (std::vector<uint64_t>{0, 1, 2}));
  expect_split_invariant(s);
}

TEST(Http1Parser, TheSearchKeepsOnlyAStartLinesWorth) {
  // With max_header_bytes 256 the search takes request lines of at most 256
  // bytes: a longer one is passed over (its message is lost), one just
  // within is found, after far more bytes than the search keeps.
  const std::string junk(2000, 'j');
  const std::string too_long = "GET /" + std::string(300, 'l') + " HTTP/1.1\r\n\r\n";
  const std::string target = "/found" + std::string(200, 'f');
  const Script s{.limits = {.max_header_bytes = 256},
                 .steps = {B("GET /a HTTP/1.1\r\nContent-Length: 9999\r\n\r\n"), Gap(),
                           B(junk + too_long + junk + "POST " + target + " HTTP/1.1\r\nContent-Length: 1\r\n\r\n!")}};
  const Outcome o = whole(s);
  ASSERT_EQ(o.msgs.size(), 2u);
  EXPECT_EQ(o.msgs[1].path, target);
  EXPECT_EQ(o.msgs[1].body, "!");
  EXPECT_EQ(o.errors_after.back(), 1u);
  expect_split_invariant(s);
}

TEST(Http1Parser, BodyOverTheLimitIsCountedNotKept) {
  const std::string body(100, 'b');
  const Script s{.limits = {.max_body_bytes = 16},
                 .steps = {B("POST /big HTTP/1.1\r\nContent-Length: 100\r\n\r\n" + body + "GET /n HTTP/1.1\r\n\r\n")}};
  const Outcome o = whole(s);
  ASSERT_EQ(o.msgs.size(), 2u);
  EXPECT_EQ(o.msgs[0].body, std::string(16, 'b'));
  EXPECT_EQ(o.msgs[0].body_bytes, 100u);
  EXPECT_TRUE(o.msgs[0].body_cut);
  EXPECT_FALSE(o.msgs[0].incomplete);
  EXPECT_EQ(o.msgs[1].path, "/n");
  expect_split_invariant(s);

  const Script chunked{.kind = Kind::kResponse,
                       .limits = {.max_body_bytes = 16},
                       .steps = {B("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                   "a\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n")}};
  const Outcome c = whole(chunked);
  ASSERT_EQ(c.msgs.size(), 1u);
  EXPECT_EQ(c.msgs[0].body, "0123456789abcdef");
  EXPECT_EQ(c.msgs[0].body_bytes, 20u);
  EXPECT_TRUE(c.msgs[0].body_cut);
  expect_split_invariant(chunked);

  // Exactly at the limit: all kept, nothing cut.
  const Outcome exact = whole(Script{.limits = {.max_body_bytes = 16},
                                     .steps = {B("POST / HTTP/1.1\r\nContent-Length: 16\r\n\r\n" + std::string(16, 'e'))}});
  ASSERT_EQ(exact.msgs.size(), 1u);
  EXPECT_EQ(exact.msgs[0].body, std::string(16, 'e'));
  EXPECT_FALSE(exact.msgs[0].body_cut);
}

TEST(Http1Parser, AGigabyteContentLengthCostsNoMemory) {
  const std::string head = "POST /huge HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000000\r\n\r\n";
  const std::string part(1000, 'z');
  const Script s{.limits = {.max_body_bytes = 100}, .steps = {B(head + part), Gap()}};
  const Outcome o = whole(s);
  EXPECT_EQ(o.states, std::vector<ParseState>{ParseState::kNeedsMoreData});
  ASSERT_EQ(o.msgs.size(), 1u);
  const Message& m = o.msgs[0];
  EXPECT_TRUE(m.incomplete);
  EXPECT_EQ(m.body, std::string(100, 'z'));
  EXPECT_EQ(m.body_bytes, 1000u);
  EXPECT_TRUE(m.body_cut);
  EXPECT_EQ(m.header_bytes, head.size());
  // The body was reserved for what is kept, not for what was announced.
  EXPECT_LE(m.body.capacity(), 200u);
  EXPECT_EQ(o.errors_after, (std::vector<uint64_t>{0, 1}));
  expect_split_invariant(s);

  // With the default limit too.
  Parser p(Kind::kRequest);
  std::vector<Message> out;
  EXPECT_EQ(p.feed(bytes(head + part), 1, out), ParseState::kNeedsMoreData);
  p.gap(out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].body.size(), 1000u);
  EXPECT_LE(out[0].body.capacity(), Limits{}.max_body_bytes);
}

TEST(Http1Parser, AFreshParserTakesLeadingGarbageAsAnErrorAndSearches) {
  // Decision: a parser expects a message start from its first byte; bytes
  // that are not one are a parse error, and the search finds what follows.
  const Script s{.steps = {B("lo world\", \"n\": 2}\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n")}};
  const Outcome o = whole(s);
  EXPECT_EQ(o.states, std::vector<ParseState>{ParseState::kInvalid});
  ASSERT_EQ(o.msgs.size(), 1u);
  EXPECT_EQ(o.msgs[0].path, "/a");
  EXPECT_FALSE(o.msgs[0].incomplete);
  EXPECT_EQ(o.errors_after.back(), 1u);
  expect_split_invariant(s);

  const Script resp{.kind = Kind::kResponse,
                    .steps = {B("ta\":[1,2]}HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")}};
  const Outcome r = whole(resp);
  EXPECT_EQ(r.states, std::vector<ParseState>{ParseState::kInvalid});
  ASSERT_EQ(r.msgs.size(), 1u);
  EXPECT_EQ(r.msgs[0].body, "ok");
  expect_split_invariant(resp);

  // Blank lines before a message are no error.
  const Outcome blank = whole(Script{.steps = {B("\r\n\r\nGET / HTTP/1.1\r\n\r\n")}});
  EXPECT_EQ(blank.states, std::vector<ParseState>{ParseState::kSuccess});
  EXPECT_EQ(blank.errors_after.back(), 0u);
}

TEST(Http1Parser, AnErrorInAChunkedBodyHandsOverWhatCame) {
  const Script s{.kind = Kind::kResponse,
                 .steps = {B("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n"
                             "HTTP/1.1 204 No Content\r\n\r\n")}};
  const Outcome o = whole(s);
  EXPECT_EQ(o.states, std::vector<ParseState>{ParseState::kInvalid});
  ASSERT_EQ(o.msgs.size(), 2u);
  EXPECT_EQ(o.msgs[0].status, 200);
  EXPECT_TRUE(o.msgs[0].incomplete);
  EXPECT_EQ(o.msgs[0].body, "hello");
  EXPECT_EQ(o.msgs[1].status, 204);
  EXPECT_FALSE(o.msgs[1].incomplete);
  EXPECT_EQ(o.errors_after.back(), 1u);
  expect_split_invariant(s);

  // A chunked HEAD response that was not noted: the next status line stands
  // where a chunk size should; it is found all the same.
  const Script unnoted{.kind = Kind::kResponse,
                       .steps = {B("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                   "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx")}};
  const Outcome u = whole(unnoted);
  ASSERT_EQ(u.msgs.size(), 2u);
  EXPECT_TRUE(u.msgs[0].incomplete);
  EXPECT_EQ(u.msgs[1].body, "x");
  expect_split_invariant(unnoted);
}

TEST(Http1Parser, ABodyToTheConnectionsEndComesOnlyWithAGap) {
  // No Content-Length, not chunked: the body runs until the connection
  // closes, which the parser is not told; gap() hands it over.
  const Script s{.kind = Kind::kResponse,
                 .limits = {.max_body_bytes = 4},
                 .steps = {B("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nabc"), B("def"), Gap()}};
  const Outcome o = whole(s);
  EXPECT_EQ(o.states, (std::vector<ParseState>{ParseState::kNeedsMoreData, ParseState::kNeedsMoreData}));
  EXPECT_EQ(o.in_message_after, (std::vector<bool>{true, true, false}));
  ASSERT_EQ(o.msgs.size(), 1u);
  const Message& m = o.msgs[0];
  EXPECT_EQ(m.version, Version::kHttp10);
  EXPECT_TRUE(m.incomplete);
  EXPECT_EQ(m.body, "abcd");
  EXPECT_EQ(m.body_bytes, 6u);
  EXPECT_TRUE(m.body_cut);
  EXPECT_EQ(m.first_ns, 1000u);
  EXPECT_EQ(m.last_ns, 2000u);
  expect_split_invariant(s);
}

TEST(Http1Parser, VersionsOtherThanOneAreErrors) {
  const Outcome v10 = whole(Script{.steps = {B("GET / HTTP/1.0\r\n\r\n")}});
  ASSERT_EQ(v10.msgs.size(), 1u);
  EXPECT_EQ(v10.msgs[0].version, Version::kHttp10);

  const Outcome v09 = whole(Script{.steps = {B("GET /\r\n\r\nGET /ok HTTP/1.1\r\n\r\n")}});
  EXPECT_EQ(v09.states, std::vector<ParseState>{ParseState::kInvalid});
  ASSERT_EQ(v09.msgs.size(), 1u);
  EXPECT_EQ(v09.msgs[0].path, "/ok");

  const Outcome v2 = whole(Script{.kind = Kind::kResponse, .steps = {B("HTTP/2.0 200 OK\r\n\r\n")}});
  EXPECT_EQ(v2.states, std::vector<ParseState>{ParseState::kInvalid});
  EXPECT_TRUE(v2.msgs.empty());
}

TEST(Http1Parser, HeadersKeepNamesOrderAndRepeats) {
  const Script s{.kind = Kind::kResponse,
                 .steps = {B("HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nX-Empty:\r\nx-MiXeD: v v \r\n"
                             "Content-Length: 0\r\n\r\n")}};
  const Outcome o = whole(s);
  ASSERT_EQ(o.msgs.size(), 1u);
  EXPECT_EQ(o.msgs[0].headers, (Headers{{"Set-Cookie", "a=1"},
                                        {"set-cookie", "b=2"},
                                        {"X-Empty", ""},
                                        {"x-MiXeD", "v v "},
                                        {"Content-Length", "0"}}));
  EXPECT_EQ(o.msgs[0].header("SET-COOKIE"), "a=1");
  expect_split_invariant(s);
}

TEST(Http1Parser, TimestampsComeFromTheFeedsThatCarriedTheBytes) {
  Parser p(Kind::kRequest);
  std::vector<Message> out;
  EXPECT_EQ(p.feed(bytes("GET /a HTTP/1.1\r\nContent-Length: 4\r\n\r\nab"), 100, out), ParseState::kNeedsMoreData);
  EXPECT_EQ(p.feed(bytes("cdGET /b HTTP/1.1\r\n"), 200, out), ParseState::kSuccess);
  EXPECT_EQ(p.feed(bytes("\r\n"), 300, out), ParseState::kSuccess);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].first_ns, 100u);
  EXPECT_EQ(out[0].last_ns, 200u);
  EXPECT_EQ(out[1].first_ns, 200u);
  EXPECT_EQ(out[1].last_ns, 300u);

  // A start line found by the search across feeds: its first byte's feed.
  p.gap(out);
  EXPECT_EQ(p.feed(bytes("xx GET /w HT"), 10, out), ParseState::kNeedsMoreData);
  EXPECT_EQ(p.feed(bytes("TP/1.1\r\nHost: a\r\n"), 20, out), ParseState::kNeedsMoreData);
  EXPECT_TRUE(p.in_message());
  EXPECT_EQ(p.feed(bytes("\r\n"), 30, out), ParseState::kSuccess);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[2].path, "/w");
  EXPECT_EQ(out[2].first_ns, 10u);
  EXPECT_EQ(out[2].last_ns, 30u);
  EXPECT_EQ(out[2].header_bytes, std::string_view("GET /w HTTP/1.1\r\nHost: a\r\n\r\n").size());
  EXPECT_EQ(p.parse_errors(), 0u);
}

TEST(Http1Parser, AMovedParserCarriesOn) {
  Parser a(Kind::kRequest);
  std::vector<Message> out;
  a.feed(bytes("POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n"), 1, out);
  Parser b = std::move(a);
  EXPECT_TRUE(b.in_message());
  EXPECT_EQ(b.feed(bytes("ok"), 2, out), ParseState::kSuccess);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].body, "ok");
}

TEST(Http1Parser, LooksLikeRequest) {
  auto l = [](std::string_view s) { return looks_like_request(bytes(s)); };
  EXPECT_EQ(l(""), ParseState::kNeedsMoreData);
  EXPECT_EQ(l("GE"), ParseState::kNeedsMoreData);
  EXPECT_EQ(l("GET "), ParseState::kNeedsMoreData);
  EXPECT_EQ(l("GET /x"), ParseState::kNeedsMoreData);
  EXPECT_EQ(l("GET /x HTTP/1."), ParseState::kNeedsMoreData);
  EXPECT_EQ(l("GET /x HTTP/1.1"), ParseState::kSuccess);
  EXPECT_EQ(l("GET /x HTTP/1.1\r\nHost: a\r\n\r\n"), ParseState::kSuccess);
  EXPECT_EQ(l("M-SEARCH * HTTP/1.1\r\n"), ParseState::kSuccess);
  EXPECT_EQ(l("CONNECT example.com:443 HTTP/1.1\r\n"), ParseState::kSuccess);
  EXPECT_EQ(l("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), ParseState::kInvalid);  // HTTP/2's preface
  EXPECT_EQ(l("EHLO mail.example\r\n"), ParseState::kInvalid);
  EXPECT_EQ(l("SET key value\r\n"), ParseState::kInvalid);
  EXPECT_EQ(l("\x16\x03\x01\x02\x00"s), ParseState::kInvalid);
  EXPECT_EQ(l(" GET / HTTP/1.1"), ParseState::kInvalid);
  EXPECT_EQ(l("GET  / HTTP/1.1"), ParseState::kInvalid);
  EXPECT_EQ(l("HTTP/1.1 200 OK\r\n"), ParseState::kInvalid);
  EXPECT_EQ(l(std::string(40, 'A') + " / HTTP/1.1"), ParseState::kInvalid);
}

TEST(Http1Parser, LooksLikeResponse) {
  auto l = [](std::string_view s) { return looks_like_response(bytes(s)); };
  EXPECT_EQ(l(""), ParseState::kNeedsMoreData);
  EXPECT_EQ(l("H"), ParseState::kNeedsMoreData);
  EXPECT_EQ(l("HTTP/1.1 2"), ParseState::kNeedsMoreData);
  EXPECT_EQ(l("HTTP/1.1 200"), ParseState::kSuccess);
  EXPECT_EQ(l("HTTP/1.0 404 Not Found\r\n"), ParseState::kSuccess);
  EXPECT_EQ(l("HTTX"), ParseState::kInvalid);
  EXPECT_EQ(l("HTTP/2 200"), ParseState::kInvalid);
  EXPECT_EQ(l("HTTP/1.1 2x0"), ParseState::kInvalid);
  EXPECT_EQ(l("GET / HTTP/1.1\r\n"), ParseState::kInvalid);
  EXPECT_EQ(l("\x00\x00\x12\x04\x00"s), ParseState::kInvalid);
}

}  // namespace
}  // namespace clearcap::http1
