#include <gtest/gtest.h>

#include <string>

#include "core/batch.h"

namespace clearcap {
namespace {

TEST(Batch, RecordsRoundTripWithAlignment) {
  Batch b(4096);
  std::vector<std::string> recs = {"a", "bcdefgh", "12345678", std::string(1000, 'z'), ""};
  for (const auto& r : recs) ASSERT_TRUE(b.append(r.data(), static_cast<uint32_t>(r.size())));
  EXPECT_EQ(b.records(), recs.size());
  size_t off = 0;
  for (const auto& r : recs) {
    ASSERT_LT(off, b.used());
    EXPECT_EQ(off % 8, 0u);
    size_t next;
    auto span = b.record_at(off, &next);
    EXPECT_EQ(std::string(span.begin(), span.end()), r);
    off = next;
  }
  EXPECT_EQ(off, b.used());
}

TEST(Batch, RefusesWhatDoesNotFitAndKeepsWhatItHas) {
  Batch b(64);
  std::string r(40, 'x');
  EXPECT_TRUE(b.append(r.data(), 40));   // 8 + 40 = 48
  EXPECT_FALSE(b.append(r.data(), 40));  // would need 96
  EXPECT_EQ(b.records(), 1u);
  b.clear();
  EXPECT_TRUE(b.empty());
  EXPECT_TRUE(b.append(r.data(), 40));
}

}  // namespace
}  // namespace clearcap
