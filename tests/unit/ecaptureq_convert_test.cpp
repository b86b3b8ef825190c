// --format proto: length-delimited LogEntry messages, decoded back with
// libprotobuf's own delimited reader (the counterpart of writeDelimitedTo).
#include "sinks/ecaptureq/ecaptureq_convert.h"

#include <string>
#include <vector>

#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/util/delimited_message_util.h>
#include <gtest/gtest.h>

#include "sinks/ecaptureq/ecaptureq_server.h"
#include "test_record.h"

namespace clearcap {
namespace {

using test::TestRecord;

std::vector<ecaptureq::LogEntry> decode_all(const std::string& bytes) {
  google::protobuf::io::ArrayInputStream in(bytes.data(), static_cast<int>(bytes.size()));
  std::vector<ecaptureq::LogEntry> out;
  while (true) {
    ecaptureq::LogEntry e;
    bool clean_eof = false;
    if (!google::protobuf::util::ParseDelimitedFromZeroCopyStream(&e, &in, &clean_eof)) {
      EXPECT_TRUE(clean_eof) << "garbage after message " << out.size();
      break;
    }
    out.push_back(std::move(e));
  }
  return out;
}

TEST(EcaptureqConvert, EveryEventFieldFilledAndDecodable) {
  TestRecord req;
  req.with_payload("GET /tok123 HTTP/1.1\r\nHost: x\r\n\r\n").ipv4("127.0.0.1", 40000, "10.0.0.2", 443);
  req.raw.pid = 4242;
  req.raw.conn_id = 7;
  TestRecord resp;
  resp.with_payload("HTTP/1.1 200 OK\r\n\r\n").ipv4("10.0.0.2", 443, "127.0.0.1", 40000);
  resp.raw.direction = CC_DIR_READ;
  resp.raw.source = CC_SRC_SSL_READ;
  resp.raw.conn_id = 7;
  TestRecord bin;
  bin.with_payload(std::string("\x00\x01\xff\x80", 4)).ipv6("::1", 1, "fe80::1", 2);
  bin.raw.conn_id = 8;

  ProtoEncoder enc(FormatOptions{});
  std::string out;
  const Event e1 = req.event(1'795'373'040'123'456'789ull);
  enc.encode(e1, out);
  const Event e2 = resp.event(1'795'373'040'223'456'789ull);
  enc.encode(e2, out);
  const Event e3 = bin.event();
  enc.encode(e3, out);

  const auto entries = decode_all(out);
  ASSERT_EQ(entries.size(), 3u);
  for (const auto& en : entries) {
    EXPECT_EQ(en.log_type(), ecaptureq::LOG_TYPE_EVENT);
    ASSERT_TRUE(en.has_event_payload());
  }
  const auto& a = entries[0].event_payload();
  EXPECT_EQ(a.timestamp(), 1'795'373'040'123'456'789ll);
  EXPECT_EQ(a.src_ip(), "127.0.0.1");
  EXPECT_EQ(a.src_port(), 40000u);
  EXPECT_EQ(a.dst_ip(), "10.0.0.2");
  EXPECT_EQ(a.dst_port(), 443u);
  EXPECT_EQ(a.pid(), 4242);
  EXPECT_EQ(a.pname(), "curl");
  EXPECT_EQ(a.type(), 1u);  // HTTP/1 request
  EXPECT_EQ(a.payload(), "GET /tok123 HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(a.length(), a.payload().size());
  const auto& b = entries[1].event_payload();
  EXPECT_EQ(b.type(), 3u);  // HTTP/1 response
  // Same connection, other direction: another uuid; same run prefix.
  EXPECT_NE(a.uuid(), b.uuid());
  EXPECT_EQ(a.uuid().substr(0, 17), b.uuid().substr(0, 17));
  EXPECT_TRUE(a.uuid().ends_with("-7-w")) << a.uuid();
  EXPECT_TRUE(b.uuid().ends_with("-7-r")) << b.uuid();
  const auto& c = entries[2].event_payload();
  EXPECT_EQ(c.type(), 0u);
  EXPECT_EQ(c.src_ip(), "::1");
  EXPECT_EQ(c.dst_ip(), "fe80::1");
  EXPECT_EQ(c.payload(), std::string("\x00\x01\xff\x80", 4));
  EXPECT_EQ(c.length(), 4u);
  // Same connection and direction, another event: the same uuid.
  std::string again;
  enc.encode(req.event(), again);
  EXPECT_EQ(decode_all(again).at(0).event_payload().uuid(), a.uuid());
}

TEST(EcaptureqConvert, TruncateAndHex) {
  TestRecord rec;
  rec.with_payload("GET /abcdefghijklmnop HTTP/1.1\r\n").ipv4("127.0.0.1", 1, "127.0.0.1", 2);
  std::string out;
  ProtoEncoder(FormatOptions{false, 8}).encode(rec.event(), out);
  ProtoEncoder(FormatOptions{true, 0}).encode(rec.event(), out);
  const auto entries = decode_all(out);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].event_payload().payload(), "GET /abc");
  EXPECT_EQ(entries[0].event_payload().length(), 8u);
  EXPECT_EQ(entries[0].event_payload().type(), 1u);  // classified on the whole payload
  EXPECT_EQ(entries[1].event_payload().payload().substr(0, 60),
            "00000000  47 45 54 20 2f 61 62 63  64 65 66 67 68 69 6a 6b  ");
}

TEST(EcaptureqConvert, LogLineAndLargeMessageLengthPrefix) {
  ecaptureq::LogEntry e;
  std::string out;
  fill_log_line("ready: attached", e);
  append_delimited(e, out);
  // A payload over 127 bytes needs a multi-byte varint length.
  TestRecord rec;
  rec.with_payload(std::string(16000, 'q'));
  ProtoEncoder(FormatOptions{}).encode(rec.event(), out);
  const auto entries = decode_all(out);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].log_type(), ecaptureq::LOG_TYPE_PROCESS_LOG);
  EXPECT_EQ(entries[0].run_log(), "ready: attached");
  EXPECT_EQ(entries[1].event_payload().payload(), std::string(16000, 'q'));
  EXPECT_EQ(entries[1].event_payload().src_ip(), "");  // no tuple: empty, port 0
  EXPECT_EQ(entries[1].event_payload().src_port(), 0u);
}

