// PcapSink: TLS connections are held until their keys are written as a DSB;
// the grace period (injected clock) writes them without keys, counted.
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "sinks/pcap_sink.h"

namespace {

using namespace clearcap;

struct Block {
  uint32_t type;
  std::string body;
};

std::vector<Block> read_blocks(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string raw = ss.str();
  std::vector<Block> out;
  size_t off = 0;
  while (off + 12 <= raw.size()) {
    uint32_t type, len;
    std::memcpy(&type, raw.data() + off, 4);
    std::memcpy(&len, raw.data() + off + 4, 4);
    EXPECT_TRUE(len >= 12 && len % 4 == 0 && off + len <= raw.size());
    if (len < 12 || off + len > raw.size()) break;
    out.push_back({type, raw.substr(off + 8, len - 12)});
    off += len;
  }
  EXPECT_EQ(off, raw.size());
  return out;
}

// Ethernet + IPv4 + TCP, 127.0.0.1 both ends.
std::string packet(uint16_t sport, uint16_t dport, uint8_t flags, const std::string& payload) {
  std::string p(14, '\0');
  p[12] = 0x08;
  uint8_t ip[20] = {0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1};
  const uint16_t total = static_cast<uint16_t>(40 + payload.size());
  ip[2] = static_cast<uint8_t>(total >> 8);
  ip[3] = static_cast<uint8_t>(total);
  p.append(reinterpret_cast<const char*>(ip), 20);
  uint8_t tcp[20] = {static_cast<uint8_t>(sport >> 8), static_cast<uint8_t>(sport), static_cast<uint8_t>(dport >> 8),
                     static_cast<uint8_t>(dport), 0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags};
  p.append(reinterpret_cast<const char*>(tcp), 20);
  return p + payload;
}

const std::string kClientHello("\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00", 10);

class PcapSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/clearcap-pcapsink-XXXXXX";
    int fd = mkstemp(tmpl);
    ASSERT_GE(fd, 0);
    close(fd);
    path_ = tmpl;
  }
  void TearDown() override { std::remove(path_.c_str()); }

  std::unique_ptr<PcapSink> open_sink(std::unique_ptr<PacketFilter> filter = nullptr,
                                      RotatingFile::Options rotation = {}) {
    PcapSink::Options o;
    o.path = path_;
    o.if_name = "lo";
    o.now_boot_ns = [this] { return now_; };
    auto s = PcapSink::open(o, std::move(filter), nullptr, std::move(rotation));
    EXPECT_TRUE(s.has_value());
    return std::move(*s);
  }

  void send(PcapSink& s, const std::string& pkt, uint64_t boot_ns) {
    Event ev;
    ev.record_type = CC_REC_PACKET;
    ev.boot_ns = boot_ns;
    ev.wall_ns = boot_ns + 1'000'000'000'000ull;
    ev.payload = {reinterpret_cast<const uint8_t*>(pkt.data()), pkt.size()};
    ev.wire_len = static_cast<uint32_t>(pkt.size());
    s.write(ev);
  }

  // TLS 1.2 keys of the connection local 127.0.0.1:lport -> peer :rport.
  void keys(PcapSink& s, uint16_t lport, uint16_t rport, uint64_t boot_ns, uint32_t pid, const char* comm) {
    cc_keys_event k{};
    k.hdr.type = CC_REC_KEYS;
    k.hdr.hdr_len = sizeof(k);
    k.present = (1u << CC_KEY_CLIENT_RANDOM) | (1u << CC_KEY_MASTER) | (1u << CC_KEY_VERSION);
    std::memset(k.items[CC_KEY_CLIENT_RANDOM], 0xab, 32);
    std::memset(k.items[CC_KEY_MASTER], 0xcd, 48);
    int32_t v = 0x0303;
    std::memcpy(k.items[CC_KEY_VERSION], &v, 4);
    const uint8_t lo[4] = {127, 0, 0, 1};
    std::memcpy(k.laddr, lo, 4);
    std::memcpy(k.raddr, lo, 4);
    key_buf_.assign(reinterpret_cast<const uint8_t*>(&k), reinterpret_cast<const uint8_t*>(&k) + sizeof(k));
    Event ev;
    ev.record_type = CC_REC_KEYS;
    ev.boot_ns = boot_ns;
    ev.pid = pid;
    ev.comm = comm;
    ev.family = AF_INET;
    ev.flags = CC_FLAG_HAS_TUPLE;
    ev.sport = lport;
    ev.dport = rport;
    ev.saddr = key_buf_.data() + offsetof(cc_keys_event, laddr);
    ev.daddr = key_buf_.data() + offsetof(cc_keys_event, raddr);
    ev.record = key_buf_;
    s.write(ev);
  }

  std::string path_;
  uint64_t now_ = 0;
  std::vector<uint8_t> key_buf_;
};

