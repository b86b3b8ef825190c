// RotatingFile against a real temporary directory, with an injected clock.
#include "sinks/transports/rotating_file.h"

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

namespace clearcap {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;
using TimePoint = std::chrono::system_clock::time_point;

class RotatingFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/clearcap-rot-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/events.jsonl";
  }
  void TearDown() override { fs::remove_all(dir_); }

  RotatingFile::Options opts() {
    RotatingFile::Options o;
    o.clock = [this] { return now_; };
    return o;
  }
  static std::string read(const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  static void put(RotatingFile& f, const std::string& s) {
    auto r = f.write({s.data(), s.size()});
    ASSERT_TRUE(r) << r.error().message;
  }

  std::string dir_, path_;
  // 2026-11-22 19:35:44 UTC
  TimePoint now_ = TimePoint(seconds(1795376144));
};

TEST_F(RotatingFileTest, RotatedNameKeepsExtensionAndSortsByTime) {
  EXPECT_EQ(RotatingFile::rotated_name("/x/events.jsonl", now_, 0), "/x/events.20261122-193544.jsonl");
  EXPECT_EQ(RotatingFile::rotated_name("/x/events.jsonl", now_, 2), "/x/events.20261122-193544-2.jsonl");
  EXPECT_EQ(RotatingFile::rotated_name("log", now_, 0), "log.20261122-193544");
  EXPECT_EQ(RotatingFile::rotated_name("/x/.hidden", now_, 0), "/x/.hidden.20261122-193544");
}

TEST_F(RotatingFileTest, RotatesBySizeWithoutSplittingRecords) {
  auto o = opts();
  o.max_bytes = 100;
  RotatingFile f(path_, o);
  ASSERT_TRUE(f.open());
  const std::string rec(40, 'a');
  put(f, rec);  // 40
  put(f, rec);  // 80
  put(f, rec);  // would be 120: rotates first
  EXPECT_EQ(f.rotations(), 1u);
  now_ += seconds(1);
  put(f, rec);  // 80 in the second file
  put(f, rec);  // rotates again
  EXPECT_EQ(f.rotations(), 2u);
  const auto rotated = RotatingFile::rotated_files(path_);
  ASSERT_EQ(rotated.size(), 2u);
  EXPECT_EQ(rotated[0], dir_ + "/events.20261122-193544.jsonl");
  EXPECT_EQ(rotated[1], dir_ + "/events.20261122-193545.jsonl");
  EXPECT_EQ(read(rotated[0]), rec + rec);
  EXPECT_EQ(read(rotated[1]), rec + rec);
  EXPECT_EQ(read(path_), rec);
  // A record larger than the limit still goes whole into a file of its own.
  const std::string big(300, 'b');
  put(f, big);
  EXPECT_EQ(read(path_), big);
}

TEST_F(RotatingFileTest, RotatesByAgeAtTheNextWrite) {
  auto o = opts();
  o.max_age = seconds(60);
  RotatingFile f(path_, o);
  ASSERT_TRUE(f.open());
  put(f, "one\n");
  now_ += seconds(59);
  put(f, "two\n");
  EXPECT_EQ(f.rotations(), 0u);
  now_ += seconds(1);
  put(f, "three\n");
  EXPECT_EQ(f.rotations(), 1u);
  // Named after the moment of rotation.
  EXPECT_EQ(read(dir_ + "/events.20261122-193644.jsonl"), "one\ntwo\n");
  EXPECT_EQ(read(path_), "three\n");
  now_ += seconds(59);
  put(f, "four\n");
  EXPECT_EQ(f.rotations(), 1u);  // the age counts from the new file's start
}

TEST_F(RotatingFileTest, SameSecondRotationsGetCounters) {
  auto o = opts();
  o.max_bytes = 4;
  RotatingFile f(path_, o);
  ASSERT_TRUE(f.open());
  for (const char* s : {"aaaa", "bbbb", "cccc", "dddd"}) put(f, s);
  const auto rotated = RotatingFile::rotated_files(path_);
  ASSERT_EQ(rotated.size(), 3u);
  EXPECT_EQ(read(rotated[0]), "aaaa");
  EXPECT_EQ(rotated[1], dir_ + "/events.20261122-193544-1.jsonl");
  EXPECT_EQ(read(rotated[1]), "bbbb");
  EXPECT_EQ(read(rotated[2]), "cccc");
  EXPECT_EQ(read(path_), "dddd");
}

