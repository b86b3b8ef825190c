// pcapng export: plaintext as synthesized TCP/IP packets, so that Wireshark
// and tshark dissect HTTP (and anything else) directly, without keys.
//
// Per TCP connection (the 4-tuple) the exporter invents what the capture
// does not have: a three-way handshake before the first chunk, initial
// sequence numbers (a hash of the tuple and direction: the same capture
// exports to the same file), and a pure ACK from the receiver after each
// data segment. TCP sequence numbers are ISN + 1 + the chunk's stream offset
// (`seq`), so a gap in the capture shows up in Wireshark as "previous
// segment not captured", exactly where bytes were lost.
//
// Client and server: the end with the lower port is taken as the server
// (443, 8443 ... against ephemeral ports); on equal ports, the receiver of the
// first chunk.
//
// Both ends of one connection are often captured (curl's write and nginx's
// read of the same bytes, on loopback). Exporting both would give Wireshark
// every segment twice with clashing sequence numbers, so the first process
// seen on a 4-tuple owns it and the other end's events are left out and
// counted (they are in the JSON/text exports).
#include <arpa/inet.h>
#include <sys/socket.h>

#include <cstring>
#include <map>
#include <string>

#include <fmt/format.h>

#include "sinks/encoders/pcapng_blocks.h"
#include "sinks/encoders/pcapng_export.h"

namespace clearcap {

namespace {

constexpr uint32_t kMaxSegment = 65495;  // 65535 - 20 (IPv4) - 20 (TCP)
constexpr uint8_t kFin = 0x01, kSyn = 0x02, kPsh = 0x08, kAck = 0x10;

uint32_t fnv1a(const void* data, size_t n, uint32_t h = 2166136261u) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 16777619u;
  return h;
}

uint32_t sum16(const uint8_t* p, size_t n, uint32_t s = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) s += (uint32_t{p[i]} << 8) | p[i + 1];
  if (n & 1) s += uint32_t{p[n - 1]} << 8;
  return s;
}
uint16_t fold(uint32_t s) {
  while (s >> 16) s = (s & 0xFFFF) + (s >> 16);
  return static_cast<uint16_t>(~s);
}

struct Endpoint {
  uint8_t addr[16] = {};
  uint16_t port = 0;
  auto operator<=>(const Endpoint&) const = default;
};

struct Flow {
  uint32_t pid = 0;
  uint64_t conn_id = 0;
  uint16_t family = AF_INET;
  Endpoint ends[2];      // [0] client, [1] server
  uint32_t isn[2] = {};  // per sending end
  uint64_t next[2] = {}; // stream bytes seen from each end (highest offset + 1)
};

class PcapngExporter : public Exporter {
 public:
  PcapngExporter(std::unique_ptr<OutFile> out, std::string version) : out_(std::move(out)) {
    pcapng::put_shb(buf_, "clearcap " + version + " (export: TLS plaintext as synthesized TCP)");
    pcapng::put_idb(buf_, pcapng::kLinktypeRaw, 0, "clearcap");  // snaplen 0: no limit
  }

