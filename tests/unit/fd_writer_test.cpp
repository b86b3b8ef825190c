#include "sinks/transports/fd_writer.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "sinks/encoders/json_encoder.h"
#include "test_record.h"

namespace clearcap {
namespace {

using test::TestRecord;

// Closes both ends on scope exit.
struct Pipe {
  int fds[2] = {-1, -1};
  Pipe() { EXPECT_EQ(pipe2(fds, O_CLOEXEC), 0); }
  ~Pipe() {
    close_read();
    close_write();
  }
  int read_fd() const { return fds[0]; }
  int write_fd() const { return fds[1]; }
  void close_read() {
    if (fds[0] >= 0) close(fds[0]);
    fds[0] = -1;
  }
  void close_write() {
    if (fds[1] >= 0) close(fds[1]);
    fds[1] = -1;
  }
};

int pending_bytes(int fd) {
  int n = -1;
  EXPECT_EQ(ioctl(fd, FIONREAD, &n), 0);
  return n;
}

std::string read_all(int fd) {
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::string expected_json(const Event& ev) {
  std::string out;
  JsonEncoder({}).encode(ev, out);
  return out;
}

std::unique_ptr<Encoder> json() { return std::make_unique<JsonEncoder>(FormatOptions{}); }

TEST(FdSink, BuffersUntilFlush) {
  Pipe p;
  TestRecord rec;
  rec.with_payload("hello");
  const Event ev = rec.event();
  FdSink sink(json(), p.write_fd());
  sink.write(ev);
  sink.write(ev);
  EXPECT_EQ(pending_bytes(p.read_fd()), 0);
  sink.flush();
  p.close_write();
  EXPECT_EQ(read_all(p.read_fd()), expected_json(ev) + expected_json(ev));
  EXPECT_EQ(sink.write_errors(), 0u);
  EXPECT_EQ(sink.dropped_bytes(), 0u);
}

TEST(FdSink, DestructorFlushes) {
  Pipe p;
  TestRecord rec;
  rec.with_payload("bye");
  const Event ev = rec.event();
  {
    FdSink sink(json(), p.write_fd());
    sink.write(ev);
  }
  p.close_write();
  EXPECT_EQ(read_all(p.read_fd()), expected_json(ev));
}

TEST(FdSink, FlushesOnceAbove64KiB) {
  FILE* file = std::tmpfile();
  ASSERT_NE(file, nullptr);
  const int fd = fileno(file);
  TestRecord rec;
  rec.with_payload(std::string(1000, 'x'));
  const Event ev = rec.event();
  const std::string one = expected_json(ev);
  std::string expected;
  FdSink sink(json(), fd);
  while (expected.size() <= FdSink::kFlushThreshold) {
    EXPECT_EQ(lseek(fd, 0, SEEK_END), 0) << "flushed before the threshold";
    sink.write(ev);
    expected += one;
  }
  // The write that crossed the threshold flushed everything.
  EXPECT_EQ(lseek(fd, 0, SEEK_END), static_cast<off_t>(expected.size()));
  sink.write(ev);
  expected += one;
  sink.flush();
  ASSERT_EQ(lseek(fd, 0, SEEK_SET), 0);
  EXPECT_EQ(read_all(fd), expected);
  std::fclose(file);
}

TEST(FdSink, ClosedFdIsCountedNotThrown) {
  int fd = dup(STDERR_FILENO);
  ASSERT_GE(fd, 0);
  close(fd);  // now a descriptor number that is not open: EBADF
  TestRecord rec;
  rec.with_payload("lost");
  const Event ev = rec.event();
  FdSink sink(json(), fd);
  sink.write(ev);
  sink.write(ev);
  EXPECT_NO_THROW(sink.flush());
  EXPECT_EQ(sink.write_errors(), 1u);
  EXPECT_EQ(sink.dropped_bytes(), 2 * expected_json(ev).size());
  EXPECT_EQ(sink.last_errno(), EBADF);
  // Nothing is retried: the next flush starts from an empty buffer.
  sink.flush();
  EXPECT_EQ(sink.write_errors(), 1u);
  sink.write(ev);
  sink.flush();
  EXPECT_EQ(sink.write_errors(), 2u);
  EXPECT_EQ(sink.dropped_bytes(), 3 * expected_json(ev).size());
}

TEST(FdSink, FullDeviceIsCounted) {
  const int fd = open("/dev/full", O_WRONLY | O_CLOEXEC);
  if (fd < 0) GTEST_SKIP() << "/dev/full not available: " << std::strerror(errno);
  TestRecord rec;
  rec.with_payload("x");
  const Event ev = rec.event();
  FdSink sink(json(), fd);
  sink.write(ev);
  sink.flush();
  EXPECT_EQ(sink.write_errors(), 1u);
  EXPECT_EQ(sink.dropped_bytes(), expected_json(ev).size());
  EXPECT_EQ(sink.last_errno(), ENOSPC);
  close(fd);
}

TEST(FdSink, ReaderGoneIsCounted) {
  // With SIGPIPE ignored (as the CLI must do), a closed reader is EPIPE.
  struct sigaction ignore {}, old {};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(sigaction(SIGPIPE, &ignore, &old), 0);
  Pipe p;
  p.close_read();
  TestRecord rec;
  rec.with_payload("x");
  FdSink sink(json(), p.write_fd());
  sink.write(rec.event());
  sink.flush();
  EXPECT_EQ(sink.write_errors(), 1u);
  EXPECT_EQ(sink.last_errno(), EPIPE);
  sigaction(SIGPIPE, &old, nullptr);
}

void on_sigusr1(int) {}

// A slow reader keeps the pipe full so that writes block, while signals
// without SA_RESTART interrupt them: this drives the EINTR and partial-write
// paths. Nothing may be lost or reordered.
TEST(FdSink, InterruptedAndPartialWritesLoseNothing) {
  struct sigaction act {}, old {};
  act.sa_handler = on_sigusr1;  // no SA_RESTART: blocked writes return early
  ASSERT_EQ(sigaction(SIGUSR1, &act, &old), 0);

  Pipe p;
  std::string received;
  std::thread reader([&] {
    char buf[997];  // small, odd reads keep the writer blocked often
    for (;;) {
      const ssize_t n = read(p.read_fd(), buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      received.append(buf, static_cast<size_t>(n));
    }
  });

  const pthread_t writer = pthread_self();
  std::atomic<bool> done{false};
  std::thread signaller([&] {
    while (!done.load()) {
      pthread_kill(writer, SIGUSR1);
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  });

  std::string expected;
  {
    FdSink sink(json(), p.write_fd());
    for (int i = 0; i < 400; ++i) {
      TestRecord rec;
      rec.with_payload(std::string(static_cast<size_t>(i) * 37 % CC_CHUNK_MAX, static_cast<char>('a' + i % 26)));
      rec.raw.seq = static_cast<uint64_t>(i);
      const Event ev = rec.event();
      sink.write(ev);
      expected += expected_json(ev);
    }
    sink.flush();
    EXPECT_EQ(sink.write_errors(), 0u);
    EXPECT_EQ(sink.dropped_bytes(), 0u);
  }
  done = true;
  signaller.join();
  p.close_write();
  reader.join();
  sigaction(SIGUSR1, &old, nullptr);
  EXPECT_EQ(received.size(), expected.size());
  EXPECT_TRUE(received == expected);
}

}  // namespace
}  // namespace clearcap