TEST_F(RotatingFileTest, RetentionDeletesTheOldest) {
  auto o = opts();
  o.max_bytes = 10;
  o.keep = 2;
  RotatingFile f(path_, o);
  ASSERT_TRUE(f.open());
  // Someone else's file in the same directory is never touched.
  std::ofstream(dir_ + "/events.notes.jsonl") << "mine";
  for (int i = 0; i < 5; ++i) {
    put(f, std::string(10, static_cast<char>('0' + i)));
    now_ += seconds(10);
  }
  const auto rotated = RotatingFile::rotated_files(path_);
  ASSERT_EQ(rotated.size(), 2u);
  EXPECT_EQ(read(rotated[0]), std::string(10, '2'));
  EXPECT_EQ(read(rotated[1]), std::string(10, '3'));
  EXPECT_EQ(read(path_), std::string(10, '4'));
  EXPECT_EQ(read(dir_ + "/events.notes.jsonl"), "mine");
}

TEST_F(RotatingFileTest, ReopenAfterLogrotateCreateMode) {
  RotatingFile f(path_, opts());
  ASSERT_TRUE(f.open());
  put(f, "before\n");
  // logrotate (create): renames the file, then signals us.
  ASSERT_EQ(::rename(path_.c_str(), (path_ + ".1").c_str()), 0);
  put(f, "late\n");  // still reaches the renamed file, as expected before HUP
  ASSERT_TRUE(f.reopen());
  put(f, "after\n");
  EXPECT_EQ(read(path_ + ".1"), "before\nlate\n");
  EXPECT_EQ(read(path_), "after\n");
}

TEST_F(RotatingFileTest, CopytruncateKeepsAppendingAtTheNewEnd) {
  auto o = opts();
  o.max_bytes = 1000;
  RotatingFile f(path_, o);
  ASSERT_TRUE(f.open());
  put(f, std::string(900, 'x'));
  // logrotate (copytruncate): copies, then truncates in place.
  ASSERT_EQ(::truncate(path_.c_str(), 0), 0);
  put(f, "y\n");  // O_APPEND: lands at offset 0, no hole of 900 NULs
  EXPECT_EQ(read(path_), "y\n");
  ASSERT_TRUE(f.reopen());  // size taken again from the file
  EXPECT_EQ(f.size(), 2u);
  put(f, std::string(900, 'z'));
  EXPECT_EQ(f.rotations(), 0u);  // 902 < 1000: the old size is forgotten
}

TEST_F(RotatingFileTest, PrivateModeAndHeaderInEveryFile) {
  auto o = opts();
  o.mode = 0600;
  o.max_bytes = 20;
  int headers = 0;
  o.header = [&headers] {
    ++headers;
    return std::string("HDR\n");
  };
  const mode_t old = umask(022);
  RotatingFile f(path_, o);
  ASSERT_TRUE(f.open());
  put(f, "0123456789\n");
  put(f, "abcdefghij\n");  // 4 + 11 + 11 > 20: rotates
  umask(old);
  struct stat st {};
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const auto rotated = RotatingFile::rotated_files(path_);
  ASSERT_EQ(rotated.size(), 1u);
  ASSERT_EQ(stat(rotated[0].c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(read(rotated[0]), "HDR\n0123456789\n");
  EXPECT_EQ(read(path_), "HDR\nabcdefghij\n");
  EXPECT_EQ(headers, 2);
}

TEST_F(RotatingFileTest, OpenErrorNamesThePath) {
  RotatingFile f(dir_ + "/missing/dir/x.log", opts());
  auto r = f.open();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err, ENOENT);
  EXPECT_NE(r.error().message.find("missing/dir/x.log"), std::string::npos) << r.error().message;
}

// A full disk in the middle of a record: the partial record is cut off, so
// the file ends at a record boundary and what is written once space
// returns is whole. (RLIMIT_FSIZE stands in for ENOSPC: the write that
// crosses it is short, the next one fails with EFBIG.)
TEST_F(RotatingFileTest, FailedWriteLeavesNoPartialRecord) {
  RotatingFile f(path_, opts());
  ASSERT_TRUE(f.open());
  put(f, "{\"n\":1}\n");
  rlimit old{};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  auto old_handler = signal(SIGXFSZ, SIG_IGN);
  rlimit small = old;
  small.rlim_cur = 12;  // room for 4 more bytes
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  auto r = f.write(std::string_view("{\"n\":2,\"long\":true}\n"));
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &old), 0);
  signal(SIGXFSZ, old_handler);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err, EFBIG);
  EXPECT_EQ(read(path_), "{\"n\":1}\n") << "the torn record was cut off";
  EXPECT_EQ(f.size(), 8u);
  put(f, "{\"n\":3}\n");
  EXPECT_EQ(read(path_), "{\"n\":1}\n{\"n\":3}\n");
}

}  // namespace
}  // namespace clearcap