  Result<void> write(const Event& ev) override {
    Endpoint src, dst;
    uint16_t family = ev.family == AF_INET6 ? AF_INET6 : AF_INET;
    if (ev.has_tuple()) {
      std::memcpy(src.addr, ev.saddr, 16);
      std::memcpy(dst.addr, ev.daddr, 16);
      src.port = ev.sport;
      dst.port = ev.dport;
    } else {
      // No socket seen (memory BIO, fd unknown): documentation addresses
      // (192.0.2.0/24), one port per connection, so streams stay apart.
      family = AF_INET;
      Endpoint local, peer;
      const uint8_t l[4] = {192, 0, 2, 1}, r[4] = {192, 0, 2, 2};
      std::memcpy(local.addr, l, 4);
      std::memcpy(peer.addr, r, 4);
      local.port = static_cast<uint16_t>(20000 + (ev.conn_id * 7919 + ev.pid) % 40000);
      peer.port = 443;
      src = ev.direction == Direction::kWrite ? local : peer;
      dst = ev.direction == Direction::kWrite ? peer : local;
      synthesized_++;
    }
    std::string key;
    key.append(reinterpret_cast<const char*>(&family), 2);
    const Endpoint& lo = std::min(src, dst);
    const Endpoint& hi = std::max(src, dst);
    key.append(reinterpret_cast<const char*>(&lo), sizeof(lo));
    key.append(reinterpret_cast<const char*>(&hi), sizeof(hi));

    auto it = flows_.find(key);
    if (it == flows_.end()) {
      Flow f;
      f.pid = ev.pid;
      f.conn_id = ev.conn_id;
      f.family = family;
      bool src_is_server = src.port < dst.port;
      f.ends[0] = src_is_server ? dst : src;
      f.ends[1] = src_is_server ? src : dst;
      for (int d = 0; d < 2; ++d) f.isn[d] = fnv1a(key.data(), key.size(), 2166136261u ^ static_cast<uint32_t>(d + 1));
      it = flows_.emplace(key, f).first;
      Flow& fl = it->second;
      const uint64_t t0 = ev.wall_ns >= 3000 ? ev.wall_ns - 3000 : 0;
      std::string hs = "handshake synthesized by clearcap export";
      packet(fl, 0, t0, fl.isn[0], 0, kSyn, {}, hs);
      packet(fl, 1, t0 + 1000, fl.isn[1], fl.isn[0] + 1, kSyn | kAck, {}, hs);
      packet(fl, 0, t0 + 2000, fl.isn[0] + 1, fl.isn[1] + 1, kAck, {}, hs);
      connections_++;
    }
    Flow& f = it->second;
    if (f.pid != ev.pid || f.conn_id != ev.conn_id) {
      other_end_++;
      return drain_if_big();
    }
    const int d = src == f.ends[0] ? 0 : 1;
    const std::string comment = fmt::format("pid={} comm={}", ev.pid, ev.comm);
    for (size_t off = 0; off < ev.payload.size() || (off == 0 && ev.payload.empty()); off += kMaxSegment) {
      auto part = ev.payload.subspan(off, std::min<size_t>(kMaxSegment, ev.payload.size() - off));
      const uint64_t stream_off = ev.seq + off;
      packet(f, d, ev.wall_ns, static_cast<uint32_t>(f.isn[d] + 1 + stream_off),
             static_cast<uint32_t>(f.isn[1 - d] + 1 + f.next[1 - d]), kPsh | kAck, part, comment);
      f.next[d] = std::max(f.next[d], stream_off + part.size());
      if (ev.payload.empty()) break;
    }
    packet(f, 1 - d, ev.wall_ns, static_cast<uint32_t>(f.isn[1 - d] + 1 + f.next[1 - d]),
           static_cast<uint32_t>(f.isn[d] + 1 + f.next[d]), kAck, {}, {});
    return drain_if_big();
  }

  Result<void> finish() override {
    // A FIN from each end closes every connection cleanly in Wireshark's
    // conversation statistics.
    for (auto& [key, f] : flows_) {
      for (int d = 0; d < 2; ++d)
        packet(f, d, last_ts_, static_cast<uint32_t>(f.isn[d] + 1 + f.next[d]),
               static_cast<uint32_t>(f.isn[1 - d] + 1 + f.next[1 - d] + (d == 1 ? 1 : 0)), kFin | kAck, {},
               "close synthesized by clearcap export");
    }
    if (auto r = out_->append(buf_); !r) return r;
    buf_.clear();
    return out_->close();
  }

  std::vector<std::string> notes() const override {
    std::vector<std::string> n;
    n.push_back(fmt::format("pcapng: {} packets, {} TCP connections", packets_, connections_));
    if (other_end_)
      n.push_back(fmt::format("pcapng: {} events from the other end of connections already exported were left out "
                              "(both ends captured; the JSON and text exports have them)",
                              other_end_));
    if (synthesized_)
      n.push_back(fmt::format("pcapng: {} events had no socket tuple; given 192.0.2.x documentation addresses",
                              synthesized_));
    return n;
  }

