#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "core/event.h"
#include "test_record.h"

namespace clearcap {
namespace {

using test::TestRecord;

DecodeStatus decode(const std::vector<uint8_t>& bytes) {
  Event ev;
  return decode_record(bytes, ev);
}

TEST(EventDecode, ValidRecordWithPayload) {
  TestRecord rec;
  rec.with_payload("GET / HTTP/1.1\r\n").ipv4("127.0.0.1", 54321, "127.0.0.2", 8443);
  rec.raw.ts_ns = 99;
  rec.raw.seq = 1000;
  rec.raw.uid = 33;
  rec.raw.fd = 9;
  rec.raw.direction = CC_DIR_READ;
  rec.raw.source = CC_SRC_SSL_READ_EX;
  const auto bytes = rec.bytes();
  Event ev;
  ASSERT_EQ(decode_record(bytes, ev), DecodeStatus::kSuccess);
  EXPECT_EQ(ev.boot_ns, 99u);
  EXPECT_EQ(ev.wall_ns, 0u);
  EXPECT_EQ(ev.pid, 1234u);
  EXPECT_EQ(ev.tid, 1235u);
  EXPECT_EQ(ev.uid, 33u);
  EXPECT_EQ(ev.fd, 9);
  EXPECT_EQ(ev.cgroup_id, 7u);
  EXPECT_EQ(ev.conn_id, 42u);
  EXPECT_EQ(ev.seq, 1000u);
  EXPECT_EQ(ev.call_len, 16u);
  EXPECT_EQ(ev.call_off, 0u);
  EXPECT_EQ(ev.direction, Direction::kRead);
  EXPECT_EQ(direction_name(ev.direction), "read");
  EXPECT_EQ(source_name(ev.source), "SSL_read_ex");
  EXPECT_EQ(ev.family, AF_INET);
  EXPECT_EQ(ev.sport, 54321);
  EXPECT_EQ(ev.dport, 8443);
  EXPECT_TRUE(ev.has_tuple());
  EXPECT_TRUE(ev.last_chunk());
  EXPECT_EQ(std::memcmp(ev.saddr, "\x7f\0\0\x01", 4), 0);
  EXPECT_EQ(std::memcmp(ev.daddr, "\x7f\0\0\x02", 4), 0);
  EXPECT_EQ(ev.comm, "curl");
  ASSERT_EQ(ev.payload.size(), 16u);
  EXPECT_EQ(ev.payload.data(), bytes.data() + sizeof(cc_data_event));
  EXPECT_EQ(std::memcmp(ev.payload.data(), "GET / HTTP/1.1\r\n", 16), 0);
}

TEST(EventDecode, FullLengthCommHasNoTerminator) {
  TestRecord rec;
  rec.set_comm("0123456789abcdef");  // exactly CC_COMM_LEN, no NUL
  const auto bytes = rec.bytes();
  Event ev;
  ASSERT_EQ(decode_record(bytes, ev), DecodeStatus::kSuccess);
  EXPECT_EQ(ev.comm, "0123456789abcdef");
}

TEST(EventDecode, EmptyPayload) {
  TestRecord rec;
  const auto bytes = rec.bytes();
  Event ev;
  ASSERT_EQ(decode_record(bytes, ev), DecodeStatus::kSuccess);
  EXPECT_TRUE(ev.payload.empty());
}

TEST(EventDecode, TruncatedHeader) {
  auto bytes = TestRecord().with_payload("abc").bytes();
  EXPECT_EQ(decode({}), DecodeStatus::kNeedsMoreData);
  bytes.resize(sizeof(cc_record_hdr) - 1);
  EXPECT_EQ(decode(bytes), DecodeStatus::kNeedsMoreData);
  // The record header is there but the fixed part is cut.
  bytes = TestRecord().bytes();
  bytes.resize(sizeof(cc_data_event) - 1);
  EXPECT_EQ(decode(bytes), DecodeStatus::kNeedsMoreData);
}

TEST(EventDecode, TruncatedPayload) {
  auto bytes = TestRecord().with_payload("hello world").bytes();
  bytes.pop_back();
  EXPECT_EQ(decode(bytes), DecodeStatus::kNeedsMoreData);
}

TEST(EventDecode, DataLenAboveChunkMax) {
  auto bytes = TestRecord().bytes();
  cc_data_event raw;
  std::memcpy(&raw, bytes.data(), sizeof(raw));
  raw.hdr.data_len = CC_CHUNK_MAX + 1;
  raw.call_len = CC_CHUNK_MAX + 1;
  std::memcpy(bytes.data(), &raw, sizeof(raw));
  bytes.resize(sizeof(raw) + CC_CHUNK_MAX + 1);  // even with the bytes present
  EXPECT_EQ(decode(bytes), DecodeStatus::kInvalid);
}

TEST(EventDecode, WrongHdrLen) {
  TestRecord rec;
  rec.raw.hdr.hdr_len = sizeof(cc_data_event) - 8;
  EXPECT_EQ(decode(rec.bytes()), DecodeStatus::kInvalid);
  rec.raw.hdr.hdr_len = sizeof(cc_data_event) + 8;
  EXPECT_EQ(decode(rec.bytes()), DecodeStatus::kInvalid);
}

TEST(EventDecode, BadDirection) {
  TestRecord rec;
  rec.raw.direction = 7;
  EXPECT_EQ(decode(rec.with_payload("x").bytes()), DecodeStatus::kInvalid);
}

TEST(EventDecode, CallOffBeyondCallLen) {
  TestRecord rec;
  rec.raw.call_len = 10;
  rec.raw.call_off = 11;
  EXPECT_EQ(decode(rec.bytes()), DecodeStatus::kInvalid);
  // The chunk must also fit in what is left of the call.
  rec.raw.call_off = 8;
  EXPECT_EQ(decode(rec.with_payload("abc").bytes()), DecodeStatus::kInvalid);
  rec.raw.call_off = 7;
  EXPECT_EQ(decode(rec.bytes()), DecodeStatus::kSuccess);
}

TEST(EventDecode, UnknownTypeIsIgnored) {
  TestRecord rec;
  rec.raw.hdr.type = 99;
  EXPECT_EQ(decode(rec.bytes()), DecodeStatus::kIgnored);
}

TEST(EventDecode, TypeZeroIsInvalid) {
  TestRecord rec;
  rec.raw.hdr.type = 0;
  EXPECT_EQ(decode(rec.bytes()), DecodeStatus::kInvalid);
}

// Whatever the bytes, decode_record must not crash and a success must only
// point inside the input.
TEST(EventDecode, RandomGarbage) {
  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<size_t> size(0, 400);
  int successes = 0;
  for (int round = 0; round < 20000; ++round) {
    std::vector<uint8_t> bytes(size(rng));
    for (auto& b : bytes) b = static_cast<uint8_t>(byte(rng));
    // Half of the rounds get a plausible header so that the deeper checks run.
    if (round % 2 == 0 && bytes.size() >= sizeof(cc_record_hdr)) {
      cc_record_hdr hdr{CC_REC_DATA, sizeof(cc_data_event),
                        static_cast<uint32_t>(bytes.size() >= sizeof(cc_data_event)
                                                  ? rng() % (bytes.size() - sizeof(cc_data_event) + 2)
                                                  : rng() % 64)};
      std::memcpy(bytes.data(), &hdr, sizeof(hdr));
    }
    Event ev;
    const DecodeStatus st = decode_record(bytes, ev);
    if (st != DecodeStatus::kSuccess) continue;
    ++successes;
    const uint8_t* begin = bytes.data();
    const uint8_t* end = begin + bytes.size();
    ASSERT_GE(bytes.size(), sizeof(cc_data_event));
    ASSERT_GE(ev.payload.data(), begin);
    ASSERT_LE(ev.payload.data() + ev.payload.size(), end);
    ASSERT_LE(ev.payload.size(), CC_CHUNK_MAX);
    ASSERT_GE(reinterpret_cast<const uint8_t*>(ev.comm.data()), begin);
    ASSERT_LE(reinterpret_cast<const uint8_t*>(ev.comm.data() + ev.comm.size()), end);
    ASSERT_GE(ev.saddr, begin);
    ASSERT_LE(ev.saddr + CC_ADDR_LEN, end);
    ASSERT_LE(ev.daddr + CC_ADDR_LEN, end);
    ASSERT_LE(ev.call_off, ev.call_len);
  }
  // The plausible headers must get some records all the way through.
  EXPECT_GT(successes, 0);
}

}  // namespace
}  // namespace clearcap
