// A pcap filter expression (`tcp port 443`) compiled by libpcap and run on
// captured packets in userspace (pcap_offline_filter), on the processor
// thread: the tc program copies every packet of the interface, this decides
// which ones reach the file.
// Thread: compile on any thread; matches() from one thread at a time.
// libpcap's headers stay in the .cpp: its struct bpf_insn clashes with the
// kernel's, which libbpf users include.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "core/result.h"

namespace clearcap {

class PacketFilter {
 public:
  enum class Link { kEthernet, kRaw };  // DLT_EN10MB (also lo), DLT_RAW (IP first)
  // An empty expression matches everything. A bad expression is an error
  // quoting libpcap's message.
  static Result<std::unique_ptr<PacketFilter>> compile(const std::string& expression, Link link, uint32_t snaplen);
  ~PacketFilter();
  PacketFilter(const PacketFilter&) = delete;
  PacketFilter& operator=(const PacketFilter&) = delete;

  bool matches(std::span<const uint8_t> data, uint32_t wire_len) const;
  const std::string& expression() const { return expression_; }

 private:
  PacketFilter() = default;
  struct Program;
  std::string expression_;
  std::unique_ptr<Program> prog_;  // null: matches everything
};

}  // namespace clearcap
