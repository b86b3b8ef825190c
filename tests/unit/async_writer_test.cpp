// AsyncWriter: the producer never waits for the destination; losses are
// counted exactly; a destination that fails comes back after a backoff and
// gets what was queued meanwhile.
#include "sinks/transports/async_writer.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace clearcap {
namespace {

using namespace std::chrono_literals;

// A destination the test controls. Thread: the writer thread calls the
// Transport methods; the test thread calls release()/records().
class FakeTransport : public Transport {
 public:
  std::mutex mu;
  std::condition_variable cv;
  bool blocked = false;          // send() waits while set
  int failing_connects = 0;      // connect() fails this many times
  int fail_send_after = -1;      // send() fails once after this many records
  bool stream = true;
  std::vector<std::string> got;  // records (or stream chunks) delivered
  std::string bytes;
  std::atomic<int> connect_calls{0};
  bool open_ = false;

  Result<void> connect() override {
    ++connect_calls;
    std::lock_guard lk(mu);
    if (failing_connects > 0) {
      --failing_connects;
      return make_error("refused", ECONNREFUSED);
    }
    open_ = true;
    return {};
  }
  bool connected() const override { return open_; }
  bool is_stream() const override { return stream; }
  bool is_network() const override { return true; }
  Result<void> send(std::span<const char> rec) override {
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return !blocked; });
    if (fail_send_after == 0) {
      fail_send_after = -1;
      open_ = false;
      return make_error("broken pipe", EPIPE);
    }
    if (fail_send_after > 0) --fail_send_after;
    got.emplace_back(rec.data(), rec.size());
    bytes.append(rec.data(), rec.size());
    return {};
  }
  void close() override { open_ = false; }
  void interrupt() override {
    std::lock_guard lk(mu);
    blocked = false;
    cv.notify_all();
  }
  void release() { interrupt(); }
  size_t delivered_bytes() {
    std::lock_guard lk(mu);
    return bytes.size();
  }
};

AsyncWriter::Options small_queue() {
  AsyncWriter::Options o;
  o.queue_bytes = 64 * 1024;
  o.initial_backoff = 10ms;
  o.max_backoff = 40ms;
  o.drain_timeout = 2000ms;
  return o;
}

template <class Pred>
bool eventually(Pred p, std::chrono::milliseconds limit = 5000ms) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!p()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

TEST(AsyncWriter, StuckDestinationNeverBlocksTheProducerAndLossesAreExact) {
  auto t = std::make_unique<FakeTransport>();
  FakeTransport* fake = t.get();
  fake->blocked = true;
  AsyncWriter w("fake", std::move(t), small_queue());
  w.start();
  // Connected before the first push: a shutdown never connects.
  ASSERT_TRUE(eventually([&] { return w.connected(); }));
  const std::string rec(100, 'r');  // 104 bytes with its length in the ring
  const int kPushes = 5000;         // ~520 KB into a 64 KiB ring
  int accepted = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kPushes; ++i) accepted += w.push(rec) ? 1 : 0;
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, 500ms) << "push() waited for the destination";
  EXPECT_LT(accepted, kPushes);
  // Whatever the ring did not take is counted, event by event.
  EXPECT_EQ(w.stats().dropped_events, static_cast<uint64_t>(kPushes - accepted));
  EXPECT_EQ(w.stats().dropped_bytes, static_cast<uint64_t>(kPushes - accepted) * rec.size());
  fake->release();
  w.stop();
  // Nothing vanished: delivered + dropped == pushed.
  EXPECT_EQ(fake->delivered_bytes(), static_cast<size_t>(w.delivered_events()) * rec.size());
  EXPECT_EQ(w.delivered_events() + w.stats().dropped_events, static_cast<uint64_t>(kPushes));
  EXPECT_EQ(w.delivered_events(), static_cast<uint64_t>(accepted));
}

TEST(AsyncWriter, RecordsTheLongestWriteTheDestinationHeld) {
  auto t = std::make_unique<FakeTransport>();
  FakeTransport* fake = t.get();
  AsyncWriter w("fake", std::move(t), small_queue());
  w.start();
  ASSERT_TRUE(eventually([&] { return w.connected(); }));
  ASSERT_TRUE(w.push("fast"));
  w.wake();
  ASSERT_TRUE(eventually([&] { return w.delivered_events() == 1; }));
  EXPECT_LT(w.stats().longest_write_ns, 50'000'000u) << "an unblocked send took 50 ms";
  {
    std::lock_guard lk(fake->mu);
    fake->blocked = true;
  }
  ASSERT_TRUE(w.push("held"));
  w.wake();
  std::this_thread::sleep_for(120ms);  // the send waits at least ~100 ms of this
  fake->release();
  ASSERT_TRUE(eventually([&] { return w.delivered_events() == 2; }));
  EXPECT_GE(w.stats().longest_write_ns, 60'000'000u);
  w.stop();
}

