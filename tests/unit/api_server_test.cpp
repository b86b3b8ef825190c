// ApiServer under descriptor exhaustion: accept() failing with EMFILE pauses
// instead of spinning, is counted, and the server serves again once
// descriptors are free.
#include "control/api_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace clearcap {
namespace {

using namespace std::chrono_literals;

// The lowest free descriptor number: with RLIMIT_NOFILE at it, no new
// descriptor can be made (they are always the lowest free number).
rlim_t lowest_free_fd() {
  const int fd = dup(0);
  close(fd);
  return static_cast<rlim_t>(fd);
}

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

TEST(ApiServer, AcceptWithoutDescriptorsBacksOffAndRecovers) {
  ApiServer::Options o;
  o.addr.host = "127.0.0.1";
  auto server = ApiServer::start(o, [](const ApiRequest&) { return ApiReply{200, "text/plain", "ok"}; });
  ASSERT_TRUE(server) << server.error().message;
  const uint16_t port = static_cast<uint16_t>(std::stoi((*server)->address().substr((*server)->address().rfind(':') + 1)));

  std::vector<int> clients;
  for (int i = 0; i < 4; ++i) clients.push_back(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  rlimit old{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
  rlimit tight = old;
  tight.rlim_cur = lowest_free_fd();  // not one descriptor left for accept()
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &tight), 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int fd : clients) ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);  // the backlog takes them
  const double cpu0 = cpu_seconds();
  std::this_thread::sleep_for(1s);
  const double cpu = cpu_seconds() - cpu0;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
  const uint64_t errors = (*server)->counters().accept_errors;
  EXPECT_GE(errors, 2u);
  EXPECT_LE(errors, 15u) << "one attempt per 100 ms pause, not a spin";
  EXPECT_LT(cpu, 0.2) << "CPU seconds spent in one second of EMFILE";

  // Descriptors are back: the waiting connections are served.
  const std::string req = "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(write(clients[0], req.data(), req.size()), static_cast<ssize_t>(req.size()));
  timeval tv{5, 0};
  setsockopt(clients[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char buf[256] = {};
  ASSERT_GT(read(clients[0], buf, sizeof(buf) - 1), 0);
  EXPECT_EQ(std::string(buf).substr(0, 12), "HTTP/1.1 200");
  for (int fd : clients) close(fd);
}

}  // namespace
}  // namespace clearcap
