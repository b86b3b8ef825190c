// The per-event path must not allocate once its output buffer has grown
// (DESIGN.md §3). Counts global operator new calls made by this thread while
// a probe is active.
#include <cstdlib>
#include <new>
#include <string>

#include <gtest/gtest.h>

#include "sinks/transports/async_writer.h"
#include "sinks/ecaptureq/ecaptureq_convert.h"
#include "sinks/transports/fd_writer.h"
#include "sinks/encoders/json_encoder.h"
#include "sinks/encoders/text_encoder.h"
#include "test_record.h"

namespace {

thread_local bool counting = false;
thread_local size_t allocations = 0;

}  // namespace

// Replaces the global allocator for the whole test binary; it only counts,
// and only while a probe on the calling thread is active. Every non-aligned
// form is replaced so that new and delete always pair up (a sanitizer's own
// nothrow new would otherwise meet this delete). The aligned forms keep their
// own default pair.
namespace {

void* counted_alloc(size_t size) noexcept {
  if (counting) ++allocations;
  return std::malloc(size == 0 ? 1 : size);
}

}  // namespace

void* operator new(size_t size) {
  if (void* p = counted_alloc(size)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t size) { return operator new(size); }
void* operator new(size_t size, const std::nothrow_t&) noexcept { return counted_alloc(size); }
void* operator new[](size_t size, const std::nothrow_t&) noexcept { return counted_alloc(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace clearcap {
namespace {

using test::TestRecord;
using namespace std::string_view_literals;

// Allocations made by `fn` on this thread.
template <class Fn>
size_t allocations_in(Fn fn) {
  allocations = 0;
  counting = true;
  fn();
  counting = false;
  return allocations;
}

// Records covering every encoder branch: text, binary, escapes, IPv6, no
// tuple, truncation.
std::vector<TestRecord> records() {
  std::vector<TestRecord> recs(6);
  recs[0].with_payload("GET / HTTP/1.1\r\nHost: x\r\n\r\n").ipv4("127.0.0.1", 1, "10.0.0.1", 443);
  recs[1].with_payload("\xff\x00\x01 binary"sv).ipv6("::1", 1, "2001:db8::1", 443);
  recs[2].with_payload("quote\" backslash\\ nl\n del\x7f caf\xc3\xa9"sv);
  recs[3].with_payload(std::string(CC_CHUNK_MAX, '\x01'));
  recs[4].with_payload(std::string(CC_CHUNK_MAX, 'a'));
  recs[5].set_comm("bad\xff").with_payload("");
  return recs;
}

void expect_no_allocation(Encoder& enc) {
  auto recs = records();
  std::vector<Event> events;
  for (auto& r : recs) events.push_back(r.event());
  std::string out;
  for (const Event& ev : events) enc.encode(ev, out);  // grow `out`
  const size_t working_size = out.size();
  out.clear();
  out.reserve(working_size);
  EXPECT_EQ(allocations_in([&] {
              for (const Event& ev : events) enc.encode(ev, out);
            }),
            0u);
}

TEST(EncoderAllocation, JsonEncoder) {
  JsonEncoder enc({});
  expect_no_allocation(enc);
  JsonEncoder truncating(FormatOptions{.truncate = 3});
  expect_no_allocation(truncating);
}

TEST(EncoderAllocation, TextEncoder) {
  TextEncoder enc({});
  expect_no_allocation(enc);
  TextEncoder hex(FormatOptions{.hex = true, .truncate = 100});
  expect_no_allocation(hex);
}

TEST(EncoderAllocation, FdSinkWrite) {
  FILE* file = std::tmpfile();
  ASSERT_NE(file, nullptr);
  auto recs = records();
  std::vector<Event> events;
  for (auto& r : recs) events.push_back(r.event());
  FdSink sink(std::make_unique<TextEncoder>(FormatOptions{}), fileno(file));
  // The first round pays one-time set-up (simdjson picks its SIMD
  // implementation the first time a payload too long for the ASCII fast path
  // is validated, allocating a few bytes); after that, nothing.
  for (const Event& ev : events) sink.write(ev);
  sink.flush();
  EXPECT_EQ(allocations_in([&] {
              for (int round = 0; round < 10; ++round) {
                for (const Event& ev : events) sink.write(ev);
              }
              sink.flush();
            }),
            0u);
  EXPECT_EQ(sink.write_errors(), 0u);
  std::fclose(file);
}

TEST(EncoderAllocation, ProtoEncoder) {
  ProtoEncoder enc({});
  expect_no_allocation(enc);
  ProtoEncoder hex(FormatOptions{.hex = true, .truncate = 100});
  expect_no_allocation(hex);
}

// A destination that swallows everything (the writer thread's side is not
// what is measured here).
class NullTransport : public Transport {
 public:
  Result<void> connect() override { return {}; }
  bool connected() const override { return true; }
  Result<void> send(std::span<const char>) override { return {}; }
  void close() override {}
};

TEST(EncoderAllocation, FanoutSinkWrite) {
  auto recs = records();
  std::vector<Event> events;
  for (auto& r : recs) events.push_back(r.event());
  AsyncWriter a("a", std::make_unique<NullTransport>(), {});
  AsyncWriter b("b", std::make_unique<NullTransport>(), {});
  a.start();
  b.start();
  FanoutSink sink(std::make_unique<JsonEncoder>(FormatOptions{}), {&a, &b});
  for (const Event& ev : events) sink.write(ev);
  sink.flush();
  // The processor thread's side: encode once, copy into each writer's ring.
  EXPECT_EQ(allocations_in([&] {
              for (int round = 0; round < 10; ++round) {
                for (const Event& ev : events) sink.write(ev);
              }
              sink.flush();
            }),
            0u);
  a.stop();
  b.stop();
  EXPECT_EQ(a.delivered_events(), 66u);
  EXPECT_EQ(b.stats().dropped_events, 0u);
}

}  // namespace
}  // namespace clearcap