TEST(AsyncWriter, ReconnectsWithBackoffAndDeliversWhatWasQueued) {
  auto t = std::make_unique<FakeTransport>();
  FakeTransport* fake = t.get();
  fake->failing_connects = 4;
  AsyncWriter w("fake", std::move(t), small_queue());
  w.start();
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(w.push("line " + std::to_string(i) + "\n"));
  w.wake();
  ASSERT_TRUE(eventually([&] { return w.delivered_events() == 10; }));
  EXPECT_EQ(fake->connect_calls.load(), 5);
  EXPECT_EQ(w.connects(), 1u);
  EXPECT_EQ(w.stats().last_errno, ECONNREFUSED);
  EXPECT_EQ(w.stats().dropped_events, 0u);
  std::string expect;
  for (int i = 0; i < 10; ++i) expect += "line " + std::to_string(i) + "\n";
  {
    std::lock_guard lk(fake->mu);
    EXPECT_EQ(fake->bytes, expect);
  }
  w.stop();
}

TEST(AsyncWriter, MessageTransportRetriesTheFailedRecordAfterReconnecting) {
  auto t = std::make_unique<FakeTransport>();
  FakeTransport* fake = t.get();
  fake->stream = false;
  fake->fail_send_after = 3;  // the 4th record's send fails, connection drops
  AsyncWriter w("fake", std::move(t), small_queue());
  w.start();
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(w.push("m" + std::to_string(i)));
  w.wake();
  ASSERT_TRUE(eventually([&] { return w.delivered_events() == 8; }));
  {
    std::lock_guard lk(fake->mu);
    EXPECT_EQ(fake->got, (std::vector<std::string>{"m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7"}));
  }
  EXPECT_EQ(w.connects(), 2u);
  EXPECT_EQ(w.stats().write_errors, 1u);
  EXPECT_EQ(w.stats().dropped_events, 0u);
  w.stop();
}

TEST(AsyncWriter, LogLinesAndCloseEventsCountsWhatCannotBeDelivered) {
  auto t = std::make_unique<FakeTransport>();
  FakeTransport* fake = t.get();
  fake->failing_connects = 1 << 30;  // the peer never comes
  auto o = small_queue();
  o.drain_timeout = 200ms;
  AsyncWriter w("fake", std::move(t), o);
  w.start();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(w.push("ev"));
  w.close_events();  // bounded by drain_timeout, then counted
  EXPECT_EQ(w.stats().dropped_events, 5u);
  EXPECT_EQ(w.stats().dropped_bytes, 10u);
  w.push_log("summary");
  w.stop();
  EXPECT_EQ(w.stats().dropped_events, 6u);
  EXPECT_EQ(w.delivered_events(), 0u);
}

TEST(AsyncWriter, ReopenOnRequestLinesAfterItReachTheNewFile) {
  char tmpl[] = "/tmp/clearcap-aw-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl, path = dir + "/log.txt";
  auto read = [](const std::string& p) {
    std::string s;
    if (FILE* f = std::fopen(p.c_str(), "rb")) {
      char buf[256];
      size_t n;
      while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) s.append(buf, n);
      std::fclose(f);
    }
    return s;
  };
  for (int round = 0; round < 20; ++round) {  // a race would show within a few rounds
    std::remove(path.c_str());
    std::remove((path + ".1").c_str());
    AsyncWriter w("file", std::make_unique<FileTransport>(path, RotatingFile::Options{}), small_queue());
    w.start();
    w.push_log("before\n");
    ASSERT_TRUE(eventually([&] { return w.delivered_events() == 1; }));
    ASSERT_EQ(std::rename(path.c_str(), (path + ".1").c_str()), 0);
    w.request_reopen();
    w.push_log("after\n");
    ASSERT_TRUE(eventually([&] { return w.delivered_events() == 2; }));
    w.stop();
    EXPECT_EQ(read(path + ".1"), "before\n");
    EXPECT_EQ(read(path), "after\n");
  }
  std::remove(path.c_str());
  std::remove((path + ".1").c_str());
  rmdir(dir.c_str());
}

