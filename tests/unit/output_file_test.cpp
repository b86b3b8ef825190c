// open_output_file(): how clearcap opens every file that holds plaintext or
// keys, against a real temporary directory (the attacks of a local user:
// planted symlinks, hard links, files of another owner).
#include "sinks/transports/output_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

namespace clearcap {
namespace {

namespace fs = std::filesystem;

class OutputFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/clearcap-outfile-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    old_umask_ = umask(0);  // the mode must not depend on the umask
  }
  void TearDown() override {
    umask(old_umask_);
    fs::remove_all(dir_);
  }
  static std::string read(const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  static void write(const std::string& p, const std::string& text, mode_t mode = 0644) {
    int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC, mode);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    ::close(fd);
    ASSERT_EQ(chmod(p.c_str(), mode), 0);
  }
  static mode_t mode_of(const std::string& p) {
    struct stat st {};
    EXPECT_EQ(lstat(p.c_str(), &st), 0);
    return st.st_mode & 07777;
  }
  static void put(int fd, const std::string& s) {
    ASSERT_EQ(::write(fd, s.data(), s.size()), static_cast<ssize_t>(s.size()));
    ::close(fd);
  }
  std::string dir_;
  mode_t old_umask_ = 022;
};

TEST_F(OutputFileTest, NewFileGetsExactlyTheMode) {
  const std::string p = dir_ + "/events.jsonl";
  auto fd = open_output_file(p, OpenFile::kAppend, kPrivateFileMode);
  ASSERT_TRUE(fd) << fd.error().message;
  put(*fd, "x\n");
  EXPECT_EQ(mode_of(p), 0600u);
  const std::string q = dir_ + "/shared.jsonl";
  auto fd2 = open_output_file(q, OpenFile::kAppend, 0640);
  ASSERT_TRUE(fd2);
  ::close(*fd2);
  EXPECT_EQ(mode_of(q), 0640u);
}

TEST_F(OutputFileTest, ExistingFileIsNarrowedNeverWidenedAndAppendedOrEmptied) {
  const std::string p = dir_ + "/keys.log";
  write(p, "old\n", 0644);
  auto fd = open_output_file(p, OpenFile::kAppend, 0600);
  ASSERT_TRUE(fd) << fd.error().message;
  put(*fd, "new\n");
  EXPECT_EQ(read(p), "old\nnew\n");
  EXPECT_EQ(mode_of(p), 0600u);
  // A looser --file-mode does not widen a file that is already private.
  auto fd2 = open_output_file(p, OpenFile::kReplace, 0644);
  ASSERT_TRUE(fd2);
  put(*fd2, "fresh\n");
  EXPECT_EQ(read(p), "fresh\n");
  EXPECT_EQ(mode_of(p), 0600u);
}

TEST_F(OutputFileTest, PlantedSymlinkIsRefusedAndItsTargetUntouched) {
  const std::string victim = dir_ + "/victim";
  write(victim, "root's data\n", 0644);
  const std::string p = dir_ + "/capture.ccap";
  ASSERT_EQ(symlink(victim.c_str(), p.c_str()), 0);
  for (OpenFile how : {OpenFile::kAppend, OpenFile::kReplace}) {
    auto fd = open_output_file(p, how, 0600);
    ASSERT_FALSE(fd);
    EXPECT_NE(fd.error().message.find("symbolic link"), std::string::npos) << fd.error().message;
  }
  EXPECT_EQ(read(victim), "root's data\n");
  EXPECT_EQ(mode_of(victim), 0644u);
  // A dangling link (to a file that would be created) is refused too.
  const std::string q = dir_ + "/dangling";
  ASSERT_EQ(symlink((dir_ + "/not-yet").c_str(), q.c_str()), 0);
  EXPECT_FALSE(open_output_file(q, OpenFile::kAppend, 0600));
  EXPECT_FALSE(fs::exists(dir_ + "/not-yet"));
}

TEST_F(OutputFileTest, HardLinkIsRefused) {
  const std::string victim = dir_ + "/victim";
  write(victim, "data\n", 0600);
  const std::string p = dir_ + "/events.jsonl";
  ASSERT_EQ(link(victim.c_str(), p.c_str()), 0);
  auto fd = open_output_file(p, OpenFile::kReplace, 0600);
  ASSERT_FALSE(fd);
  EXPECT_NE(fd.error().message.find("hard links"), std::string::npos) << fd.error().message;
  EXPECT_EQ(read(victim), "data\n");
}

TEST_F(OutputFileTest, FileOfAnotherUserIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to give a file to another user";
  const std::string p = dir_ + "/keys.log";
  write(p, "", 0600);
  ASSERT_EQ(chown(p.c_str(), 65534, 65534), 0);  // nobody pre-created the key log
  auto fd = open_output_file(p, OpenFile::kAppend, 0600);
  ASSERT_FALSE(fd);
  EXPECT_NE(fd.error().message.find("belongs to uid 65534"), std::string::npos) << fd.error().message;
}

TEST_F(OutputFileTest, DevicesAndFifos) {
  auto fd = open_output_file("/dev/null", OpenFile::kReplace, 0600);
  ASSERT_TRUE(fd) << fd.error().message;
  ::close(*fd);
  EXPECT_EQ(mode_of("/dev/null") & 0666, 0666u) << "a device is not chmod-ed";
  // /dev/stdout is a link, but in a directory only root controls.
  auto out = open_output_file("/dev/stdout", OpenFile::kAppend, 0600);
  ASSERT_TRUE(out) << out.error().message;
  ::close(*out);
  const std::string fifo = dir_ + "/fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  auto f = open_output_file(fifo, OpenFile::kAppend, 0600);
  ASSERT_FALSE(f) << "nobody reads the FIFO: refused rather than waited for";
  EXPECT_NE(f.error().message.find("FIFO"), std::string::npos);
}

TEST_F(OutputFileTest, PathsWithNulOrEmptyAreRefused) {
  EXPECT_FALSE(open_output_file("", OpenFile::kAppend, 0600));
  EXPECT_FALSE(open_output_file(std::string("/tmp/a\0b", 8), OpenFile::kAppend, 0600));
}

TEST(FileMode, Parse) {
  EXPECT_EQ(*parse_file_mode("0600"), 0600u);
  EXPECT_EQ(*parse_file_mode("640"), 0640u);
  EXPECT_EQ(*parse_file_mode("0644"), 0644u);
  for (const char* bad : {"", "6", "0400", "0200", "4755", "0888", "abc", "-600", "06000", "0o600"})
    EXPECT_FALSE(parse_file_mode(bad)) << bad;
}

TEST_F(OutputFileTest, SameFileByInode) {
  const std::string a = dir_ + "/a.ccap";
  write(a, "x", 0600);
  const std::string b = dir_ + "/b.ccap";
  ASSERT_EQ(symlink(a.c_str(), b.c_str()), 0);
  const std::array<std::string, 1> inputs{a};
  EXPECT_TRUE(same_file_as_any(a, inputs));
  EXPECT_TRUE(same_file_as_any(b, inputs)) << "a link to an input is the input";
  EXPECT_TRUE(same_file_as_any(dir_ + "/../" + fs::path(dir_).filename().string() + "/a.ccap", inputs));
  EXPECT_FALSE(same_file_as_any(dir_ + "/c.ccap", inputs)) << "a new file is no input";
}

}  // namespace
}  // namespace clearcap
