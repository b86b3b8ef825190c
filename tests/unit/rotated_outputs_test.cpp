// Rotation of the file outputs other than event files: the -w capture file
// (every rotated piece a complete capture file that passes zstd -t, records
// neither lost nor duplicated) and the key log (lines whole, mode 0600).
// The RotatingFile clock is injected, so rotated names are known.
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "sinks/capture_file/capture_reader.h"
#include "sinks/capture_file/capture_writer.h"
#include "sinks/keylog.h"
#include "sinks/transports/rotating_file.h"
#include "test_record.h"

namespace clearcap {
namespace {

using test::TestRecord;

std::string fresh_dir(const std::string& name) {
  std::string d = ::testing::TempDir() + "clearcap_rot_" + std::to_string(getpid()) + "_" + name;
  std::system(("rm -rf '" + d + "' && mkdir -p '" + d + "'").c_str());
  return d;
}

// 2026-11-22 19:35:44 UTC, then one second more at each call.
RotatingFile::Clock stepping_clock() {
  auto t = std::make_shared<std::chrono::system_clock::time_point>(std::chrono::system_clock::from_time_t(1795462544));
  return [t] { return *t += std::chrono::seconds(1); };
}

std::vector<std::string> pieces(const std::string& path) {
  auto files = RotatingFile::rotated_files(path);  // oldest first
  if (::access(path.c_str(), F_OK) == 0) files.push_back(path);
  return files;
}

TEST(RotatedCaptureFile, SizeRotationGivesIndependentlyReadablePieces) {
  const std::string dir = fresh_dir("ccap");
  const std::string path = dir + "/cap.ccap";
  RotatingFile::Options rot;
  rot.max_bytes = 48 * 1024;
  rot.clock = stepping_clock();
  CaptureFileSink::Options o;
  o.batch_bytes = 8 * 1024;
  o.buffers = 1024;  // faster than any disk: no drops wanted here
  std::vector<TestRecord> recs(600);
  std::mt19937 rng(11);
  {
    auto sink = CaptureFileSink::open_rotating(path, rot, o);
    ASSERT_TRUE(sink) << sink.error().message;
    for (size_t i = 0; i < recs.size(); ++i) {
      auto& r = recs[i];
      r.ipv4("10.0.0.1", 40000, "10.0.0.2", 443);
      r.raw.conn_id = 1;
      r.raw.seq = i;
      r.raw.ts_ns = 5'000'000'000ull + i * 1000;
      // Little redundancy: the compressed frames stay close to batch size.
      std::string p(700, 'x');
      for (auto& c : p) c = static_cast<char>('!' + rng() % 90);
      r.with_payload("rec" + std::to_string(i) + ":" + p);
      (*sink)->write(r.event(r.raw.ts_ns + 1'700'000'000'000'000'000ull));
    }
    (*sink)->finish();
    std::vector<SinkStats> st;
    (*sink)->collect_stats(st);
    EXPECT_EQ(st.at(0).dropped_events, 0u);
    EXPECT_EQ(st.at(0).write_errors, 0u);
  }
  const auto files = pieces(path);
  ASSERT_GE(files.size(), 4u);
  // Names from the injected clock: cap.YYYYmmdd-HHMMSS.ccap next to cap.ccap.
  const std::regex name(".*/cap\\.2026112[0-9]-[0-9]{6}(-[0-9]+)?\\.ccap");
  std::vector<uint64_t> seqs;
  for (const auto& f : files) {
    if (f != path) {
      EXPECT_TRUE(std::regex_match(f, name)) << f;
    }
    struct stat stt {};
    ASSERT_EQ(::stat(f.c_str(), &stt), 0);
    EXPECT_LE(static_cast<uint64_t>(stt.st_size), rot.max_bytes) << f;
    EXPECT_EQ(std::system(("zstd -q -t '" + f + "'").c_str()), 0) << f;
    auto r = CaptureReader::open(f);
    ASSERT_TRUE(r) << f << ": " << r.error().message;
    EXPECT_EQ((*r)->header().abi_version, CC_ABI_VERSION);
    Event ev;
    size_t n = 0;
    while ((*r)->next(ev)) {
      seqs.push_back(ev.seq);
      std::string_view p(reinterpret_cast<const char*>(ev.payload.data()), ev.payload.size());
      EXPECT_EQ(p, recs[ev.seq].payload);
      ++n;
    }
    EXPECT_GT(n, 0u) << f;
    EXPECT_TRUE((*r)->problems().empty()) << f;
  }
  // Every record exactly once, in order across the pieces.
  ASSERT_EQ(seqs.size(), recs.size());
  for (size_t i = 0; i < seqs.size(); ++i) EXPECT_EQ(seqs[i], i);
  std::system(("rm -rf '" + dir + "'").c_str());
}

TEST(RotatedCaptureFile, RetentionAndReopenAfterMove) {
  const std::string dir = fresh_dir("ccapkeep");
  const std::string path = dir + "/cap.ccap";
  RotatingFile::Options rot;
  rot.max_bytes = 16 * 1024;
  rot.keep = 2;
  rot.clock = stepping_clock();
  CaptureFileSink::Options o;
  o.batch_bytes = 4 * 1024;
  o.buffers = 1024;
  auto sink = CaptureFileSink::open_rotating(path, rot, o);
  ASSERT_TRUE(sink) << sink.error().message;
  std::vector<TestRecord> recs(300);
  std::mt19937 rng(12);
  auto write_some = [&](size_t from, size_t to) {
    for (size_t i = from; i < to; ++i) {
      auto& r = recs[i];
      r.ipv4("10.0.0.1", 40000, "10.0.0.2", 443);
      r.raw.seq = i;
      r.raw.ts_ns = 5'000'000'000ull + i;
      std::string p(500, 'x');
      for (auto& c : p) c = static_cast<char>('!' + rng() % 90);
      r.with_payload(p);
      (*sink)->write(r.event(r.raw.ts_ns + 1'700'000'000'000'000'000ull));
    }
  };
  write_some(0, 200);
  // logrotate (create mode) moves the file away, then SIGHUP.
  (*sink)->flush();
  // The writer may be between its own rename and re-create of the path
  // (a rotation in progress): like logrotate, try again.
  int moved = -1;
  for (int i = 0; i < 1000 && moved != 0; ++i) {
    moved = std::rename(path.c_str(), (dir + "/moved.ccap").c_str());
    if (moved != 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ(moved, 0);
  (*sink)->request_reopen();
  write_some(200, 300);
  (*sink)->finish();
  EXPECT_LE(RotatingFile::rotated_files(path).size(), 2u);
  for (const auto& f : pieces(path)) EXPECT_EQ(std::system(("zstd -q -t '" + f + "'").c_str()), 0) << f;
  // The reopened file starts with its own header.
  auto r = CaptureReader::open(path);
  ASSERT_TRUE(r) << r.error().message;
  std::system(("rm -rf '" + dir + "'").c_str());
}

std::vector<uint8_t> keys_record(uint8_t id) {
  cc_keys_event k{};
  k.hdr.type = CC_REC_KEYS;
  k.hdr.hdr_len = sizeof(k);
  k.present = (1u << CC_KEY_CLIENT_RANDOM) | (1u << CC_KEY_CLIENT_APP_TRAFFIC) | (1u << CC_KEY_SERVER_APP_TRAFFIC) |
              (1u << CC_KEY_CLIENT_HS_TRAFFIC) | (1u << CC_KEY_SERVER_HS_TRAFFIC) | (1u << CC_KEY_EXPORTER) |
              (1u << CC_KEY_VERSION);
  std::memset(k.items[CC_KEY_CLIENT_RANDOM], id, 32);
  for (int item : {CC_KEY_CLIENT_APP_TRAFFIC, CC_KEY_SERVER_APP_TRAFFIC, CC_KEY_CLIENT_HS_TRAFFIC,
                   CC_KEY_SERVER_HS_TRAFFIC, CC_KEY_EXPORTER})
    std::memset(k.items[item], 0x40 + item, 32);
  int32_t v = 0x0304;
  std::memcpy(k.items[CC_KEY_VERSION], &v, 4);
  return {reinterpret_cast<const uint8_t*>(&k), reinterpret_cast<const uint8_t*>(&k) + sizeof(k)};
}

// Keys records of handshakes 1..n, each with its own client random.
void write_handshakes(KeylogSink& sink, int n) {
  for (int i = 1; i <= n; ++i) {
    auto rec = keys_record(static_cast<uint8_t>(i));
    Event ev;
    ev.record_type = CC_REC_KEYS;
    ev.record = rec;
    sink.write(ev);
  }
}

TEST(RotatedKeylog, LinesStayWholeAndFilesPrivate) {
  const std::string dir = fresh_dir("keylog");
  const std::string path = dir + "/keys.log";
  RotatingFile::Options rot;
  rot.max_bytes = 2000;  // a TLS 1.3 handshake is 5 lines, ~700 bytes
  rot.keep = 0;
  rot.clock = stepping_clock();
  // rot.mode: the default (0600) applies to every rotated piece
  {
    auto sink = KeylogSink::open(path, rot);
    ASSERT_TRUE(sink) << sink.error().message;
    write_handshakes(**sink, 30);
    (*sink)->finish();
    EXPECT_EQ((*sink)->handshakes(), 30u);
    std::vector<SinkStats> st;
    (*sink)->collect_stats(st);
    EXPECT_EQ(st.at(0).dropped_events, 0u);
  }
  const auto files = pieces(path);
  ASSERT_GE(files.size(), 5u);
  const std::regex line("(CLIENT_HANDSHAKE_TRAFFIC_SECRET|SERVER_HANDSHAKE_TRAFFIC_SECRET|CLIENT_TRAFFIC_SECRET_0|"
                        "SERVER_TRAFFIC_SECRET_0|EXPORTER_SECRET) [0-9a-f]{64} [0-9a-f]{64}");
  std::set<std::string> randoms;
  size_t lines = 0;
  for (const auto& f : files) {
    struct stat st {};
    ASSERT_EQ(::stat(f.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << f;
    std::ifstream in(f);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    ASSERT_FALSE(text.empty()) << f;
    EXPECT_EQ(text.back(), '\n') << f;  // no line cut at the end of a piece
    std::istringstream is(text);
    std::string l;
    size_t in_file = 0;
    while (std::getline(is, l)) {
      EXPECT_TRUE(std::regex_match(l, line)) << f << ": " << l;
      randoms.insert(l.substr(l.find(' ') + 1, 64));
      ++lines;
      ++in_file;
    }
    EXPECT_EQ(in_file % 5, 0u) << f;  // a handshake's lines stay in one file
  }
  EXPECT_EQ(lines, 30u * 5);
  EXPECT_EQ(randoms.size(), 30u);
  std::system(("rm -rf '" + dir + "'").c_str());
}

// A disk that is full for good (RLIMIT_FSIZE stands in for ENOSPC): the
// summary's "handshakes written" is what the file holds, not what was
// queued, and the file holds only whole lines.
TEST(RotatedKeylog, HandshakesWrittenCountsOnlyWhatIsInTheFile) {
  const std::string dir = fresh_dir("keylog-full");
  const std::string path = dir + "/keys.log";
  rlimit old{};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  auto old_handler = signal(SIGXFSZ, SIG_IGN);
  {
    auto sink = KeylogSink::open(path, RotatingFile::Options{});
    ASSERT_TRUE(sink) << sink.error().message;
    rlimit small = old;
    small.rlim_cur = 2000;  // room for a couple of handshakes (~800 bytes each), not ten
    ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
    write_handshakes(**sink, 10);
    (*sink)->finish();
    ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &old), 0);
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    const std::regex whole("[A-Z_0-9]+ ([0-9a-f]{64}) [0-9a-f]{64}");
    std::set<std::string> randoms;
    std::istringstream lines(text);
    for (std::string l; std::getline(lines, l);) {
      std::smatch m;
      ASSERT_TRUE(std::regex_match(l, m, whole)) << "torn line: " << l;
      randoms.insert(m[1]);
    }
    EXPECT_TRUE(text.empty() || text.back() == '\n');
    EXPECT_GE(randoms.size(), 1u);
    EXPECT_LT(randoms.size(), 10u);
    EXPECT_EQ((*sink)->handshakes(), randoms.size()) << "counted what is in the file, not what was queued";
    std::vector<SinkStats> st;
    (*sink)->collect_stats(st);
    EXPECT_EQ(st.at(0).dropped_events, 10u - randoms.size()) << "the rest is counted as not delivered";
  }
  signal(SIGXFSZ, old_handler);
}

}  // namespace
}  // namespace clearcap
