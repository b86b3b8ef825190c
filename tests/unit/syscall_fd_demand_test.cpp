// SyscallFdDemand: attach on the first growth of the socketless count,
// stay while it grows, detach after the linger, attach again on new growth;
// a failed attach is retried at the next growth, never reported as done.
#include "core/syscall_fd_demand.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace clearcap {
namespace {

using namespace std::chrono_literals;

struct Fake {
  uint64_t count = 0;
  std::vector<bool> calls;  // every want(...) in order
  bool fail_attach = false;
  std::vector<std::string> log;

  SyscallFdDemand make(std::chrono::milliseconds linger) {
    return SyscallFdDemand(
        [this]() -> Result<uint64_t> { return count; },
        [this](bool w) -> Result<void> {
          calls.push_back(w);
          if (w && fail_attach) return make_error("no tracefs", ENOENT);
          return {};
        },
        [this](const std::string& line) { log.push_back(line); }, linger, /*start=*/false);
  }
};

TEST(SyscallFdDemand, NothingHappensWhileEveryConnectionHasASocket) {
  Fake f;
  auto d = f.make(1000ms);
  auto t = SyscallFdDemand::Clock::now();
  for (int i = 0; i < 50; ++i) d.tick(t + i * 100ms);
  EXPECT_TRUE(f.calls.empty());
  EXPECT_FALSE(d.wanted());
  EXPECT_EQ(d.attaches(), 0u);
}

TEST(SyscallFdDemand, AttachesOnGrowthAndDetachesAfterTheLinger) {
  Fake f;
  auto d = f.make(1000ms);
  auto t = SyscallFdDemand::Clock::now();
  d.tick(t);
  f.count = 3;  // a curl-style connection sent records without a socket
  d.tick(t + 100ms);
  ASSERT_EQ(f.calls, std::vector<bool>{true});
  EXPECT_TRUE(d.wanted());
  EXPECT_EQ(d.attaches(), 1u);
  ASSERT_EQ(f.log.size(), 1u);
  EXPECT_NE(f.log[0].find("syscall tracepoints attached"), std::string::npos) << f.log[0];

  f.count = 5;  // still growing at 0.6 s: the linger starts again from here
  d.tick(t + 600ms);
  d.tick(t + 1500ms);
  EXPECT_EQ(f.calls.size(), 1u) << "detached before the linger after the last growth";
  d.tick(t + 1600ms);
  ASSERT_EQ(f.calls, (std::vector<bool>{true, false}));
  EXPECT_FALSE(d.wanted());
  EXPECT_NE(f.log.back().find("syscall tracepoints detached"), std::string::npos) << f.log.back();

  f.count = 6;  // a new one later: attached again
  d.tick(t + 5000ms);
  EXPECT_EQ(f.calls, (std::vector<bool>{true, false, true}));
  EXPECT_EQ(d.attaches(), 2u);
}

TEST(SyscallFdDemand, RecordsCountedBeforeTheFirstPollCount) {
  Fake f;
  f.count = 1;
  auto d = f.make(1000ms);
  d.tick(SyscallFdDemand::Clock::now());
  EXPECT_EQ(f.calls, std::vector<bool>{true});
}

TEST(SyscallFdDemand, AFailedAttachIsRetriedAtTheNextGrowth) {
  Fake f;
  f.fail_attach = true;
  auto d = f.make(1000ms);
  auto t = SyscallFdDemand::Clock::now();
  f.count = 1;
  d.tick(t);
  EXPECT_FALSE(d.wanted());
  EXPECT_EQ(d.attaches(), 0u);
  ASSERT_FALSE(f.log.empty());
  EXPECT_NE(f.log.back().find("cannot attach the syscall tracepoints: no tracefs"), std::string::npos)
      << f.log.back();
  d.tick(t + 100ms);  // no growth: no new attempt
  EXPECT_EQ(f.calls.size(), 1u);
  f.fail_attach = false;
  f.count = 2;
  d.tick(t + 200ms);
  EXPECT_EQ(f.calls, (std::vector<bool>{true, true}));
  EXPECT_TRUE(d.wanted());
}

}  // namespace
}  // namespace clearcap
