// In-process module tests (root): a CaptureSession with one module, probes
// attached only in this process, and a consumer that keeps every event, so
// that a test drives real library calls in its own threads and asserts the
// exact records they produce.
// Thread: the test's thread; the consumer is written by the processor
// thread (a mutex) and read after stop().
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/capture_session.h"
#include "modules/module_info.h"

namespace clearcap::test {

// What a test checks of one event (copied: the Event points into a batch).
struct Seen {
  std::string module, source, comm, payload;
  bool write = false;
  uint32_t pid = 0, tid = 0;
  int32_t fd = -1;
  uint64_t conn_id = 0, seq = 0;
  uint32_t call_len = 0;
  uint16_t record_type = 0;
};

class Collect : public EventSink {
 public:
  void write(const Event& ev) override {
    Seen s;
    s.module = std::string(ev.module());
    s.source = std::string(source_name(ev.source));
    s.comm = std::string(ev.comm);
    s.payload.assign(reinterpret_cast<const char*>(ev.payload.data()), ev.payload.size());
    s.write = ev.direction == Direction::kWrite;
    s.pid = ev.pid;
    s.tid = ev.tid;
    s.fd = ev.fd;
    s.conn_id = ev.conn_id;
    s.seq = ev.seq;
    s.call_len = ev.call_len;
    s.record_type = ev.record_type;
    std::lock_guard lock(mu_);
    seen_.push_back(std::move(s));
  }
  void flush() override {}
  void collect_stats(std::vector<SinkStats>&) const override {}
  std::vector<Seen> take() {
    std::lock_guard lock(mu_);
    return seen_;
  }

 private:
  std::mutex mu_;
  std::vector<Seen> seen_;
};

class ModuleTest : public ::testing::Test {
 protected:
  // Loads `module` on `library`, probes in this process only, and starts.
  void open(const ModuleInfo& module, const std::string& library) {
    CaptureSession::Options so;
    so.rings.ring_bytes = 1u << 20;
    so.rings.wakeup_bytes = 0;  // every record wakes the reader: the test waits less
    so.readers = 1;
    so.pids = {getpid()};
    auto s = CaptureSession::create(so, sink_);
    ASSERT_TRUE(s) << s.error().message;
    session_ = std::move(*s);
    ModuleOptions mo;
    mo.discovery.library = library;
    mo.discovery.pids = {getpid()};
    auto m = session_->add_module([&](const RingSet& rings) { return module.load(mo, rings); });
    ASSERT_TRUE(m) << m.error().message;
    module_ = *m;
    ASSERT_GT(module_->uprobes(), 0u);
    auto r = session_->start();
    ASSERT_TRUE(r) << r.error().message;
  }
  // Detaches, drains and returns every event; the losses must be none.
  std::vector<Seen> stop() {
    session_->stop();
    const Counters c = session_->counters();
    EXPECT_EQ(c.lost(), 0u);
    return sink_.take();
  }
  static std::vector<Seen> with_payload(const std::vector<Seen>& all, const std::string& needle) {
    std::vector<Seen> out;
    for (const auto& s : all)
      if (s.payload.find(needle) != std::string::npos) out.push_back(s);
    return out;
  }

  Collect sink_;
  std::unique_ptr<CaptureSession> session_;
  CaptureModule* module_ = nullptr;
};

// A connected AF_UNIX stream pair (the TLS ends of one test).
inline std::pair<int, int> socket_pair() {
  int sv[2] = {-1, -1};
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  return {sv[0], sv[1]};
}

// A connected TCP pair on 127.0.0.1 (libraries that ask for the peer's
// address, such as NSS, refuse AF_UNIX sockets); .first is the client end.
inline std::pair<int, int> tcp_pair() {
  int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  EXPECT_EQ(bind(l, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  EXPECT_EQ(listen(l, 1), 0);
  EXPECT_EQ(getsockname(l, reinterpret_cast<sockaddr*>(&a), &len), 0);
  int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_EQ(connect(c, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  int s = accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
  close(l);
  return {c, s};
}

// A self-signed certificate and key (PEM) for the test servers.
struct TestCert {
  std::string cert_pem, key_pem;
};
TestCert make_test_cert();

// An OpenSSL server on `fd`: accepts one TLS connection, reads one message
// into *got and answers `reply` (the other end of a test's client).
void openssl_serve_once(const TestCert& cert, int fd, const std::string& reply, std::string* got);

}  // namespace clearcap::test