// stdout into a pipe whose reader stopped reading: the writer's write()
// blocks; close_events() interrupts it after the drain timeout, counts the
// rest, and nothing is retried in a loop.
TEST(AsyncWriter, StalledPipeIsInterruptedAtCloseAndCountedExactly) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  auto opts = small_queue();
  opts.drain_timeout = 300ms;
  AsyncWriter w("stdout", std::make_unique<FdTransport>(p[1]), opts);
  w.start();
  const std::string rec(4000, 'x');
  uint64_t pushed = 0;
  for (int i = 0; i < 200; ++i) pushed += w.push(rec + "\n") ? 1 : 0;  // the 64 KiB pipe fills
  w.wake();
  std::this_thread::sleep_for(200ms);  // the pipe is full, the writer blocked in write()
  const auto t0 = std::chrono::steady_clock::now();
  w.close_events();
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(took, 1500ms);
  w.stop();
  const SinkStats s = w.stats();
  EXPECT_EQ(w.delivered_events() + s.dropped_events, 200u) << "every event delivered or counted";
  EXPECT_GT(s.dropped_events, 0u);
  EXPECT_LT(s.write_errors, 10u) << "a failed send is not retried in a loop at shutdown";
  ::close(p[0]);
  ::close(p[1]);
}

// The reader closed the pipe: EPIPE is final, noticed even without a write
// (POLLERR on the write end), and everything after it is counted.
TEST(AsyncWriter, ClosedPipeIsClosedForGood) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  AsyncWriter w("stdout", std::make_unique<FdTransport>(p[1]), small_queue());
  w.start();
  EXPECT_TRUE(w.push("first\n"));
  w.wake();
  char buf[16];
  ASSERT_TRUE(eventually([&] { return w.delivered_events() == 1; }));
  ASSERT_EQ(read(p[0], buf, sizeof(buf)), 6);
  ::close(p[0]);
  EXPECT_TRUE(eventually([&] { return w.closed_for_good(); })) << "noticed while idle";
  for (int i = 0; i < 50; ++i) w.push("later\n");
  w.wake();
  std::this_thread::sleep_for(300ms);
  w.close_events();
  w.stop();
  EXPECT_EQ(w.delivered_events(), 1u);
  EXPECT_EQ(w.stats().dropped_events, 50u);
  EXPECT_LT(w.stats().write_errors, 5u) << "no spinning on EPIPE";
  ::close(p[1]);
}

// abandon(): the process ends without waiting; what the writer still holds
// is counted, so that delivered + lost = accepted + refused.
TEST(AsyncWriter, AbandonCountsWhatIsStillHeld) {
  auto t = std::make_unique<FakeTransport>();
  FakeTransport* fake = t.get();
  fake->blocked = true;
  AsyncWriter w("tcp://stuck", std::move(t), small_queue());
  w.start();
  uint64_t ok = 0;
  for (int i = 0; i < 100; ++i) ok += w.push(std::string(1000, 'y')) ? 1 : 0;
  w.wake();
  w.abandon();
  const SinkStats s = w.stats();
  EXPECT_EQ(w.delivered_events() + s.dropped_events, 100u);
  EXPECT_GT(ok, 0u);
  fake->release();
  w.stop();
  EXPECT_EQ(w.stats().dropped_events, s.dropped_events) << "frozen after abandon()";
}

TEST(Destination, Parsing) {
  auto d = parse_destination("tcp://127.0.0.1:9000");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->kind, Destination::Kind::kTcp);
  EXPECT_EQ(d->host, "127.0.0.1");
  EXPECT_EQ(d->port, 9000);
  d = parse_destination("ws://localhost:28257/events");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->kind, Destination::Kind::kWebSocket);
  EXPECT_EQ(d->path, "/events");
  d = parse_destination("ws://[::1]:1");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->host, "::1");
  EXPECT_EQ(d->path, "/");
  d = parse_destination("/var/log/x.jsonl");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->kind, Destination::Kind::kFile);
  EXPECT_EQ(parse_destination("stdout")->kind, Destination::Kind::kStdout);
  EXPECT_EQ(parse_destination("-")->kind, Destination::Kind::kStdout);
  EXPECT_EQ(parse_destination("stderr")->kind, Destination::Kind::kStderr);
  for (const char* bad : {"tcp://host", "tcp://host:0", "tcp://host:70000", "tcp://h:1/x", "udp://h:1",
                          "wss://h:1/", "tcp://:5", ""}) {
    auto r = parse_destination(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_FALSE(r.error().message.empty());
    }
  }
}

}  // namespace
}  // namespace clearcap