TEST(EcaptureqConvert, CommThatIsNotUtf8StillParses) {
  TestRecord rec;
  rec.set_comm("bad\xff\xfe").with_payload("x");
  std::string out;
  ProtoEncoder(FormatOptions{}).encode(rec.event(), out);
  const auto entries = decode_all(out);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].event_payload().pname(), "bad??");
}

TEST(EcaptureqConvert, TypeMapping) {
  EXPECT_EQ(ecq_event_type("http1_request"), EcqEventType::kHttp1Request);
  EXPECT_EQ(ecq_event_type("http1_response"), EcqEventType::kHttp1Response);
  EXPECT_EQ(ecq_event_type("http2_request"), EcqEventType::kHttp2Request);
  EXPECT_EQ(ecq_event_type("http2_response"), EcqEventType::kHttp2Response);
  EXPECT_EQ(ecq_event_type("websocket"), EcqEventType::kWebSocket);
  EXPECT_EQ(ecq_event_type("data"), EcqEventType::kUnknown);
}

TEST(EcaptureqConvert, HeartbeatAndLogLine) {
  ecaptureq::LogEntry e;
  fill_heartbeat(3, 1700000000, e);
  EXPECT_EQ(e.log_type(), ecaptureq::LOG_TYPE_HEARTBEAT);
  EXPECT_EQ(e.heartbeat_payload().count(), 3);
  EXPECT_EQ(e.heartbeat_payload().timestamp(), 1700000000);
  EXPECT_EQ(e.heartbeat_payload().message(), "heartbeat:3");
  fill_log_line("clearcap: ready", e);
  EXPECT_EQ(e.log_type(), ecaptureq::LOG_TYPE_PROCESS_LOG);
  EXPECT_EQ(e.run_log(), "clearcap: ready");
}

TEST(WsUrl, Forms) {
  auto u = parse_ws_url("ws://127.0.0.1:28257/");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 28257);
  EXPECT_EQ(u->path, "/");
  u = parse_ws_url("ws://:0");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->host, "127.0.0.1");  // loopback unless told otherwise
  EXPECT_EQ(u->path, "/");
  u = parse_ws_url("ws://[::1]:9/events");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->path, "/events");
  for (std::string_view bad : {"", "http://x:1/", "wss://x:1/", "ws://x/", "ws://x:99999/", "ws://x:1/?a=b", "ws://[::1/"})
    EXPECT_FALSE(parse_ws_url(bad)) << bad;
}

}  // namespace
}  // namespace clearcap
