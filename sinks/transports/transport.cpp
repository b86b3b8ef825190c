#include "sinks/transports/transport.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <mutex>

#include <fmt/format.h>

#include "sinks/transports/ws_transport.h"

namespace clearcap {
namespace {

Result<void> write_fd(int fd, const char* p, size_t n, size_t* sent, const std::string& what) {
  *sent = 0;
  while (*sent < n) {
    const ssize_t w = ::send(fd, p + *sent, n - *sent, MSG_NOSIGNAL);
    if (w > 0) {
      *sent += static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    const int e = w < 0 ? errno : EIO;
    return make_error(fmt::format("{}: send failed: {}", what, std::strerror(e)), e);
  }
  return {};
}

// host:port with a port in 1..65535.
Result<void> parse_host_port(std::string_view hp, Destination& d) {
  const size_t colon = hp.rfind(':');
  if (colon == std::string_view::npos || colon == 0)
    return make_error(fmt::format("{}: expected host:port after the scheme, e.g. tcp://127.0.0.1:9000", d.text),
                      EINVAL);
  std::string_view host = hp.substr(0, colon), port = hp.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned v = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
  if (ec != std::errc() || end != port.data() + port.size() || v == 0 || v > 65535)
    return make_error(fmt::format("{}: port '{}' is not a number from 1 to 65535", d.text, port), EINVAL);
  d.host = host;
  d.port = static_cast<uint16_t>(v);
  return {};
}

}  // namespace

Result<Destination> parse_destination(const std::string& text) {
  Destination d;
  d.text = text;
  if (text.empty())
    return make_error("empty destination: give stdout, stderr, a file path, tcp://host:port or ws://host:port/path",
                      EINVAL);
  if (text == "stdout" || text == "-") {
    d.kind = Destination::Kind::kStdout;
    return d;
  }
  if (text == "stderr") {
    d.kind = Destination::Kind::kStderr;
    return d;
  }
  const size_t scheme = text.find("://");
  if (scheme == std::string::npos) {
    d.kind = Destination::Kind::kFile;
    d.path = text;
    return d;
  }
  const std::string s = text.substr(0, scheme);
  std::string_view rest = std::string_view(text).substr(scheme + 3);
  if (s == "tcp") {
    d.kind = Destination::Kind::kTcp;
    if (rest.find('/') != std::string_view::npos)
      return make_error(fmt::format("{}: a tcp:// destination has no path; use tcp://host:port", text), EINVAL);
    if (auto r = parse_host_port(rest, d); !r) return tl::unexpected(r.error());
    return d;
  }
  if (s == "ws") {
    d.kind = Destination::Kind::kWebSocket;
    const size_t slash = rest.find('/');
    d.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
    if (auto r = parse_host_port(rest.substr(0, slash), d); !r) return tl::unexpected(r.error());
    return d;
  }
  if (s == "file") {
    d.kind = Destination::Kind::kFile;
    d.path = std::string(rest);
    return d;
  }
  return make_error(fmt::format("{}: unknown scheme '{}://'; use a file path, tcp://host:port or "
                                "ws://host:port/path (wss:// is not supported)",
                                text, s),
                    EINVAL);
}

namespace {
// Interrupts a write() blocked on a pipe nobody reads (see FdTransport).
// SIGRTMIN is free for applications (glibc reserves the ones below it).
int interrupt_signal() { return SIGRTMIN; }
void on_interrupt_signal(int) {}
}  // namespace

FdTransport::FdTransport(int fd) : fd_(fd) {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_handler = on_interrupt_signal;  // no SA_RESTART: write() returns EINTR
    sigemptyset(&sa.sa_mask);
    sigaction(interrupt_signal(), &sa, nullptr);
  });
}

