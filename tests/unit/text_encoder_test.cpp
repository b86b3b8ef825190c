#include "sinks/encoders/text_encoder.h"

#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include "test_record.h"

namespace clearcap {
namespace {

using test::TestRecord;
using namespace std::string_view_literals;

std::string encode(const Event& ev, FormatOptions opts = {}) {
  TextEncoder enc(opts);
  std::string out;
  enc.encode(ev, out);
  return out;
}

std::string header_of(const std::string& out) { return out.substr(0, out.find('\n')); }

TEST(TextEncoder, HeaderAndTextPayload) {
  TestRecord rec;
  rec.with_payload("GET / HTTP/1.1\r\nHost: x\r\n\r\n").ipv4("127.0.0.1", 54321, "127.0.0.1", 8443);
  rec.raw.pid = 1234;
  rec.raw.tid = 1234;
  EXPECT_EQ(encode(rec.event()),
            "2026-11-22T18:44:00.123456789Z curl pid=1234 tid=1234 uid=0 SSL_write write fd=5 "
            "127.0.0.1:54321 -> 127.0.0.1:8443 conn=42 seq=0 len=27\n"
            "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
            "\n");
}

TEST(TextEncoder, TextWithoutFinalNewlineGetsOne) {
  TestRecord rec;
  rec.with_payload("hello\tworld");
  const std::string out = encode(rec.event());
  EXPECT_EQ(out.substr(out.find('\n') + 1), "hello\tworld\n\n");
}

TEST(TextEncoder, ReadWithoutAddress) {
  TestRecord rec;
  rec.with_payload("x");
  rec.raw.direction = CC_DIR_READ;
  rec.raw.source = CC_SRC_SSL_READ_EX;
  rec.raw.fd = -1;
  rec.raw.seq = 77;
  EXPECT_EQ(header_of(encode(rec.event())),
            "2026-11-22T18:44:00.123456789Z curl pid=1234 tid=1235 uid=0 SSL_read_ex read fd=-1 "
            "(no address) conn=42 seq=77 len=1");
}

TEST(TextEncoder, Ipv6Brackets) {
  TestRecord rec;
  rec.with_payload("x").ipv6("2001:db8::1", 443, "::1", 54321);
  EXPECT_NE(header_of(encode(rec.event())).find(" fd=5 [2001:db8::1]:443 -> [::1]:54321 conn=42 "),
            std::string::npos);
}

TEST(TextEncoder, TruncationMarker) {
  TestRecord rec;
  rec.with_payload("hello world");
  const std::string out = encode(rec.event(), FormatOptions{.truncate = 4});
  EXPECT_EQ(out.substr(out.find(" len=")), " len=4 (truncated from 11)\nhell\n\n");
}

TEST(TextEncoder, ChunkOfALargerCall) {
  TestRecord rec;
  rec.with_payload(std::string(100, 'a'));
  rec.raw.call_len = 40000;
  rec.raw.call_off = 16384;
  rec.raw.seq = 16384;
  const std::string header = header_of(encode(rec.event(), FormatOptions{.truncate = 10}));
  EXPECT_EQ(header.substr(header.find(" seq=")),
            " seq=16384 len=10 chunk=16384/40000 (truncated from 100)");
}

TEST(TextEncoder, WholeCallHasNoChunkMarker) {
  TestRecord rec;
  rec.with_payload("abc");
  EXPECT_EQ(header_of(encode(rec.event())).find("chunk="), std::string::npos);
}

TEST(TextEncoder, BinaryPayloadIsHexDumped) {
  std::string bytes(20, '\0');
  for (int i = 0; i < 20; ++i) bytes[i] = static_cast<char>(i);
  TestRecord rec;
  rec.with_payload(bytes);
  const std::string out = encode(rec.event());
  EXPECT_EQ(out.substr(out.find('\n') + 1),
            "00000000  00 01 02 03 04 05 06 07  08 09 0a 0b 0c 0d 0e 0f  |................|\n"
            "00000010  10 11 12 13                                       |....|\n"
            "\n");
}

TEST(TextEncoder, HexOptionDumpsText) {
  TestRecord rec;
  rec.with_payload("GET / HTTP/1.1\r\nA");
  const std::string out = encode(rec.event(), FormatOptions{.hex = true});
  EXPECT_EQ(out.substr(out.find('\n') + 1),
            "00000000  47 45 54 20 2f 20 48 54  54 50 2f 31 2e 31 0d 0a  |GET / HTTP/1.1..|\n"
            "00000010  41                                                |A|\n"
            "\n");
}

TEST(TextEncoder, HexDumpOfHighBytes) {
  TestRecord rec;
  rec.with_payload("\x7f\x80\xff~ "sv);
  const std::string out = encode(rec.event());
  EXPECT_EQ(out.substr(out.find('\n') + 1),
            "00000000  7f 80 ff 7e 20                                    |...~ |\n\n");
}

TEST(TextEncoder, ControlCharactersForceHexDump) {
  // Raw escape sequences or C1 controls must never reach a terminal.
  for (const std::string_view payload : {"a\x1b[2Jb"sv, "a\0b"sv, "del\x7f"sv, "csi\xc2\x9b"sv, "bad\xff"sv}) {
    TestRecord rec;
    rec.with_payload(payload);
    const std::string out = encode(rec.event());
    EXPECT_EQ(out.substr(out.find('\n') + 1, 10), "00000000  ") << out;
  }
  // Non-ASCII text that is not a control stays text.
  TestRecord rec;
  rec.with_payload("caf\xc3\xa9 \xc2\xa0\n");
  const std::string out = encode(rec.event());
  EXPECT_EQ(out.substr(out.find('\n') + 1), "caf\xc3\xa9 \xc2\xa0\n\n");
}

TEST(TextEncoder, CommControlCharactersAreReplaced) {
  TestRecord rec;
  rec.set_comm("evil\x1b[2J\x07");
  EXPECT_EQ(header_of(encode(rec.event())).substr(31, 13), "evil?[2J? pid");
}

TEST(TextEncoder, EmptyPayload) {
  TestRecord rec;
  const std::string out = encode(rec.event());
  EXPECT_EQ(out.substr(out.find('\n')), "\n\n");
  EXPECT_NE(out.find(" len=0\n"), std::string::npos);
}

}  // namespace
}  // namespace clearcap
