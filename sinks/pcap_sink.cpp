#include "sinks/pcap_sink.h"

#include <fstream>

#include <net/if.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iterator>

#include <fmt/format.h>

#include "core/boot_clock.h"
#include "sinks/keylog.h"
#include "sinks/encoders/pcapng_blocks.h"
#include "sinks/packet_headers.h"

namespace clearcap {

namespace {

constexpr uint8_t kTcpFin = 0x01, kTcpRst = 0x04;
constexpr size_t kDrainBytes = 256 * 1024;

// A TLS record header of a handshake message (ContentType 22, version 3.x).
bool starts_tls_handshake(std::span<const uint8_t> p) {
  return p.size() >= 5 && p[0] == 0x16 && p[1] == 0x03 && p[2] <= 0x04;
}

}  // namespace

size_t PcapSink::KeyHash::operator()(const Key& k) const {
  uint64_t h = 1469598103934665603ull;
  for (uint8_t b : k) h = (h ^ b) * 1099511628211ull;
  return static_cast<size_t>(h);
}

Result<std::unique_ptr<PcapSink>> PcapSink::open(Options opts, std::unique_ptr<PacketFilter> filter,
                                                 EventSink* keys_also, RotatingFile::Options rotation) {
  // -w starts a new capture: an old file at the path is replaced. The file
  // holds TLS secrets (Decryption Secrets Blocks): rotation.mode (0600
  // unless --file-mode) applies, a file of another user is refused.
  if (!opts.now_boot_ns) opts.now_boot_ns = [] { return BootClock::now_boot_ns(); };
  std::unique_ptr<PcapSink> sink(new PcapSink(std::move(opts), std::move(filter), keys_also));
  rotation.replace = true;
  PcapSink* self = sink.get();
  rotation.header = [self] { return self->file_header(); };
  auto transport = std::make_unique<FileTransport>(self->opts_.path, std::move(rotation));
  if (auto r = transport->connect(); !r)
    return make_error(fmt::format("cannot create the pcapng file: {} (pass another path with -w)", r.error().message),
                      r.error().err);
  AsyncWriter::Options wopts;
  // Packets come in bursts far larger than event text: room for them while
  // the disk catches up (beyond it blocks are dropped and counted).
  wopts.queue_bytes = 64u << 20;
  sink->writer_ = std::make_unique<AsyncWriter>(self->opts_.path, std::move(transport), wopts);
  sink->writer_->start();
  return sink;
}

PcapSink::PcapSink(Options opts, std::unique_ptr<PacketFilter> filter, EventSink* keys_also)
    : opts_(std::move(opts)), filter_(std::move(filter)), keys_also_(keys_also) {
  buf_.reserve(kDrainBytes + 2 * (CC_PACKET_MAX + 256));
}

std::string PcapSink::file_header() {
  std::string h;
  pcapng::put_shb(h, opts_.userappl);
  pcapng::put_idb(h, opts_.linktype, opts_.snaplen, opts_.if_name);
  std::lock_guard lk(replay_mu_);
  for (const auto& d : replay_) h += d;
  return h;
}

void PcapSink::put_secrets(std::string_view lines) {
  const size_t at = buf_.size();
  pcapng::put_dsb(buf_, pcapng::kSecretsTls, lines);
  dsbs_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lk(replay_mu_);
  if (replay_.size() >= kMaxReplayedSecrets) {
    replay_.pop_front();
    not_replayed_.fetch_add(1, std::memory_order_relaxed);
  }
  replay_.emplace_back(buf_, at, std::string::npos);
}

PcapSink::~PcapSink() { finish(); }

void PcapSink::write(const Event& ev) {
  if (finished_) return;
  if (ev.record_type == CC_REC_PACKET) on_packet(ev);
  else if (ev.record_type == CC_REC_KEYS) on_keys(ev);
  else return;
  // Records arrive in time order (the processor's merge), so their own time
  // drives the grace period while traffic flows; flush() covers idle times.
  expire(ev.boot_ns);
  if (buf_.size() >= kDrainBytes) drain();
}

void PcapSink::flush() {
  if (finished_) return;
  expire(opts_.now_boot_ns());
  drain();
}

void PcapSink::finish() {
  if (finished_) return;
  // Keys that never came: the packets are still worth having.
  for (auto& [key, c] : conns_)
    if (c.holding) release(c, true);
  hold_order_.clear();
  drain();
  if (writer_) writer_->stop();
  finished_ = true;
}

void PcapSink::on_packet(const Event& ev) {
  if (filter_ && !filter_->matches(ev.payload, ev.wire_len)) {
    filtered_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const uint32_t flags = ev.direction == Direction::kRead ? pcapng::kEpbInbound : pcapng::kEpbOutbound;
  PacketHeaders p;
  if (!parse_packet_headers(ev.payload, opts_.linktype, p)) {
    unparsed_.fetch_add(1, std::memory_order_relaxed);
    emit_packet(ev.payload, ev.wall_ns, ev.wire_len, flags);
    return;
  }
  if (!p.tcp) {
    emit_packet(ev.payload, ev.wall_ns, ev.wire_len, flags);
    return;
  }
  auto it = conns_.find(p.conn);
  if (it == conns_.end() && starts_tls_handshake(p.payload)) {
    if (conns_.size() >= kMaxEntries) {
      // Forget connections that are only passing through; held ones stay.
      for (auto i = conns_.begin(); i != conns_.end();) i = i->second.holding ? std::next(i) : conns_.erase(i);
    }
    it = conns_.emplace(p.conn, Conn{}).first;
    it->second.holding = true;
    it->second.hold_since = ev.boot_ns;
    hold_order_.emplace_back(ev.boot_ns, p.conn);
    held_conns_.fetch_add(1, std::memory_order_relaxed);
  }
  if (it == conns_.end()) {
    emit_packet(ev.payload, ev.wall_ns, ev.wire_len, flags);
    return;
  }
  Conn& c = it->second;
  if (!c.pending_dsb.empty()) {
    // Keys reported before this connection's first packet passed the filter.
    put_secrets(c.pending_dsb);
    c.pending_dsb.clear();
    c.pending_dsb.shrink_to_fit();
    c.keyed = true;
  }
  if (c.holding) {
    // Only the handshake phase of a connection is held: a few packets. The
    // copy (and its allocation) is the price of putting its keys first.
    c.held.push_back(Held{ev.wall_ns, ev.wire_len, flags,
                          std::string(reinterpret_cast<const char*>(ev.payload.data()), ev.payload.size())});
    c.held_bytes += ev.payload.size();
    held_total_ += ev.payload.size();
    if (c.held_bytes > opts_.max_held_bytes_per_conn) release(c, true);
    return;
  }
  emit_packet(ev.payload, ev.wall_ns, ev.wire_len, flags);
  if (p.tcp_flags & (kTcpFin | kTcpRst)) conns_.erase(it);
}

void PcapSink::on_keys(const Event& ev) {
  if (keys_also_) keys_also_->write(ev);
  if (ev.record.size() < sizeof(cc_keys_event)) return;
  cc_keys_event k;
  std::memcpy(&k, ev.record.data(), sizeof(k));
  lines_.clear();
  if (format_keylog(k, lines_, cr_) == KeylogFormat::kInvalid) {
    bad_keys_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  Key directed{}, conn{};
  const bool tuple = ev.has_tuple() && (ev.family == AF_INET || ev.family == AF_INET6);
  if (tuple) {
    const size_t alen = ev.family == AF_INET ? 4 : 16;
    uint8_t local[18], peer[18];
    put_endpoint(local, ev.saddr, alen, ev.sport);
    put_endpoint(peer, ev.daddr, alen, ev.dport);
    make_keys(ev.family == AF_INET ? 4 : 6, local, peer, directed, conn);
    // What this process sends on the connection is its local -> peer.
    if (owners_.size() >= kMaxEntries) owners_.clear();
    owners_[directed] = Owner{ev.pid, std::string(ev.comm)};
  }
  if (seen_client_random(cr_)) {
    dup_keys_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (!tuple) {
    // Cannot tell which connection: written at once, better early than never.
    put_secrets(lines_);
    return;
  }
  auto it = conns_.find(conn);
  if (it == conns_.end()) {
    // No packet of this connection has passed the filter (yet): its keys go
    // into the file only if one does, not the secrets of unrelated traffic.
    if (conns_.size() >= kMaxEntries)
      for (auto i = conns_.begin(); i != conns_.end();) i = i->second.holding ? std::next(i) : conns_.erase(i);
    conns_[conn].pending_dsb = lines_;
    return;
  }
  Conn& c = it->second;
  put_secrets(lines_);
  if (c.holding) release(c, false);
  c.keyed = true;
}

void PcapSink::emit_packet(std::span<const uint8_t> bytes, uint64_t wall_ns, uint32_t wire_len, uint32_t epb_flags) {
  comment_.clear();
  PacketHeaders p;
  if (!owners_.empty() && parse_packet_headers(bytes, opts_.linktype, p) && p.tcp) {
    auto o = owners_.find(p.sender);
    if (o != owners_.end()) fmt::format_to(std::back_inserter(comment_), "pid={} comm={}", o->second.pid, o->second.comm);
  }
  pcapng::put_epb(buf_, 0, wall_ns, bytes, wire_len, comment_, epb_flags);
  packets_.fetch_add(1, std::memory_order_relaxed);
  if (buf_.size() >= kDrainBytes) drain();
}

void PcapSink::release(Conn& c, bool missed) {
  for (const Held& h : c.held)
    emit_packet({reinterpret_cast<const uint8_t*>(h.bytes.data()), h.bytes.size()}, h.wall_ns, h.wire_len,
                h.epb_flags);
  if (missed) {
    missed_conns_.fetch_add(1, std::memory_order_relaxed);
    missed_packets_.fetch_add(c.held.size(), std::memory_order_relaxed);
  }
  held_total_ -= c.held_bytes;
  c.held.clear();
  c.held.shrink_to_fit();
  c.held_bytes = 0;
  c.holding = false;
  // From now on the connection's packets are written at once, keys or not.
  c.keyed = true;
}

void PcapSink::expire(uint64_t now) {
  while (!hold_order_.empty()) {
    auto [since, key] = hold_order_.front();
    auto it = conns_.find(key);
    if (it == conns_.end() || !it->second.holding || it->second.hold_since != since) {
      hold_order_.pop_front();  // released already
      continue;
    }
    const bool over_time = now >= since && now - since >= opts_.grace_ns;
    if (!over_time && held_total_ <= opts_.max_held_bytes) break;
    release(it->second, true);
    hold_order_.pop_front();
  }
}

void PcapSink::drain() {
  // Whole blocks, handed to the writer thread (which rotates between them);
  // a full queue drops them, counted in the writer's stats.
  if (!buf_.empty() && writer_) {
    writer_->push(buf_);
    writer_->wake();
  }
  buf_.clear();
}

bool PcapSink::seen_client_random(const std::string& cr) {
  if (seen_cr_.count(cr)) return true;
  if (seen_cr_order_.size() >= kMaxEntries) {
    seen_cr_.erase(seen_cr_order_.front());
    seen_cr_order_.pop_front();
  }
  seen_cr_.insert(cr);
  seen_cr_order_.push_back(cr);
  return false;
}

PcapSink::Counters PcapSink::counters() const {
  Counters c;
  c.packets = packets_.load(std::memory_order_relaxed);
  c.filtered = filtered_.load(std::memory_order_relaxed);
  c.secrets_blocks = dsbs_.load(std::memory_order_relaxed);
  c.duplicate_keys = dup_keys_.load(std::memory_order_relaxed);
  c.unusable_keys = bad_keys_.load(std::memory_order_relaxed);
  c.held_connections = held_conns_.load(std::memory_order_relaxed);
  c.missed_connections = missed_conns_.load(std::memory_order_relaxed);
  c.missed_packets = missed_packets_.load(std::memory_order_relaxed);
  c.unparsed = unparsed_.load(std::memory_order_relaxed);
  c.secrets_not_replayed = not_replayed_.load(std::memory_order_relaxed);
  return c;
}

Result<PcapInterface> pcap_interface(const std::string& ifname) {
  PcapInterface i;
  i.ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
  if (i.ifindex == 0)
    return make_error(ErrorKind::kNotFound,
                      fmt::format("no network interface '{}' ({}); see `ip link` for the names", ifname,
                                  std::strerror(errno)),
                      errno);
  // ARPHRD_ETHER (1) and ARPHRD_LOOPBACK (772) carry an Ethernet header at
  // tc; tunnels (ARPHRD_NONE ...) start at the IP header.
  int arphrd = 0;
  std::ifstream(fmt::format("/sys/class/net/{}/type", ifname)) >> arphrd;
  i.loopback = arphrd == 772;
  i.raw_ip = arphrd != 1 && arphrd != 772;
  i.linktype = i.raw_ip ? pcapng::kLinktypeRaw : pcapng::kLinktypeEthernet;
  return i;
}

void PcapSink::collect_stats(std::vector<SinkStats>& out) const {
  SinkStats st = writer_->stats();
  st.name = opts_.path;
  out.push_back(st);
}

}  // namespace clearcap
