// -m pcap output: captured packets as a pcapng file that Wireshark decrypts
// on its own, with the TLS keys in Decryption Secrets Blocks (DSB).
//
// Wireshark (measured with tshark 4.0) ignores a DSB that comes after the
// connection's ServerHello (TLS 1.3) or its first encrypted record (TLS 1.2).
// So a TCP connection's packets are held from its first TLS handshake
// record until its keys have been written as a DSB; then they are written.
// A connection whose keys do not come within the grace period (3 s) is
// written without them and counted. Packets of other traffic are written at
// once. The file is therefore in time order per connection, not overall.
//
// Each packet whose sending socket's process is known (from the keys
// records: the process, its local and peer address) carries a comment
// "pid=N comm=X". The file holds secrets: it is created with mode 0600.
//
// The blocks are written by an AsyncWriter (its own thread) to a
// RotatingFile: --eventroratesize/--eventroratetime/--rotate-keep and SIGHUP
// apply, and rotation never blocks the processor. Every new file starts with
// SHB + IDB and the DSBs of the keys written so far (at most
// kMaxReplayedSecrets of them, the newest; the rest are counted), so a
// connection that spans a rotation stays decryptable.
//
// Thread: write/flush/finish on the processor thread (and the owner after
// the processor has ended); the counters, collect_stats and request_reopen
// from any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/result.h"
#include "sinks/transports/async_writer.h"
#include "sinks/event_sink.h"
#include "sinks/packet_filter.h"
#include "sinks/packet_headers.h"
#include "sinks/transports/rotating_file.h"

namespace clearcap {

// The capture interface of -m pcap, checked before any BPF work.
struct PcapInterface {
  int ifindex = 0;
  bool loopback = false;  // every packet passes egress and ingress: one hook is enough
  bool raw_ip = false;    // no link-layer header at tc (tunnels): LINKTYPE_RAW
  uint16_t linktype = 1;  // pcapng link type
};
Result<PcapInterface> pcap_interface(const std::string& ifname);

class PcapSink : public EventSink {
 public:
  struct Options {
    std::string path = "save.pcapng";
    std::string if_name;                   // the IDB's if_name
    uint16_t linktype = 1;                 // LINKTYPE_ETHERNET (also lo) or LINKTYPE_RAW
    uint32_t snaplen = 65535;
    uint64_t grace_ns = 3'000'000'000ull;  // hold a TLS connection this long for its keys
    size_t max_held_bytes_per_conn = 4u << 20;
    size_t max_held_bytes = 256u << 20;    // all connections; the oldest is written beyond
    std::string userappl = "clearcap";
    // Boot-time clock (CLOCK_BOOTTIME ns) for the grace period when no
    // packet arrives; tests inject their own.
    std::function<uint64_t()> now_boot_ns;
  };

  // `filter` may be null (everything matches); `keys_also` (may be null)
  // receives every keys record too (the -k key log file).
  static Result<std::unique_ptr<PcapSink>> open(Options opts, std::unique_ptr<PacketFilter> filter,
                                                EventSink* keys_also, RotatingFile::Options rotation = {});
  // SIGHUP: the writer thread reopens the file.
  void request_reopen() { writer_->request_reopen(); }
  // The process ends without waiting: see AsyncWriter::abandon().
  void abandon() { writer_->abandon(); }
  static constexpr size_t kMaxReplayedSecrets = 4096;
  ~PcapSink() override;

  void write(const Event& ev) override;
  void flush() override;
  // Writes what is still held (counted as missed) and closes the file.
  void finish();
  void collect_stats(std::vector<SinkStats>& out) const override;

  struct Counters {
    uint64_t packets = 0;             // packets written
    uint64_t filtered = 0;            // packets the filter expression left out
    uint64_t secrets_blocks = 0;      // DSBs written (one per handshake)
    uint64_t duplicate_keys = 0;      // keys records of a handshake already written (other end)
    uint64_t unusable_keys = 0;       // keys records without a client random
    uint64_t held_connections = 0;    // TLS connections held for their keys
    uint64_t missed_connections = 0;  // ... written without keys (grace period over, limit, or exit)
    uint64_t missed_packets = 0;      // packets of those connections
    uint64_t unparsed = 0;            // packets that are not Ethernet/IP (written, never held)
    uint64_t secrets_not_replayed = 0;  // DSBs beyond kMaxReplayedSecrets, left out of new files' starts
  };
  Counters counters() const;
  const std::string& path() const { return opts_.path; }

 private:
  using Key = ConnKey;
  struct KeyHash {
    size_t operator()(const Key& k) const;
  };
  struct Held {
    uint64_t wall_ns;
    uint32_t wire_len;
    uint32_t epb_flags;
    std::string bytes;
  };
  struct Conn {
    bool keyed = false;        // the DSB is written: packets go out at once
    bool holding = false;
    uint64_t hold_since = 0;   // boot ns of the first held packet
    size_t held_bytes = 0;
    std::vector<Held> held;
    std::string pending_dsb;   // keys known before any packet of the connection passed the filter
  };
  struct Owner {
    uint32_t pid;
    std::string comm;
  };

  PcapSink(Options opts, std::unique_ptr<PacketFilter> filter, EventSink* keys_also);
  // The start of every new file (writer thread): SHB, IDB, known DSBs.
  std::string file_header();
  // Processor thread: one DSB into the file and into what new files replay.
  void put_secrets(std::string_view lines);
  void on_packet(const Event& ev);
  void on_keys(const Event& ev);
  void emit_packet(std::span<const uint8_t> bytes, uint64_t wall_ns, uint32_t wire_len, uint32_t epb_flags);
  void release(Conn& c, bool missed);
  void expire(uint64_t now_boot_ns);
  void drain();
  bool seen_client_random(const std::string& cr);

  Options opts_;
  std::unique_ptr<AsyncWriter> writer_;
  std::mutex replay_mu_;               // guards replay_ (once per handshake, and at rotation)
  std::deque<std::string> replay_;     // DSB blocks new files start with, oldest first
  std::unique_ptr<PacketFilter> filter_;
  EventSink* keys_also_;
  std::string buf_;
  std::string comment_;
  std::string lines_, cr_;
  std::unordered_map<Key, Conn, KeyHash> conns_;
  std::deque<std::pair<uint64_t, Key>> hold_order_;  // (hold_since, connection), oldest first
  size_t held_total_ = 0;
  std::unordered_map<Key, Owner, KeyHash> owners_;  // directed tuple -> sending process
  static constexpr size_t kMaxEntries = 65536;      // per table; cleared of finished entries beyond
  std::unordered_set<std::string> seen_cr_;
  std::deque<std::string> seen_cr_order_;
  bool finished_ = false;
  std::atomic<uint64_t> packets_{0}, filtered_{0}, dsbs_{0}, dup_keys_{0}, bad_keys_{0}, held_conns_{0},
      missed_conns_{0}, missed_packets_{0}, unparsed_{0}, not_replayed_{0};
};

}  // namespace clearcap