 private:
  Result<void> drain_if_big() {
    if (buf_.size() < (1u << 20)) return {};
    auto r = out_->append(buf_);
    buf_.clear();
    return r;
  }

  void packet(const Flow& f, int from, uint64_t ts, uint32_t seq, uint32_t ack, uint8_t flags,
              std::span<const uint8_t> data, std::string_view comment) {
    last_ts_ = std::max(last_ts_, ts);
    const Endpoint& s = f.ends[from];
    const Endpoint& d = f.ends[1 - from];
    pkt_.clear();
    const size_t tcp_len = 20 + data.size();
    const bool v6 = f.family == AF_INET6;
    if (!v6) {
      uint8_t ip[20] = {0x45, 0};
      const uint16_t total = htons(static_cast<uint16_t>(20 + tcp_len));
      std::memcpy(ip + 2, &total, 2);
      ip[6] = 0x40;  // DF
      ip[8] = 64;
      ip[9] = IPPROTO_TCP;
      std::memcpy(ip + 12, s.addr, 4);
      std::memcpy(ip + 16, d.addr, 4);
      const uint16_t c = htons(fold(sum16(ip, 20)));
      std::memcpy(ip + 10, &c, 2);
      pkt_.append(reinterpret_cast<const char*>(ip), 20);
    } else {
      uint8_t ip[40] = {0x60, 0};
      const uint16_t plen = htons(static_cast<uint16_t>(tcp_len));
      std::memcpy(ip + 4, &plen, 2);
      ip[6] = IPPROTO_TCP;
      ip[7] = 64;
      std::memcpy(ip + 8, s.addr, 16);
      std::memcpy(ip + 24, d.addr, 16);
      pkt_.append(reinterpret_cast<const char*>(ip), 40);
    }
    uint8_t tcp[20] = {};
    const uint16_t sp = htons(s.port), dp = htons(d.port), win = htons(65535);
    const uint32_t sq = htonl(seq), ak = htonl(flags & kAck ? ack : 0);
    std::memcpy(tcp, &sp, 2);
    std::memcpy(tcp + 2, &dp, 2);
    std::memcpy(tcp + 4, &sq, 4);
    std::memcpy(tcp + 8, &ak, 4);
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    std::memcpy(tcp + 14, &win, 2);
    // Checksum over the pseudo-header, header and data: tools that verify it
    // see valid packets.
    const size_t alen = v6 ? 16 : 4;
    uint32_t sum = sum16(s.addr, alen) + sum16(d.addr, alen) + IPPROTO_TCP + static_cast<uint32_t>(tcp_len);
    sum = sum16(tcp, 20, sum);
    if (!data.empty()) sum = sum16(data.data(), data.size(), sum);
    const uint16_t c = htons(fold(sum));
    std::memcpy(tcp + 16, &c, 2);
    pkt_.append(reinterpret_cast<const char*>(tcp), 20);
    pkt_.append(reinterpret_cast<const char*>(data.data()), data.size());

    pcapng::put_epb(buf_, 0, ts, {reinterpret_cast<const uint8_t*>(pkt_.data()), pkt_.size()},
                    static_cast<uint32_t>(pkt_.size()), comment);
    packets_++;
  }

  std::unique_ptr<OutFile> out_;
  std::map<std::string, Flow> flows_;
  std::string buf_, pkt_;
  uint64_t last_ts_ = 0;
  uint64_t packets_ = 0, connections_ = 0, other_end_ = 0, synthesized_ = 0;
};

}  // namespace

std::unique_ptr<Exporter> make_pcapng_exporter(std::unique_ptr<OutFile> out, const std::string& version) {
  return std::make_unique<PcapngExporter>(std::move(out), version);
}

}  // namespace clearcap
