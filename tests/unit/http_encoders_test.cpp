// Message and exchange events (the protocol layer's) in every encoder: JSON
// lines stay strict and carry the http object, text is readable and safe
// for a terminal, proto/eCaptureQ get the spec's type and the message as
// text.
#include <algorithm>
#include <string>

#include <gtest/gtest.h>
#include <simdjson.h>

#include "proto/http/message.h"
#include "sinks/ecaptureq/ecaptureq_convert.h"
#include "sinks/encoders/json_encoder.h"
#include "sinks/encoders/text_encoder.h"
#include "test_record.h"

namespace clearcap {
namespace {

struct Fixture {
  test::TestRecord rec;
  http::Message req, resp;
  http::Exchange x;
  Event base;

  Fixture() {
    rec.ipv4("127.0.0.1", 40000, "127.0.0.1", 443);
    rec.with_payload("x");
    base = rec.event();
    req.version = http::Version::kHttp2;
    req.kind = http::Kind::kRequest;
    req.method = "GET";
    req.path = "/p?q=\"1\"";
    req.authority = "h2.test";
    req.stream_id = 5;
    req.headers = {{":method", "GET"}, {":path", "/p?q=\"1\""}, {"x-evil", "a\x1b[2Jb"}};
    req.header_bytes = 40;
    resp.version = http::Version::kHttp2;
    resp.kind = http::Kind::kResponse;
    resp.status = 200;
    resp.stream_id = 5;
    resp.headers = {{":status", "200"}, {"content-encoding", "gzip"}};
    resp.body = std::string("\x1f\x8b\x08", 3);
    resp.body_bytes = 3;
    resp.shown = {http::DecodedBody::Status::kDecoded, "decoded text\n"};
    x.request = &req;
    x.response = &resp;
    x.wait_ns = 1'500'000;
    x.total_ns = 2'000'000;
  }
  Event message(const http::Message& m, PayloadKind k) {
    Event e = base;
    e.record_type = kRecHttpMessage;
    e.kind = k;
    e.http = &m;
    return e;
  }
  Event exchange() {
    Event e = base;
    e.record_type = kRecHttpExchange;
    e.kind = PayloadKind::kHttpExchange;
    e.exchange = &x;
    return e;
  }
};

TEST(HttpEncoders, JsonMessageAndExchangeAreStrictLines) {
  Fixture f;
  JsonEncoder enc({});
  std::string out;
  enc.encode(f.message(f.resp, PayloadKind::kHttp2Response), out);
  enc.encode(f.message(f.req, PayloadKind::kHttp2Request), out);
  enc.encode(f.exchange(), out);
  simdjson::dom::parser parser;
  std::vector<simdjson::dom::object> objs;
  size_t start = 0;
  std::vector<std::string> lines;
  for (size_t nl; (nl = out.find('\n', start)) != std::string::npos; start = nl + 1)
    lines.push_back(out.substr(start, nl - start));
  ASSERT_EQ(lines.size(), 3u) << out;
  simdjson::dom::object o;
  ASSERT_EQ(parser.parse(lines[0]).get(o), simdjson::SUCCESS) << lines[0];
  EXPECT_EQ(std::string_view(o["type"]), "http2_response");
  EXPECT_EQ(int64_t(o["http"]["status"]), 200);
  EXPECT_EQ(std::string_view(o["http"]["body"]), "decoded text\n");
  EXPECT_EQ(std::string_view(o["http"]["body_encoding"]), "gzip");
  EXPECT_EQ(std::string_view(o["http"]["body_decoded"]), "decoded");
  EXPECT_TRUE(o["payload"].error());  // no payload: the data events carry the bytes
  ASSERT_EQ(parser.parse(lines[1]).get(o), simdjson::SUCCESS) << lines[1];
  EXPECT_EQ(std::string_view(o["http"]["path"]), "/p?q=\"1\"");
  simdjson::dom::array hs = o["http"]["headers"];
  EXPECT_EQ(hs.size(), 3u);
  EXPECT_EQ(std::string_view(hs.at(2).at(1)), "a\x1b[2Jb");  // exact, escaped in the line
  ASSERT_EQ(parser.parse(lines[2]).get(o), simdjson::SUCCESS) << lines[2];
  EXPECT_EQ(std::string_view(o["type"]), "http_exchange");
  EXPECT_EQ(int64_t(o["http"]["wait_ns"]), 1'500'000);
  EXPECT_EQ(int64_t(o["http"]["total_ns"]), 2'000'000);
  EXPECT_EQ(int64_t(o["http"]["stream_id"]), 5);
  EXPECT_EQ(std::string_view(o["http"]["authority"]), "h2.test");
  EXPECT_TRUE(bool(o["http"]["request_seen"]));
}

TEST(HttpEncoders, JsonExchangeWithAMissingHalf) {
  Fixture f;
  f.x.response = nullptr;
  f.x.wait_ns = f.x.total_ns = -1;
  JsonEncoder enc({});
  std::string out;
  enc.encode(f.exchange(), out);
  simdjson::dom::parser parser;
  simdjson::dom::object o;
  ASSERT_EQ(parser.parse(out).get(o), simdjson::SUCCESS) << out;
  EXPECT_FALSE(bool(o["http"]["response_seen"]));
  EXPECT_EQ(int64_t(o["http"]["wait_ns"]), -1);
  EXPECT_EQ(int64_t(o["http"]["status"]), 0);
}

TEST(HttpEncoders, TextShowsTheMessageAndNoControlBytes) {
  Fixture f;
  TextEncoder enc({});
  std::string out;
  enc.encode(f.message(f.req, PayloadKind::kHttp2Request), out);
  EXPECT_NE(out.find("GET https://h2.test/p?q=\"1\" HTTP/2 (stream 5)\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x-evil: a?[2Jb\n"), std::string::npos) << out;
  EXPECT_EQ(out.find('\x1b'), std::string::npos);
  out.clear();
  enc.encode(f.message(f.resp, PayloadKind::kHttp2Response), out);
  EXPECT_NE(out.find("HTTP/2 200 (stream 5)\n"), std::string::npos) << out;
  EXPECT_NE(out.find("Content-Encoding gzip decoded]\ndecoded text\n"), std::string::npos) << out;
  out.clear();
  enc.encode(f.exchange(), out);
  EXPECT_NE(out.find(" http_exchange GET h2.test /p?q=\"1\" -> 200 HTTP/2 stream 5 wait 1.500 ms total 2.000 ms "
                     "request 40+0 B response 0+3 B\n"),
            std::string::npos)
      << out;
}

TEST(HttpEncoders, TextDataEventOfAMessageIsOneLine) {
  Fixture f;
  Event e = f.base;
  e.kind = PayloadKind::kHttp1Request;
  e.consumed = true;
  TextEncoder enc({});
  std::string out;
  enc.encode(e, out);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  EXPECT_NE(out.find("http1_request (shown as a message)"), std::string::npos) << out;
}

TEST(HttpEncoders, EcaptureqTypeAndPayloadOfAMessage) {
  Fixture f;
  ecaptureq::LogEntry entry;
  fill_log_entry(f.message(f.req, PayloadKind::kHttp2Request), {}, entry);
  EXPECT_EQ(entry.event_payload().type(), 2u);
  EXPECT_NE(entry.event_payload().payload().find("GET https://h2.test/p?q=\"1\" HTTP/2"), std::string::npos);
  EXPECT_EQ(entry.event_payload().length(), entry.event_payload().payload().size());
  fill_log_entry(f.message(f.resp, PayloadKind::kHttp2Response), {}, entry);
  EXPECT_EQ(entry.event_payload().type(), 4u);
  Event d = f.base;
  d.kind = PayloadKind::kHttp1Response;
  fill_log_entry(d, {}, entry);
  EXPECT_EQ(entry.event_payload().type(), 3u);  // decided by the stage, not by the bytes ("x")
}

}  // namespace
}  // namespace clearcap