bool has_comment(const Block& b, const std::string& c) { return b.body.find(c) != std::string::npos; }

TEST_F(PcapSinkTest, HoldsTlsConnectionUntilItsKeysAreWrittenFirst) {
  auto s = open_sink();
  send(*s, packet(40000, 443, 0x02, ""), 1'000);         // SYN: written at once
  send(*s, packet(40000, 443, 0x18, kClientHello), 2'000); // held
  send(*s, packet(443, 40000, 0x18, "\x16\x03\x03server"), 3'000);
  send(*s, packet(5555, 6666, 0x18, "other"), 4'000);    // another connection, not TLS: at once
  EXPECT_EQ(s->counters().packets, 2u);
  keys(*s, 40000, 443, 5'000, 42, "curl");
  send(*s, packet(40000, 443, 0x18, "\x17\x03\x03appdata"), 6'000);  // keyed: at once
  s->finish();
  auto c = s->counters();
  EXPECT_EQ(c.packets, 5u);
  EXPECT_EQ(c.secrets_blocks, 1u);
  EXPECT_EQ(c.held_connections, 1u);
  EXPECT_EQ(c.missed_connections, 0u);

  auto b = read_blocks(path_);
  ASSERT_EQ(b.size(), 8u);
  EXPECT_EQ(b[0].type, 0x0A0D0D0Au);
  EXPECT_EQ(b[1].type, 1u);
  EXPECT_EQ(b[2].type, 6u);  // SYN
  EXPECT_EQ(b[3].type, 6u);  // other connection
  ASSERT_EQ(b[4].type, 0x0Au);  // the DSB before the held handshake
  EXPECT_EQ(b[4].body.substr(8, 14), "CLIENT_RANDOM ");
  EXPECT_EQ(b[5].type, 6u);
  EXPECT_TRUE(has_comment(b[5], "pid=42 comm=curl"));   // sent by the keys' process
  EXPECT_FALSE(has_comment(b[6], "pid=42"));            // sent by the peer: unknown
  EXPECT_TRUE(has_comment(b[7], "pid=42 comm=curl"));
}

TEST_F(PcapSinkTest, GracePeriodWritesHeldPacketsWithoutKeysAndCountsTheMiss) {
  auto s = open_sink();
  const uint64_t t0 = 10'000'000'000ull;
  send(*s, packet(40001, 443, 0x18, kClientHello), t0);
  now_ = t0 + 2'999'999'999ull;
  s->flush();
  EXPECT_EQ(s->counters().packets, 0u) << "still within the 3 s grace period";
  now_ = t0 + 3'000'000'000ull;
  s->flush();
  auto c = s->counters();
  EXPECT_EQ(c.packets, 1u);
  EXPECT_EQ(c.missed_connections, 1u);
  EXPECT_EQ(c.missed_packets, 1u);
  // Given up: later packets of the connection are not held again.
  send(*s, packet(443, 40001, 0x18, "\x16\x03\x03server"), t0 + 3'100'000'000ull);
  EXPECT_EQ(s->counters().packets, 2u);
  s->finish();
  EXPECT_EQ(s->counters().secrets_blocks, 0u);
}

TEST_F(PcapSinkTest, PacketTimeAlsoDrivesTheGracePeriod) {
  auto s = open_sink();
  send(*s, packet(40002, 443, 0x18, kClientHello), 1'000'000'000ull);
  send(*s, packet(7, 8, 0x10, ""), 4'000'000'001ull);  // later traffic, clock never read
  EXPECT_EQ(s->counters().missed_connections, 1u);
  s->finish();
}

TEST_F(PcapSinkTest, KeysBeforeTheFirstPacketAreWrittenBeforeIt) {
  auto s = open_sink();
  keys(*s, 40003, 443, 1'000, 7, "nginx");
  EXPECT_EQ(s->counters().secrets_blocks, 0u) << "no packet of it passed yet";
  send(*s, packet(40003, 443, 0x18, kClientHello), 2'000);
  s->finish();
  auto b = read_blocks(path_);
  ASSERT_EQ(b.size(), 4u);
  EXPECT_EQ(b[2].type, 0x0Au);
  EXPECT_EQ(b[3].type, 6u);
  EXPECT_EQ(s->counters().missed_connections, 0u);
}

TEST_F(PcapSinkTest, FilterLeavesPacketsOutAndCountsThem) {
  auto f = PacketFilter::compile("tcp port 443", PacketFilter::Link::kEthernet, 65535);
  ASSERT_TRUE(f.has_value());
  auto s = open_sink(std::move(*f));
  send(*s, packet(40004, 443, 0x02, ""), 1'000);
  send(*s, packet(40004, 8080, 0x02, ""), 2'000);
  s->finish();
  EXPECT_EQ(s->counters().packets, 1u);
  EXPECT_EQ(s->counters().filtered, 1u);
  auto bad = PacketFilter::compile("tcp port nonsense", PacketFilter::Link::kEthernet, 65535);
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("unknown port"), std::string::npos) << bad.error().message;
}

TEST_F(PcapSinkTest, RotatedFilesEachStartWithHeaderAndKnownSecrets) {
  RotatingFile::Options rot;
  rot.max_bytes = 4096;
  auto t = std::make_shared<std::chrono::system_clock::time_point>(std::chrono::system_clock::from_time_t(1795462544));
  rot.clock = [t] { return *t += std::chrono::seconds(1); };
  auto s = open_sink(nullptr, rot);
  keys(*s, 40010, 443, 1'000, 7, "curl");
  send(*s, packet(40010, 443, 0x18, kClientHello), 2'000);
  for (int i = 0; i < 20; ++i) {
    send(*s, packet(40010, 443, 0x18, "\x17\x03\x03" + std::string(1000, 'a')), 3'000 + i);
    s->flush();  // hands the blocks to the writer: rotation falls between them
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  s->finish();
  EXPECT_EQ(s->counters().packets, 21u);
  EXPECT_EQ(s->counters().secrets_blocks, 1u);
  auto files = RotatingFile::rotated_files(path_);
  ASSERT_GE(files.size(), 2u);
  files.push_back(path_);
  size_t packets = 0;
  for (const auto& f : files) {
    struct stat st;
    ASSERT_EQ(stat(f.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << f;
    auto b = read_blocks(f);
    ASSERT_GE(b.size(), 3u) << f;
    EXPECT_EQ(b[0].type, 0x0A0D0D0Au) << f;
    EXPECT_EQ(b[1].type, 1u) << f;
    EXPECT_EQ(b[2].type, 0x0Au) << f << ": the keys seen so far start every file";
    for (const auto& x : b) packets += x.type == 6u;
    if (f != path_) std::remove(f.c_str());
  }
  EXPECT_EQ(packets, 21u);
}

TEST_F(PcapSinkTest, FileIsPrivate) {
  auto s = open_sink();
  s->finish();
  struct stat st;
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

}  // namespace
