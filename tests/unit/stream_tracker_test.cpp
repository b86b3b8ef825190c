// Chunk reassembly bookkeeping: one large call split into chunks, gaps,
// overlaps, late starts, and the bounded table.
#include <gtest/gtest.h>

#include "core/stream_tracker.h"
#include "test_record.h"

namespace clearcap {
namespace {

using test::TestRecord;
using Check = StreamTracker::Check;

Check observe(StreamTracker& t, uint64_t conn, Direction dir, uint64_t seq, size_t len) {
  TestRecord r;
  r.raw.conn_id = conn;
  r.raw.seq = seq;
  r.raw.direction = static_cast<uint8_t>(dir);
  r.with_payload(std::string(len, 'x'));
  return t.observe(r.event());
}

TEST(StreamTracker, ChunksOfOneLargeCallAreInOrder) {
  StreamTracker t;
  const size_t total = 1 << 20;
  for (size_t off = 0; off < total; off += CC_CHUNK_MAX) {
    Check c = observe(t, 1, Direction::kWrite, off, CC_CHUNK_MAX);
    EXPECT_EQ(c, off == 0 ? Check::kFirst : Check::kInOrder) << off;
  }
  EXPECT_EQ(t.gaps(), 0u);
  EXPECT_EQ(t.overlaps(), 0u);
}

TEST(StreamTracker, DirectionsAndConnectionsAreSeparateStreams) {
  StreamTracker t;
  EXPECT_EQ(observe(t, 1, Direction::kWrite, 0, 10), Check::kFirst);
  EXPECT_EQ(observe(t, 1, Direction::kRead, 0, 4), Check::kFirst);
  EXPECT_EQ(observe(t, 2, Direction::kWrite, 0, 7), Check::kFirst);
  EXPECT_EQ(observe(t, 1, Direction::kWrite, 10, 5), Check::kInOrder);
  EXPECT_EQ(observe(t, 1, Direction::kRead, 4, 5), Check::kInOrder);
  EXPECT_EQ(observe(t, 2, Direction::kWrite, 7, 1), Check::kInOrder);
  EXPECT_EQ(t.streams(), 3u);
}

TEST(StreamTracker, GapIsCountedWithItsSize) {
  StreamTracker t;
  observe(t, 1, Direction::kWrite, 0, 100);
  EXPECT_EQ(observe(t, 1, Direction::kWrite, 100 + CC_CHUNK_MAX, 50), Check::kGap);
  EXPECT_EQ(t.gaps(), 1u);
  EXPECT_EQ(t.gap_bytes(), CC_CHUNK_MAX);
  // Tracking resumes after the gap.
  EXPECT_EQ(observe(t, 1, Direction::kWrite, 150 + CC_CHUNK_MAX, 1), Check::kInOrder);
}

TEST(StreamTracker, FirstChunkPastZeroMeansEarlierChunksWereLost) {
  StreamTracker t;
  EXPECT_EQ(observe(t, 5, Direction::kRead, 32768, 10), Check::kGap);
  EXPECT_EQ(t.gap_bytes(), 32768u);
}

TEST(StreamTracker, OverlapIsCounted) {
  StreamTracker t;
  observe(t, 1, Direction::kWrite, 0, 100);
  EXPECT_EQ(observe(t, 1, Direction::kWrite, 60, 100), Check::kOverlap);
  EXPECT_EQ(t.overlap_bytes(), 40u);
  EXPECT_EQ(observe(t, 1, Direction::kWrite, 160, 1), Check::kInOrder);
}

TEST(StreamTracker, TableIsBounded) {
  StreamTracker t(/*max_streams=*/4);
  for (uint64_t c = 1; c <= 10; ++c) observe(t, c, Direction::kWrite, 0, 1);
  EXPECT_LE(t.streams(), 4u);
  EXPECT_GE(t.resets(), 1u);
  // After a reset a stream seen mid-way is not reported as a loss.
  EXPECT_NE(observe(t, 1, Direction::kWrite, 1, 1), Check::kGap);
}

}  // namespace
}  // namespace clearcap