Result<void> FdTransport::send(std::span<const char> record) {
  static_assert(sizeof(pthread_t) <= sizeof(unsigned long));
  writer_.store(static_cast<unsigned long>(pthread_self()), std::memory_order_relaxed);
  have_writer_.store(true, std::memory_order_release);
  size_t done = 0;
  while (done < record.size()) {
    if (interrupted_.load(std::memory_order_relaxed))
      return make_error(fmt::format("write interrupted at shutdown ({} of {} bytes written)", done, record.size()),
                        EINTR);
    const ssize_t w = ::write(fd_, record.data() + done, record.size() - done);
    if (w > 0) {
      done += static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    const int e = w < 0 ? errno : EIO;
    if (e == EPIPE) epipe_.store(true, std::memory_order_relaxed);
    return make_error(fmt::format("write failed: {}", std::strerror(e)), e);
  }
  return {};
}

void FdTransport::poll() {
  pollfd p{fd_, 0, 0};
  if (::poll(&p, 1, 0) == 1 && (p.revents & POLLERR)) {
    struct stat st {};
    if (fstat(fd_, &st) == 0 && S_ISFIFO(st.st_mode)) epipe_.store(true, std::memory_order_relaxed);
  }
}

void FdTransport::interrupt() {
  interrupted_.store(true);
  // Repeated: the writer may be between the check and the write() call.
  if (have_writer_.load(std::memory_order_acquire))
    pthread_kill(static_cast<pthread_t>(writer_.load(std::memory_order_relaxed)), interrupt_signal());
}

Result<void> FileTransport::send(std::span<const char> record) {
  auto r = file_.write(record);
  if (!r) file_.close();  // the writer reopens it after a pause
  return r;
}

void FileTransport::reopen() {
  if (auto r = file_.reopen(); !r) file_.close();
}

Result<void> TcpTransport::connect() {
  close();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(port_);
  if (int rc = getaddrinfo(host_.c_str(), port.c_str(), &hints, &res); rc != 0)
    return make_error(fmt::format("tcp://{}:{}: cannot resolve {}: {}", host_, port_, host_, gai_strerror(rc)),
                      EHOSTUNREACH);
  int err = ECONNREFUSED;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) {
      err = errno;
      continue;
    }
    // Non-blocking connect with a deadline: a black-holed address must not
    // hold the writer (and the shutdown) for the kernel's minutes-long timeout.
    int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc < 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      rc = ::poll(&p, 1, 2000);
      if (rc == 1) {
        socklen_t len = sizeof(err);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        rc = err == 0 ? 0 : -1;
      } else {
        err = rc == 0 ? ETIMEDOUT : errno;
        rc = -1;
      }
    } else if (rc < 0) {
      err = errno;
    }
    if (rc == 0) {
      // Blocking sends from here on: the writer thread may wait for a slow
      // peer (its queue absorbs the wait), and interrupt() unblocks it.
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
      fd_.store(fd);
      freeaddrinfo(res);
      return {};
    }
    ::close(fd);
  }
  freeaddrinfo(res);
  return make_error(fmt::format("tcp://{}:{}: cannot connect: {}", host_, port_, std::strerror(err)), err);
}

bool TcpTransport::peer_gone() {
  const int fd = fd_.load();
  pollfd p{fd, POLLIN | POLLRDHUP, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  if (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) return true;
  // The peer sent something: nothing is expected, discard it; 0 = EOF.
  char buf[4096];
  const ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR);
}

void TcpTransport::poll() {
  if (connected() && peer_gone()) close();
}

Result<void> TcpTransport::send(std::span<const char> record) {
  size_t sent = 0;
  return send_stream(record, &sent);
}

Result<void> TcpTransport::send_stream(std::span<const char> bytes, size_t* sent) {
  *sent = 0;
  if (!connected() || peer_gone()) {
    close();
    return make_error(fmt::format("tcp://{}:{}: peer closed the connection", host_, port_), EPIPE);
  }
  auto r = write_fd(fd_.load(), bytes.data(), bytes.size(), sent, fmt::format("tcp://{}:{}", host_, port_));
  if (!r) close();
  return r;
}

void TcpTransport::close() {
  const int fd = fd_.exchange(-1);
  if (fd >= 0) ::close(fd);
}

void TcpTransport::interrupt() {
  const int fd = fd_.load();
  if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
}

std::unique_ptr<Transport> make_transport(const Destination& d, const TransportOptions& opts) {
  switch (d.kind) {
    case Destination::Kind::kStdout: return std::make_unique<FdTransport>(STDOUT_FILENO);
    case Destination::Kind::kStderr: return std::make_unique<FdTransport>(STDERR_FILENO);
    case Destination::Kind::kFile: return std::make_unique<FileTransport>(d.path, opts.file);
    case Destination::Kind::kTcp: return std::make_unique<TcpTransport>(d.host, d.port);
    case Destination::Kind::kWebSocket:
      return std::make_unique<WsTransport>(d.host, d.port, d.path, opts.ws_binary, opts.ws_strip_length_prefix);
  }
  return nullptr;
}

}  // namespace clearcap
