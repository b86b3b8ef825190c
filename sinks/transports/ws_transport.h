// ws://host:port/path: clearcap as a WebSocket client (Boost.Beast), one
// record per message.
//
// Thread: like every Transport, all methods on the writer thread except
// interrupt(). Beast runs on a private io_context driven only from the
// writer thread: a read is always pending so that pings are answered and a
// close from the peer is noticed; sends complete by running that context
// until the write handler fires.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "sinks/transports/transport.h"

namespace clearcap {

class WsTransport : public Transport {
 public:
  WsTransport(std::string host, uint16_t port, std::string path, bool binary, bool strip_length_prefix);
  ~WsTransport() override;
  Result<void> connect() override;
  bool connected() const override;
  Result<void> send(std::span<const char> record) override;
  bool is_stream() const override { return false; }
  void poll() override;
  void close() override;
  void interrupt() override;
  bool is_network() const override { return true; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string host_, path_;
  uint16_t port_;
  bool binary_, strip_;
};

}  // namespace clearcap
