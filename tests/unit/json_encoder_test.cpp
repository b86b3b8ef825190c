// Every line the JSON encoder writes must parse with a strict parser
// (simdjson DOM) and carry back exactly what went in.
#include "sinks/encoders/json_encoder.h"

#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>
#include <simdjson.h>

#include "sinks/encoders/format_util.h"
#include "test_record.h"

namespace clearcap {
namespace {

using test::TestRecord;
using namespace std::string_view_literals;

std::string encode_line(const Event& ev, FormatOptions opts = {}) {
  JsonEncoder enc(opts);
  std::string out;
  enc.encode(ev, out);
  // Exactly one line: no raw newline may leak out of a string.
  EXPECT_FALSE(out.empty());
  EXPECT_EQ(out.find('\n'), out.size() - 1) << out;
  return out;
}

simdjson::dom::object parse(simdjson::dom::parser& parser, const std::string& line) {
  simdjson::dom::object obj;
  const auto err = parser.parse(line).get(obj);
  EXPECT_EQ(err, simdjson::SUCCESS) << simdjson::error_message(err) << "\n" << line;
  return obj;
}

std::string base64_decode(std::string_view in) {
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  EXPECT_EQ(in.size() % 4, 0u) << in;
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (const char c : in) {
    if (c == '=') break;
    const size_t v = kAlphabet.find(c);
    EXPECT_NE(v, std::string_view::npos) << "bad base64 char " << c;
    acc = acc << 6 | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

std::string str(simdjson::dom::object& obj, const char* key) {
  return std::string(std::string_view(obj[key]));
}

// The payload bytes a line carries, from "payload" or "payload_b64" (exactly
// one of them must be present).
std::string payload_of(simdjson::dom::object& obj, bool* was_b64 = nullptr) {
  simdjson::dom::element text, b64;
  const bool has_text = obj["payload"].get(text) == simdjson::SUCCESS;
  const bool has_b64 = obj["payload_b64"].get(b64) == simdjson::SUCCESS;
  EXPECT_NE(has_text, has_b64);
  if (was_b64) *was_b64 = has_b64;
  return has_text ? std::string(std::string_view(text)) : base64_decode(std::string_view(b64));
}

// Fields that come straight from the record.
void expect_common_fields(simdjson::dom::object& obj, const Event& ev) {
  EXPECT_EQ(uint64_t(obj["ts_ns"]), ev.wall_ns);
  EXPECT_EQ(uint64_t(obj["pid"]), ev.pid);
  EXPECT_EQ(uint64_t(obj["tid"]), ev.tid);
  EXPECT_EQ(uint64_t(obj["uid"]), ev.uid);
  EXPECT_EQ(str(obj, "comm"), ev.comm);
  EXPECT_EQ(uint64_t(obj["cgroup_id"]), ev.cgroup_id);
  EXPECT_EQ(str(obj, "module"), ev.module());
  EXPECT_EQ(str(obj, "source"), source_name(ev.source));
  EXPECT_EQ(str(obj, "direction"), direction_name(ev.direction));
  EXPECT_EQ(int64_t(obj["fd"]), ev.fd);
  EXPECT_EQ(uint64_t(obj["conn_id"]), ev.conn_id);
  EXPECT_EQ(uint64_t(obj["seq"]), ev.seq);
  EXPECT_EQ(uint64_t(obj["call_len"]), ev.call_len);
  EXPECT_EQ(uint64_t(obj["call_off"]), ev.call_off);
}

struct Case {
  std::string name;
  TestRecord rec;
  FormatOptions opts;
  std::string shown;  // payload expected in the line
  bool b64 = false;
  bool truncated = false;
};

std::vector<Case> cases() {
  std::vector<Case> cs;
  auto add = [&](std::string name, std::string_view payload, FormatOptions opts = {}) -> Case& {
    Case& c = cs.emplace_back();
    c.name = std::move(name);
    c.rec.with_payload(payload).ipv4("127.0.0.1", 54321, "10.1.2.3", 8443);
    c.opts = opts;
    c.shown = std::string(payload);
    return c;
  };
  add("ascii", "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");
  add("ipv6", "hello").rec.ipv6("::1", 443, "2001:db8::5", 55555);
  {
    Case& c = add("no_tuple", "x");
    c.rec.raw.flags &= ~CC_FLAG_HAS_TUPLE;
  }
  add("empty", "");
  add("escapes", "q\"b\\s/ n\n r\r t\t b\b f\f nul\0 x01\x01 x1f\x1f del\x7f end"sv);
  add("multibyte", "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8e\x89 \xef\xbf\xbf");
  {
    std::string all(256, '\0');
    for (int i = 0; i < 256; ++i) all[i] = static_cast<char>(i);
    add("binary_all_bytes", all).b64 = true;
  }
  add("invalid_lone_continuation", "abc\x80").b64 = true;
  add("invalid_ff", "\xff\xfe\xfd").b64 = true;
  add("invalid_overlong", "\xc0\xaf").b64 = true;
  add("invalid_surrogate", "\xed\xa0\x80").b64 = true;
  add("invalid_cut_sequence", "ok\xe6\x97").b64 = true;
  add("b64_pad1", "\xff\x01").b64 = true;
  add("b64_pad2", "\xff").b64 = true;
  add("b64_nopad", "\xff\x01\x02").b64 = true;
  {
    Case& c = add("truncated_text", "hello world", FormatOptions{.truncate = 5});
    c.shown = "hello";
    c.truncated = true;
  }
  {
    // The cut falls inside "é": the partial character goes, the text stays text.
    Case& c = add("truncated_mid_char", "h\xc3\xa9llo", FormatOptions{.truncate = 2});
    c.shown = "h";
    c.truncated = true;
  }
  {
    Case& c = add("truncated_binary", "\xff\xfe\xfd\xfc\xfb", FormatOptions{.truncate = 4});
    c.shown = "\xff\xfe\xfd\xfc";
    c.b64 = true;
    c.truncated = true;
  }
  add("truncate_larger_than_payload", "short", FormatOptions{.truncate = 100});
  {
    std::string big(CC_CHUNK_MAX, '\x01');
    add("max_chunk_controls", big);
  }
  {
    Case& c = add("read_direction", "HTTP/1.1 200 OK\r\n\r\n");
    c.rec.raw.direction = CC_DIR_READ;
    c.rec.raw.source = CC_SRC_SSL_READ;
    c.rec.raw.fd = -1;
    c.rec.raw.uid = 4294967295u;
    c.rec.raw.conn_id = ~0ull;
    c.rec.raw.seq = 1ull << 40;
  }
  return cs;
}


// Every length around the 6-byte fast path's edges and a long one, all byte
// values: the encoder's output decodes back to its input (an independent
// decoder above), padded as RFC 4648 says.
TEST(Base64, EveryLengthRoundTrips) {
  std::mt19937 rng(42);
  std::vector<size_t> lengths;
  for (size_t n = 0; n <= 40; ++n) lengths.push_back(n);
  lengths.insert(lengths.end(), {255, 256, 257, 4096, 65535, 65536, 65537});
  for (size_t n : lengths) {
    std::vector<uint8_t> in(n);
    for (auto& b : in) b = static_cast<uint8_t>(rng());
    std::string out = "prefix:";
    append_base64(out, in);
    ASSERT_EQ(out.rfind("prefix:", 0), 0u);
    const std::string_view enc = std::string_view(out).substr(7);
    ASSERT_EQ(enc.size(), (n + 2) / 3 * 4) << n;
    EXPECT_EQ(enc.size() - enc.find_last_not_of('=') - 1, (3 - n % 3) % 3) << n;
    const std::string back = base64_decode(enc);
    EXPECT_EQ(back, std::string(in.begin(), in.end())) << n;
  }
  std::string known;
  append_base64(known, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>("Many hands make light work."), 27));
  EXPECT_EQ(known, "TWFueSBoYW5kcyBtYWtlIGxpZ2h0IHdvcmsu");
}

// Long inputs are checked on a prefix of whole characters first: a
// character across the prefix's edge, at every offset, must not make valid
// text look invalid, and a bad byte after the prefix is still found.
TEST(Utf8, LongTextIsJudgedWholeWhateverSitsAtThePrefixEdge) {
  for (size_t lead = 56; lead <= 68; ++lead) {
    for (const std::string ch : {"\u00e9", "\u20ac", "\U0001F600"}) {
      std::string s(lead, 'a');
      s += ch;
      s += std::string(400, 'b');
      EXPECT_TRUE(is_valid_utf8(s)) << lead << " " << ch.size();
      std::string bad = s;
      bad[300] = static_cast<char>(0xff);
      EXPECT_FALSE(is_valid_utf8(bad)) << lead << " " << ch.size();
    }
  }
  std::string binary(1000, 'x');
  binary[10] = static_cast<char>(0xc3);  // a lead byte without its continuation
  EXPECT_FALSE(is_valid_utf8(binary));
}

TEST(JsonEncoder, EveryLineParsesAndRoundTrips) {
  simdjson::dom::parser parser;
  for (Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const Event ev = c.rec.event();
    const std::string line = encode_line(ev, c.opts);
    simdjson::dom::object obj = parse(parser, line);
    expect_common_fields(obj, ev);
    bool was_b64 = false;
    EXPECT_EQ(payload_of(obj, &was_b64), c.shown);
    EXPECT_EQ(was_b64, c.b64);
    EXPECT_EQ(uint64_t(obj["len"]), c.shown.size());
    EXPECT_EQ(bool(obj["truncated"]), c.truncated);
  }
}

TEST(JsonEncoder, KeyOrder) {
  TestRecord rec;
  rec.with_payload("hi").ipv4("127.0.0.1", 1, "127.0.0.1", 2);
  const std::string line = encode_line(rec.event());
  simdjson::dom::parser parser;
  simdjson::dom::object obj = parse(parser, line);
  std::vector<std::string> keys;
  for (auto field : obj) keys.emplace_back(field.key);
  const std::vector<std::string> expected = {
      "time",     "ts_ns",    "pid",    "tid",      "uid",      "comm",      "cgroup_id",
      "module",   "source",   "direction", "fd",    "family",   "src",       "dst",
      "src_ip",   "src_port", "dst_ip", "dst_port", "conn_id",  "seq",       "len",
      "call_len", "call_off", "truncated", "type",  "payload"};
  EXPECT_EQ(keys, expected);
}

TEST(JsonEncoder, Ipv4Tuple) {
  TestRecord rec;
  rec.with_payload("x").ipv4("127.0.0.1", 54321, "10.1.2.3", 8443);
  simdjson::dom::parser parser;
  simdjson::dom::object obj = parse(parser, encode_line(rec.event()));
  EXPECT_EQ(str(obj, "family"), "ipv4");
  EXPECT_EQ(str(obj, "src"), "127.0.0.1:54321");
  EXPECT_EQ(str(obj, "dst"), "10.1.2.3:8443");
  EXPECT_EQ(str(obj, "src_ip"), "127.0.0.1");
  EXPECT_EQ(uint64_t(obj["src_port"]), 54321u);
  EXPECT_EQ(str(obj, "dst_ip"), "10.1.2.3");
  EXPECT_EQ(uint64_t(obj["dst_port"]), 8443u);
}

TEST(JsonEncoder, Ipv6Tuple) {
  TestRecord rec;
  rec.with_payload("x").ipv6("::1", 443, "2001:db8::5", 55555);
  simdjson::dom::parser parser;
  simdjson::dom::object obj = parse(parser, encode_line(rec.event()));
  EXPECT_EQ(str(obj, "family"), "ipv6");
  EXPECT_EQ(str(obj, "src"), "[::1]:443");
  EXPECT_EQ(str(obj, "dst"), "[2001:db8::5]:55555");
  EXPECT_EQ(str(obj, "src_ip"), "::1");
  EXPECT_EQ(uint64_t(obj["src_port"]), 443u);
  EXPECT_EQ(str(obj, "dst_ip"), "2001:db8::5");
  EXPECT_EQ(uint64_t(obj["dst_port"]), 55555u);
}

TEST(JsonEncoder, NoTuple) {
  // The family and ports are set but the flag says they are not valid.
  TestRecord rec;
  rec.with_payload("x").ipv4("127.0.0.1", 1, "127.0.0.1", 2);
  rec.raw.flags &= ~CC_FLAG_HAS_TUPLE;
  simdjson::dom::parser parser;
  simdjson::dom::object obj = parse(parser, encode_line(rec.event()));
  EXPECT_EQ(str(obj, "family"), "unknown");
  EXPECT_EQ(str(obj, "src"), "");
  EXPECT_EQ(str(obj, "dst"), "");
  EXPECT_EQ(str(obj, "src_ip"), "");
  EXPECT_EQ(uint64_t(obj["src_port"]), 0u);
  EXPECT_EQ(str(obj, "dst_ip"), "");
  EXPECT_EQ(uint64_t(obj["dst_port"]), 0u);
}

TEST(JsonEncoder, UnknownFamilyWithTupleFlag) {
  TestRecord rec;
  rec.with_payload("x").ipv4("127.0.0.1", 1, "127.0.0.1", 2);
  rec.raw.family = 1;  // AF_UNIX
  simdjson::dom::parser parser;
  simdjson::dom::object obj = parse(parser, encode_line(rec.event()));
  EXPECT_EQ(str(obj, "family"), "unknown");
  EXPECT_EQ(str(obj, "src"), "");
  EXPECT_EQ(uint64_t(obj["dst_port"]), 0u);
}

TEST(JsonEncoder, EscapesAreExact) {
  TestRecord rec;
  rec.with_payload("\"\\/\n\r\t\b\f\0\x01\x1f\x7f \xc3\xa9"sv);
  const std::string line = encode_line(rec.event());
  EXPECT_NE(line.find(R"("payload":"\"\\/\n\r\t\b\f\u0000\u0001\u001f\u007f )"
                      "\xc3\xa9\"}"),
            std::string::npos)
      << line;
  for (const char c : line.substr(0, line.size() - 1)) {
    EXPECT_FALSE(static_cast<uint8_t>(c) < 0x20 || c == 0x7f) << "raw control byte in " << line;
  }
}

TEST(JsonEncoder, CommThatIsNotUtf8) {
  // A process can name itself with any bytes: the line must stay valid JSON
  // and the bytes recoverable (each as its Latin-1 code point).
  TestRecord rec;
  rec.set_comm("a\x1b[1m\xff\"");
  const std::string line = encode_line(rec.event());
  EXPECT_NE(line.find(R"("comm":"a\u001b[1m\u00ff\"")"), std::string::npos) << line;
  simdjson::dom::parser parser;
  simdjson::dom::object obj = parse(parser, line);
  EXPECT_EQ(str(obj, "comm"), "a\x1b[1m\xc3\xbf\"");
}

TEST(JsonEncoder, Base64Exact) {
  TestRecord rec;
  rec.with_payload("\xff\xfe\x00\x01" "abc"sv);
  const std::string line = encode_line(rec.event());
  EXPECT_NE(line.find(R"("payload_b64":"//4AAWFiYw=="})"), std::string::npos) << line;
}

TEST(JsonEncoder, TimeFormat) {
  struct {
    uint64_t wall_ns;
    const char* time;
  } const cases[] = {
      {1'795'373'040'123'456'789ull, "2026-11-22T18:44:00.123456789Z"},
      {0, "1970-01-01T00:00:00.000000000Z"},
      {5, "1970-01-01T00:00:00.000000005Z"},
      {1'709'251'199'999'999'999ull, "2024-02-29T23:59:59.999999999Z"},
      {946'684'800'000'000'000ull, "2000-01-01T00:00:00.000000000Z"},
  };
  simdjson::dom::parser parser;
  for (const auto& c : cases) {
    TestRecord rec;
    const Event ev = rec.event(c.wall_ns);
    const std::string line = encode_line(ev);
    EXPECT_EQ(line.rfind(std::string("{\"time\":\"") + c.time + "\",\"ts_ns\":" + std::to_string(c.wall_ns) + ",", 0),
              0u)
        << line;
    simdjson::dom::object obj = parse(parser, line);
    EXPECT_EQ(str(obj, "time"), c.time);
    EXPECT_EQ(uint64_t(obj["ts_ns"]), c.wall_ns);
  }
}

TEST(JsonEncoder, TypeDetection) {
  struct {
    std::string_view payload;
    uint32_t call_off;
    const char* type;
  } const cases[] = {
      {"GET / HTTP/1.1\r\n", 0, "http1_request"},
      {"POST /api HTTP/1.1\r\n", 0, "http1_request"},
      {"PUT /x HTTP/1.0\r\n", 0, "http1_request"},
      {"DELETE /x HTTP/1.1\r\n", 0, "http1_request"},
      {"HEAD / HTTP/1.1\r\n", 0, "http1_request"},
      {"OPTIONS * HTTP/1.1\r\n", 0, "http1_request"},
      {"PATCH /x HTTP/1.1\r\n", 0, "http1_request"},
      {"CONNECT host:443 HTTP/1.1\r\n", 0, "http1_request"},
      {"TRACE / HTTP/1.1\r\n", 0, "http1_request"},
      {"HTTP/1.1 200 OK\r\n", 0, "http1_response"},
      {"HTTP/1.0 404 Not Found\r\n", 0, "http1_response"},
      {"GET", 0, "data"},
      {"GETX / HTTP/1.1", 0, "data"},
      {"get / HTTP/1.1", 0, "data"},
      {"PRI * HTTP/2.0\r\n", 0, "data"},
      {"HTTP/2 200", 0, "data"},
      {"", 0, "data"},
      {"\x16\x03\x01", 0, "data"},
      {"GET / HTTP/1.1\r\n", 100, "data"},  // not the start of the call
      {"HTTP/1.1 200 OK\r\n", 1, "data"},
  };
  simdjson::dom::parser parser;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.payload);
    TestRecord rec;
    rec.with_payload(c.payload);
    rec.raw.call_off = c.call_off;
    simdjson::dom::object obj = parse(parser, encode_line(rec.event()));
    EXPECT_EQ(str(obj, "type"), c.type);
  }
}

TEST(JsonEncoder, AppendsToExistingOutput) {
  TestRecord a, b;
  a.with_payload("first");
  b.with_payload("second");
  JsonEncoder enc({});
  std::string out = "prefix\n";
  enc.encode(a.event(), out);
  enc.encode(b.event(), out);
  ASSERT_EQ(out.rfind("prefix\n", 0), 0u);
  const size_t first_end = out.find('\n', 7);
  simdjson::dom::parser parser;
  simdjson::dom::object o1 = parse(parser, out.substr(7, first_end - 7));
  EXPECT_EQ(str(o1, "payload"), "first");
  simdjson::dom::object o2 = parse(parser, out.substr(first_end + 1));
  EXPECT_EQ(str(o2, "payload"), "second");
}

}  // namespace
}  // namespace clearcap
