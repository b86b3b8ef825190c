// Builds ring records the way the BPF side lays them out and decodes them with
// the real decoder, so that sink tests see exactly what the pipeline sees.
#pragma once

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/event.h"

namespace clearcap::test {

class TestRecord {
 public:
  cc_data_event raw{};
  std::string payload;

  TestRecord() {
    raw.hdr.type = CC_REC_DATA;
    raw.hdr.hdr_len = sizeof(cc_data_event);
    raw.pid = 1234;
    raw.tid = 1235;
    raw.uid = 0;
    raw.fd = 5;
    raw.cgroup_id = 7;
    raw.conn_id = 42;
    raw.direction = CC_DIR_WRITE;
    raw.source = CC_SRC_SSL_WRITE;
    raw.flags = CC_FLAG_LAST_CHUNK;
    set_comm("curl");
  }

  TestRecord& with_payload(std::string_view p) {
    payload = std::string(p);
    return *this;
  }
  TestRecord& set_comm(std::string_view comm) {
    std::memset(raw.comm, 0, sizeof(raw.comm));
    std::memcpy(raw.comm, comm.data(), std::min(comm.size(), sizeof(raw.comm)));
    return *this;
  }
  TestRecord& ipv4(const char* src, uint16_t sport, const char* dst, uint16_t dport) {
    return tuple(AF_INET, src, sport, dst, dport);
  }
  TestRecord& ipv6(const char* src, uint16_t sport, const char* dst, uint16_t dport) {
    return tuple(AF_INET6, src, sport, dst, dport);
  }

  // The record bytes; call_len defaults to this chunk's length.
  std::vector<uint8_t> bytes() const {
    cc_data_event ev = raw;
    ev.hdr.data_len = static_cast<uint32_t>(payload.size());
    if (ev.call_len == 0) ev.call_len = static_cast<uint32_t>(payload.size()) + ev.call_off;
    std::vector<uint8_t> out(sizeof(ev) + payload.size());
    std::memcpy(out.data(), &ev, sizeof(ev));
    std::memcpy(out.data() + sizeof(ev), payload.data(), payload.size());
    return out;
  }

  // Decodes through decode_record. The Event points into this object: keep
  // it alive and unchanged while the Event is used.
  Event event(uint64_t wall_ns = 1'795'373'040'123'456'789ull) {
    storage_ = bytes();
    Event ev;
    if (decode_record(storage_, ev) != DecodeStatus::kSuccess) {
      throw std::logic_error("TestRecord: decode_record rejected the record");
    }
    ev.wall_ns = wall_ns;
    return ev;
  }

 private:
  TestRecord& tuple(uint16_t family, const char* src, uint16_t sport, const char* dst, uint16_t dport) {
    raw.family = family;
    raw.sport = sport;
    raw.dport = dport;
    raw.flags |= CC_FLAG_HAS_TUPLE;
    std::memset(raw.saddr, 0, sizeof(raw.saddr));
    std::memset(raw.daddr, 0, sizeof(raw.daddr));
    if (inet_pton(family, src, raw.saddr) != 1 || inet_pton(family, dst, raw.daddr) != 1) {
      throw std::invalid_argument("TestRecord: bad address");
    }
    return *this;
  }

  std::vector<uint8_t> storage_;
};

}  // namespace clearcap::test
