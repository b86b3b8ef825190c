// Transports: where an AsyncWriter's thread delivers encoded records.
// Destinations are named as on the command line (spec/cli.md): "stdout",
// "stderr", a file path, tcp://host:port, ws://host:port/path.
//
// Thread: every method runs on the owning writer thread, except interrupt(),
// which any thread may call to unblock a send that waits on a stuck peer.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "core/result.h"
#include "sinks/transports/rotating_file.h"

namespace clearcap {

struct Destination {
  enum class Kind { kStdout, kStderr, kFile, kTcp, kWebSocket };
  Kind kind = Kind::kStdout;
  std::string text;  // as given, for messages and SinkStats::name
  std::string path;  // file path, or the ws:// request path
  std::string host;
  uint16_t port = 0;
};

// Parses a destination; the error says what form is expected.
Result<Destination> parse_destination(const std::string& text);

class Transport {
 public:
  virtual ~Transport() = default;
  // Open the file / connect to the peer. Returns an error (with errno) when
  // the destination is not reachable now; the writer retries with backoff.
  virtual Result<void> connect() = 0;
  virtual bool connected() const = 0;
  // Delivers one record whole. On failure the transport is disconnected
  // (connected() == false) and the record counts as lost.
  virtual Result<void> send(std::span<const char> record) = 0;
  // Several records at once where the transport is a byte stream (fewer
  // syscalls). On failure `*sent` bytes were delivered.
  virtual Result<void> send_stream(std::span<const char> bytes, size_t* sent) {
    *sent = 0;
    auto r = send(bytes);
    if (r) *sent = bytes.size();
    return r;
  }
  // True when records may be concatenated and handed to send_stream().
  virtual bool is_stream() const { return true; }
  // Handles what the peer sent and notices a peer that went away, without
  // blocking; called when the writer is idle.
  virtual void poll() {}
  // SIGHUP: files are closed and opened again (logrotate).
  virtual void reopen() {}
  virtual void close() = 0;
  // Any thread: make a blocked send() return (shutdown).
  virtual void interrupt() {}
  // Network destinations reconnect with backoff; files and std streams retry
  // at the same pace but are expected to work.
  virtual bool is_network() const { return false; }
  // True once nothing can ever be delivered again (stdout whose reader
  // closed the pipe): the writer counts what it holds as lost at once.
  virtual bool closed_for_good() const { return false; }
};

// stdout / stderr (not owned, never closed). A send blocked on a reader that
// stopped reading is ended by interrupt(): a signal to the writer thread
// (handler without SA_RESTART) makes write() return, and the send fails.
// EPIPE (the reader closed the pipe) is final: closed_for_good().
class FdTransport : public Transport {
 public:
  explicit FdTransport(int fd);
  Result<void> connect() override { return {}; }
  bool connected() const override { return true; }
  Result<void> send(std::span<const char> record) override;
  void close() override {}
  void interrupt() override;
  // A pipe whose reader is gone shows POLLERR on its write end: noticed
  // without waiting for the next event to fail with EPIPE.
  void poll() override;
  bool closed_for_good() const override { return epipe_.load(std::memory_order_relaxed); }

 private:
  int fd_;
  std::atomic<bool> interrupted_{false}, epipe_{false};
  std::atomic<bool> have_writer_{false};
  std::atomic<unsigned long> writer_{0};  // pthread_t of the thread in send()
};

class FileTransport : public Transport {
 public:
  FileTransport(std::string path, RotatingFile::Options opts) : file_(std::move(path), std::move(opts)) {}
  Result<void> connect() override { return file_.open(); }
  bool connected() const override { return file_.is_open(); }
  Result<void> send(std::span<const char> record) override;
  void reopen() override;
  void close() override { file_.close(); }
  RotatingFile& file() { return file_; }

 private:
  RotatingFile file_;
};

// tcp://host:port: the records as a byte stream (JSON lines, text, or
// length-delimited protobuf).
class TcpTransport : public Transport {
 public:
  TcpTransport(std::string host, uint16_t port) : host_(std::move(host)), port_(port) {}
  ~TcpTransport() override { close(); }
  Result<void> connect() override;
  bool connected() const override { return fd_.load() >= 0; }
  Result<void> send(std::span<const char> record) override;
  Result<void> send_stream(std::span<const char> bytes, size_t* sent) override;
  void poll() override;
  void close() override;
  void interrupt() override;
  bool is_network() const override { return true; }

 private:
  // A peer that closed its end is only noticed by the kernel on the second
  // write after the close (the first is answered with a RST), so the socket
  // is checked for EOF before each send: fewer records vanish into a dead
  // connection.
  bool peer_gone();

  std::string host_;
  uint16_t port_;
  std::atomic<int> fd_{-1};  // read by interrupt() from another thread
};

// Connects to a destination: the caller decides `binary` (WebSocket frame
// type) and `strip_length_prefix` (proto records are sent one LogEntry per
// binary frame, without the varint prefix, like the eCaptureQ server).
struct TransportOptions {
  RotatingFile::Options file;
  bool ws_binary = false;
  bool ws_strip_length_prefix = false;
};
std::unique_ptr<Transport> make_transport(const Destination& dest, const TransportOptions& opts);

}  // namespace clearcap
