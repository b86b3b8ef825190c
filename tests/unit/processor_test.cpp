// The processor over scripted batches: merge order across sources, delivery
// of everything at the end, batch recycling, wall-clock conversion, and the
// loss accounting (undecodable records, stream gaps).
#include <gtest/gtest.h>

#include <cstring>
#include <thread>

#include "core/boot_clock.h"
#include "core/processor.h"
#include "scripted_source.h"
#include "test_record.h"

namespace clearcap {
namespace {

using test::CollectingSink;
using test::ScriptedSource;
using test::TestRecord;

std::vector<uint8_t> record(uint64_t ts, uint64_t conn, uint64_t seq, std::string_view payload) {
  TestRecord r;
  r.raw.ts_ns = ts;
  r.raw.conn_id = conn;
  r.raw.seq = seq;
  r.with_payload(payload);
  return r.bytes();
}

// A packet record (-m pcap) of a 66-byte frame: 98 bytes, shorter than a
// plaintext record's header.
std::vector<uint8_t> packet_record(uint64_t ts) {
  cc_packet_event ev{};
  ev.hdr.type = CC_REC_PACKET;
  ev.hdr.hdr_len = sizeof(ev);
  ev.hdr.data_len = 66;
  ev.wire_len = 66;
  ev.ts_ns = ts;
  std::vector<uint8_t> out(sizeof(ev) + 66, 0xab);
  std::memcpy(out.data(), &ev, sizeof(ev));
  return out;
}

template <typename Pred>
bool wait_until(Pred pred) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!pred() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return pred();
}

void run(Processor& p) {
  p.start();
  p.join();
}

TEST(Processor, MergesSourcesByTimestamp) {
  ScriptedSource a, b;
  // Each source is in order (one ring per CPU); together they interleave.
  for (uint64_t ts : {10, 30, 50, 70}) a.add(record(ts, 1, 0, "a"));
  for (uint64_t ts : {20, 40, 60, 80}) b.add(record(ts, 2, 0, "b"));
  a.finish();
  b.finish();
  CollectingSink sink;
  moodycamel::spsc_sema::LightweightSemaphore wake;
  Processor p({&a, &b}, sink, {}, &wake);
  run(p);
  ASSERT_EQ(sink.events.size(), 8u);
  for (size_t i = 0; i < sink.events.size(); ++i) EXPECT_EQ(sink.events[i].boot_ns, 10u * (i + 1)) << i;
  EXPECT_EQ(p.events(), 8u);
  EXPECT_EQ(p.late_events(), 0u);
  EXPECT_EQ(a.recycled(), a.batches());
  EXPECT_EQ(b.recycled(), b.batches());
  EXPECT_GE(sink.flushes, 1);
}

TEST(Processor, DeliversAcrossManyBatchesInOrder) {
  ScriptedSource a(/*batch_bytes=*/1024);  // a few records per batch
  std::string expected;
  for (uint64_t i = 0; i < 200; ++i) {
    std::string chunk = "chunk-" + std::to_string(i) + ";";
    a.add(record(100 + i, 7, expected.size(), chunk));
    expected += chunk;
  }
  a.finish();
  CollectingSink sink;
  moodycamel::spsc_sema::LightweightSemaphore wake;
  Processor p({&a}, sink, {}, &wake);
  run(p);
  std::string got;
  for (const auto& e : sink.events) got += e.payload;
  EXPECT_EQ(got, expected);
  EXPECT_EQ(p.gaps(), 0u);
  EXPECT_GT(a.batches(), 10u);
  EXPECT_EQ(a.recycled(), a.batches());
}

TEST(Processor, ConvertsBootTimeToWallClock) {
  ScriptedSource a;
  uint64_t boot = BootClock::now_boot_ns();
  a.add(record(boot, 1, 0, "x"));
  a.finish();
  CollectingSink sink;
  moodycamel::spsc_sema::LightweightSemaphore wake;
  Processor p({&a}, sink, {}, &wake);
  uint64_t wall = BootClock::now_wall_ns();
  run(p);
  ASSERT_EQ(sink.events.size(), 1u);
  int64_t diff = static_cast<int64_t>(sink.events[0].wall_ns) - static_cast<int64_t>(wall);
  EXPECT_LT(std::llabs(diff), 50'000'000) << "wall clock off by " << diff << " ns";
}

TEST(Processor, CountsUndecodableRecordsAndGaps) {
  ScriptedSource a;
  a.add(record(1, 9, 0, "0123456789"));
  std::vector<uint8_t> garbage(40, 0xee);
  a.add(garbage);
  a.add(record(3, 9, 15, "fghij"));  // 5 bytes missing after offset 10
  a.finish();
  CollectingSink sink;
  moodycamel::spsc_sema::LightweightSemaphore wake;
  Processor p({&a}, sink, {}, &wake);
  run(p);
  EXPECT_EQ(sink.events.size(), 2u);
  EXPECT_EQ(p.decode_errors(), 1u);
  EXPECT_EQ(p.gaps(), 1u);
  EXPECT_EQ(p.gap_bytes(), 5u);
}

TEST(Processor, HoldsRecentRecordsWhileAnotherSourceIsSilent) {
  ScriptedSource a, b;
  uint64_t now = BootClock::now_boot_ns();
  a.add(record(now - 2'000'000'000ull, 1, 0, "old"));      // outside the window: released
  a.add(record(now + 60'000'000'000ull, 1, 3, "future"));  // inside: held while b may still send
  a.flush();
  CollectingSink sink;
  moodycamel::spsc_sema::LightweightSemaphore wake;
  Processor::Options opts;
  opts.merge_window_ns = 100'000'000;
  Processor p({&a, &b}, sink, opts, &wake);
  p.start();
  // Wait (with a deadline) for the old record; the future one must not follow.
  wait_until([&] { return p.events() >= 1; });
  EXPECT_EQ(p.events(), 1u);
  // b sends something older than the held record: it must come out first.
  b.add(record(now + 1'000, 2, 0, "b"));
  b.finish();
  a.finish();
  wake.signal();
  p.join();
  ASSERT_EQ(sink.events.size(), 3u);
  EXPECT_EQ(sink.events[0].payload, "old");
  EXPECT_EQ(sink.events[1].payload, "b");
  EXPECT_EQ(sink.events[2].payload, "future");
}

TEST(Processor, IdleSourceWatermarkReleasesWithoutWaitingTheWindow) {
  ScriptedSource busy, idle;
  uint64_t now = BootClock::now_boot_ns();
  // Far inside any merge window: only a promise from the idle source can
  // release these before the sources finish.
  busy.add(record(now + 60'000'000'000ull, 1, 0, "first"));
  busy.add(record(now + 61'000'000'000ull, 1, 5, "second"));
  busy.flush();
  idle.set_watermark(now + 60'500'000'000ull);  // covers "first" only
  CollectingSink sink;
  moodycamel::spsc_sema::LightweightSemaphore wake;
  Processor p({&busy, &idle}, sink, {}, &wake);
  p.start();
  wait_until([&] { return p.events() >= 1; });
  EXPECT_EQ(p.events(), 1u) << "the record under the watermark must be released at once";
  // Give it a chance to (wrongly) release the second one.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(p.events(), 1u) << "a record above every idle source's watermark must be held";
  idle.set_watermark(now + 62'000'000'000ull);
  wake.signal();
  wait_until([&] { return p.events() >= 2; });
  EXPECT_EQ(p.events(), 2u);
  busy.finish();
  idle.finish();
  wake.signal();
  p.join();
  ASSERT_EQ(sink.events.size(), 2u);
  EXPECT_EQ(sink.events[0].payload, "first");
  EXPECT_EQ(sink.events[1].payload, "second");
}

// A packet record is shorter than a plaintext record's header; it must be
// merged by its own timestamp like any other record, not released at once
// (that wrote ACKs ahead of older packets from the other CPU's ring, and
// tshark then could not decrypt the connection).
TEST(Processor, ShortPacketRecordsAreMergedByTheirTimestamp) {
  ScriptedSource a, b;
  uint64_t now = BootClock::now_boot_ns();
  a.add(packet_record(now + 60'000'000'000ull));
  a.flush();
  CollectingSink sink;
  moodycamel::spsc_sema::LightweightSemaphore wake;
  Processor p({&a, &b}, sink, {}, &wake);
  p.start();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(p.events(), 0u) << "held while the other source may still send older records";
  b.add(record(now + 1'000, 2, 0, "older"));
  b.finish();
  a.finish();
  wake.signal();
  p.join();
  ASSERT_EQ(sink.events.size(), 2u);
  EXPECT_EQ(sink.events[0].payload, "older");
  EXPECT_EQ(sink.events[1].boot_ns, now + 60'000'000'000ull);
  EXPECT_EQ(p.late_events(), 0u);
}

// The kick tests' ending: the held record is released once the idle source's
// promise covers it, then both sources finish and the processor ends.
void expect_one_event_then_finish(Processor& p, ScriptedSource& busy, ScriptedSource& idle,
                                  moodycamel::spsc_sema::LightweightSemaphore& wake) {
  EXPECT_TRUE(wait_until([&] { return p.events() == 1; }));
  busy.finish();
  idle.finish();
  wake.signal();
  p.join();
}

// An idle source whose old promise holds a busy source's records back is
// asked for a fresh one (once per promise), not waited for until its timer.
TEST(Processor, KicksAnIdleSourceWhosePromiseHoldsRecordsBack) {
  ScriptedSource busy, idle;
  uint64_t now = BootClock::now_boot_ns();
  busy.add(record(now - 1'000'000'000ull, 1, 0, "held"));  // old enough for a fresh promise
  busy.flush();
  idle.set_watermark(now - 2'000'000'000ull);
  CollectingSink sink;
  moodycamel::spsc_sema::LightweightSemaphore wake;
  Processor::Options opts;
  opts.merge_window_ns = 600'000'000'000ull;  // never released by age here
  Processor p({&busy, &idle}, sink, opts, &wake);
  p.start();
  EXPECT_TRUE(wait_until([&] { return idle.kicks() >= 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(idle.kicks(), 1) << "no new kick before the source answered with a new promise";
  EXPECT_EQ(busy.kicks(), 0) << "a source with records queued is never kicked";
  idle.set_watermark(now - 1'500'000'000ull);  // an answer that still does not cover the record
  wake.signal();
  EXPECT_TRUE(wait_until([&] { return idle.kicks() >= 2; }));
  idle.set_watermark(now);
  wake.signal();
  expect_one_event_then_finish(p, busy, idle, wake);
}

// A record younger than a fresh promise could cover is not kicked for: the
// answer would fall short and be asked again at once (a ping-pong). The
// processor wakes by itself once the record is old enough, and kicks then.
TEST(Processor, KicksOnlyOnceAFreshPromiseCanCoverTheHeldRecord) {
  ScriptedSource busy, idle;
  uint64_t now = BootClock::now_boot_ns();
  busy.add(record(now, 1, 0, "fresh"));
  busy.flush();
  idle.set_watermark(now - 2'000'000'000ull);
  CollectingSink sink;
  moodycamel::spsc_sema::LightweightSemaphore wake;
  Processor::Options opts;
  opts.merge_window_ns = 600'000'000'000ull;
  opts.promise_lag_ns = 1'000'000'000ull;  // a promise covers records 1 s old at best
  Processor p({&busy, &idle}, sink, opts, &wake);
  p.start();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(idle.kicks(), 0) << "kicked before a fresh promise could cover the record";
  // No signal: the processor's own timer brings the kick once the record is old enough.
  EXPECT_TRUE(wait_until([&] { return idle.kicks() >= 1; }));
  EXPECT_GE(BootClock::now_boot_ns(), now + opts.promise_lag_ns);
  idle.set_watermark(now + 1);
  wake.signal();
  expect_one_event_then_finish(p, busy, idle, wake);
}

}  // namespace
}  // namespace clearcap
