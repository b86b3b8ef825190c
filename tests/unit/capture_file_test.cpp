// Capture files: writer -> reader round trip, zstd -t, crash cuts at many
// offsets, corrupt frames, drop-not-block when the writer falls behind, and
// the pcapng/HAR exports judged by tshark and a strict JSON parser.
#include <gtest/gtest.h>
#include <simdjson.h>
#include <unistd.h>
#include <zstd.h>

#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>

#include "sinks/capture_file/capture_reader.h"
#include "sinks/capture_file/capture_writer.h"
#include "sinks/encoders/exporters.h"
#include "test_record.h"

namespace clearcap {
std::string_view as_chars_view(const Event& ev);
namespace {

using test::TestRecord;

std::string tmp_path(const std::string& name) {
  return ::testing::TempDir() + "clearcap_" + std::to_string(getpid()) + "_" + name;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void spit(const std::string& path, std::string_view bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Records with varied sizes, both directions, two clock offsets (a drift).
std::vector<TestRecord> make_records(size_t n, uint64_t* offsets) {
  std::mt19937 rng(7);
  std::vector<TestRecord> recs(n);
  for (size_t i = 0; i < n; ++i) {
    auto& r = recs[i];
    r.ipv4("10.0.0.1", 40000, "10.0.0.2", 443);
    r.raw.conn_id = 1 + i % 3;
    r.raw.direction = i % 2 ? CC_DIR_READ : CC_DIR_WRITE;
    r.raw.seq = i * 1000;
    r.raw.ts_ns = 5'000'000'000ull + i * 1'000'000;
    r.raw.pid = 100 + static_cast<uint32_t>(i % 5);
    std::string p(rng() % 3000, 'x');
    for (auto& c : p) c = static_cast<char>('a' + rng() % 26);
    r.with_payload("rec" + std::to_string(i) + ":" + p);
    offsets[i] = i < n / 2 ? 1'700'000'000'000'000'000ull : 1'700'000'000'000'000'777ull;
  }
  return recs;
}

struct Written {
  std::string path;
  std::vector<TestRecord> recs;
  std::vector<uint64_t> offsets;
};

Written write_file(const std::string& name, size_t n, size_t batch_bytes = 8 * 1024) {
  Written w{tmp_path(name), {}, std::vector<uint64_t>(n)};
  w.recs = make_records(n, w.offsets.data());
  CaptureFileSink::Options o;
  o.batch_bytes = batch_bytes;
  o.buffers = 1024;  // the test writes faster than any disk: no drops wanted here
  auto sink = CaptureFileSink::open(w.path, o);
  EXPECT_TRUE(sink) << sink.error().message;
  for (size_t i = 0; i < n; ++i) {
    Event ev = w.recs[i].event(w.recs[i].raw.ts_ns + w.offsets[i]);
    (*sink)->write(ev);
  }
  (*sink)->finish();
  std::vector<SinkStats> st;
  (*sink)->collect_stats(st);
  EXPECT_EQ(st.at(0).dropped_events, 0u);
  EXPECT_EQ(st.at(0).write_errors, 0u);
  return w;
}

void expect_same(TestRecord& want, uint64_t wall, const Event& got) {
  Event w = want.event(wall);
  EXPECT_EQ(got.wall_ns, w.wall_ns);
  EXPECT_EQ(got.boot_ns, w.boot_ns);
  EXPECT_EQ(got.pid, w.pid);
  EXPECT_EQ(got.tid, w.tid);
  EXPECT_EQ(got.fd, w.fd);
  EXPECT_EQ(got.conn_id, w.conn_id);
  EXPECT_EQ(got.seq, w.seq);
  EXPECT_EQ(got.direction, w.direction);
  EXPECT_EQ(got.flags, w.flags);
  EXPECT_EQ(got.sport, w.sport);
  EXPECT_EQ(got.dport, w.dport);
  EXPECT_EQ(0, std::memcmp(got.saddr, w.saddr, 16));
  EXPECT_EQ(0, std::memcmp(got.daddr, w.daddr, 16));
  EXPECT_EQ(got.comm, w.comm);
  EXPECT_EQ(as_chars_view(got), std::string_view(want.payload));
}

// Frame boundaries: the file offset after each batch and the records up to it.
std::vector<std::pair<uint64_t, uint64_t>> frame_ends(const std::string& bytes) {
  std::vector<std::pair<uint64_t, uint64_t>> ends;
  auto u32 = [&](size_t at) {
    uint32_t v;
    std::memcpy(&v, bytes.data() + at, 4);
    return v;
  };
  size_t pos = 8 + u32(4);
  uint64_t recs = 0;
  while (pos < bytes.size()) {
    EXPECT_EQ(u32(pos), capfile::kBatchMagic);
    auto info = capfile::parse_batch_info(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()) + pos + 8, capfile::kBatchInfoSize));
    EXPECT_TRUE(info);
    pos += 8 + capfile::kBatchInfoSize + info->compressed_bytes;
    recs += info->records;
    ends.emplace_back(pos, recs);
  }
  return ends;
}

}  // namespace

std::string_view as_chars_view(const Event& ev) {
  return {reinterpret_cast<const char*>(ev.payload.data()), ev.payload.size()};
}

namespace {

TEST(CaptureFile, RoundTripKeepsEveryFieldAndTimestamp) {
  auto w = write_file("roundtrip.ccap", 400);
  auto r = CaptureReader::open(w.path);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ((*r)->header().abi_version, CC_ABI_VERSION);
  EXPECT_FALSE((*r)->header().kernel.empty());
  Event ev;
  size_t i = 0;
  while ((*r)->next(ev)) {
    ASSERT_LT(i, w.recs.size());
    expect_same(w.recs[i], w.recs[i].raw.ts_ns + w.offsets[i], ev);
    ++i;
  }
  EXPECT_EQ(i, w.recs.size());
  EXPECT_TRUE((*r)->problems().empty());
  EXPECT_GT((*r)->frames(), 10u);  // several batches, and a new one at the clock drift
  std::remove(w.path.c_str());
}

TEST(CaptureFile, ClosedFilePassesZstdTest) {
  auto w = write_file("zstdt.ccap", 200);
  EXPECT_EQ(std::system(("zstd -q -t " + w.path).c_str()), 0);
  // And plain zstd decompresses it to the concatenated batches.
  EXPECT_EQ(std::system(("zstd -q -d -c " + w.path + " > /dev/null").c_str()), 0);
  std::remove(w.path.c_str());
}

TEST(CaptureFile, CutAtAnyOffsetReadsUpToLastCompleteFrame) {
  auto w = write_file("cut.ccap", 120, 4096);
  const std::string full = slurp(w.path);
  const auto ends = frame_ends(full);
  ASSERT_GT(ends.size(), 5u);
  const std::string cut_path = tmp_path("cut_part.ccap");
  const uint64_t header_end = 8 + [&] { uint32_t v; std::memcpy(&v, full.data() + 4, 4); return v; }();
  for (size_t cut = header_end; cut <= full.size(); cut += 97) {
    spit(cut_path, std::string_view(full).substr(0, cut));
    auto r = CaptureReader::open(cut_path);
    ASSERT_TRUE(r) << "cut " << cut << ": " << r.error().message;
    uint64_t expect = 0;
    bool on_boundary = cut == header_end;
    for (auto [end, recs] : ends) {
      if (end <= cut) expect = recs;
      on_boundary |= end == cut;
    }
    Event ev;
    uint64_t n = 0;
    while ((*r)->next(ev)) {
      expect_same(w.recs[n], w.recs[n].raw.ts_ns + w.offsets[n], ev);
      ++n;
    }
    EXPECT_EQ(n, expect) << "cut at " << cut;
    EXPECT_EQ((*r)->problems().empty(), on_boundary) << "cut at " << cut;
    if (!on_boundary) {
      EXPECT_NE((*r)->problems()[0].find("cut short"), std::string::npos) << (*r)->problems()[0];
    }
  }
  std::remove(cut_path.c_str());
  std::remove(w.path.c_str());
}

TEST(CaptureFile, CorruptFrameIsReportedWithOffsetAndSkipped) {
  auto w = write_file("corrupt.ccap", 120, 4096);
  std::string bytes = slurp(w.path);
  const auto ends = frame_ends(bytes);
  // Damage the middle of the second data frame.
  const uint64_t data_at = ends[0].first + 8 + capfile::kBatchInfoSize;
  const uint64_t frame2_records = ends[1].second - ends[0].second;
  bytes[(data_at + ends[1].first) / 2] ^= 0x5A;
  spit(w.path, bytes);
  auto r = CaptureReader::open(w.path);
  ASSERT_TRUE(r);
  Event ev;
  uint64_t n = 0;
  while ((*r)->next(ev)) ++n;
  EXPECT_EQ(n, w.recs.size() - frame2_records);
  ASSERT_EQ((*r)->problems().size(), 1u);
  EXPECT_NE((*r)->problems()[0].find(w.path + ": offset " + std::to_string(data_at) + ": corrupt frame"),
            std::string::npos)
      << (*r)->problems()[0];
  EXPECT_EQ((*r)->skipped_frames(), 1u);
  EXPECT_EQ((*r)->skipped_records(), frame2_records);
  std::remove(w.path.c_str());
}

TEST(CaptureFile, GarbageAndMissingFilesGiveClearErrors) {
  auto r = CaptureReader::open(tmp_path("does-not-exist.ccap"));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("cannot open"), std::string::npos);
  const std::string p = tmp_path("garbage.ccap");
  spit(p, "GET / HTTP/1.1\r\n\r\n");
  r = CaptureReader::open(p);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("not a clearcap capture file"), std::string::npos) << r.error().message;
  std::remove(p.c_str());
}

// An output that holds every write until released: the disk is stuck.
class StuckOutput : public CaptureOutput {
 public:
  Result<void> write(std::span<const uint8_t> b) override {
    std::unique_lock l(m_);
    cv_.wait(l, [&] { return open_; });
    data_.append(reinterpret_cast<const char*>(b.data()), b.size());
    return {};
  }
  bool at_file_start() const override { return data_.empty(); }
  Result<void> close() override { return {}; }
  const std::string& name() const override { return name_; }
  void release() {
    std::lock_guard l(m_);
    open_ = true;
    cv_.notify_all();
  }
  std::string data_;

 private:
  std::mutex m_;
  std::condition_variable cv_;
  bool open_ = false;
  std::string name_ = "stuck";
};

// A sink whose output is stuck, fed `n` records (write() never blocks); the
// output is released and the file read back. Every event is either in the
// file or counted.
struct StuckRun {
  uint64_t dropped = 0;
  uint64_t read_back = 0;
  uint64_t stored = 0, faster = 0;
  int zstd_test = -1;  // exit status of `zstd -t` on the file
};

StuckRun run_stuck(CaptureFileSink::Options o, size_t n, const std::string& name) {
  auto out = std::make_unique<StuckOutput>();
  StuckOutput* stuck = out.get();
  CaptureFileSink sink(std::move(out), o);
  std::vector<uint64_t> offs(n);
  auto recs = make_records(n, offs.data());
  for (size_t i = 0; i < recs.size(); ++i) sink.write(recs[i].event(recs[i].raw.ts_ns + offs[0]));
  StuckRun run;
  std::vector<SinkStats> st;
  sink.collect_stats(st);
  run.dropped = st.at(0).dropped_events;
  stuck->release();
  sink.finish();
  run.stored = sink.frames_stored();
  run.faster = sink.frames_faster();
  const std::string p = tmp_path(name);
  spit(p, stuck->data_);
  run.zstd_test = std::system(("zstd -q -t '" + p + "'").c_str());
  auto r = CaptureReader::open(p);
  EXPECT_TRUE(r);
  Event ev;
  while (r && (*r)->next(ev)) ++run.read_back;
  std::remove(p.c_str());
  EXPECT_EQ(run.read_back + run.dropped, n);  // every event is either in the file or counted
  return run;
}

TEST(CaptureFile, SlowOutputDropsAndCountsInsteadOfBlocking) {
  CaptureFileSink::Options o;
  o.batch_bytes = 4096;
  o.buffers = 3;
  EXPECT_GT(run_stuck(o, 300, "stuck.ccap").dropped, 200u);
}

TEST(CaptureFile, WriterFarBehindStoresFramesThatEveryZstdReads) {
  CaptureFileSink::Options o;
  o.batch_bytes = 4096;
  o.buffers = 16;
  const StuckRun run = run_stuck(o, 2000, "stored.ccap");
  EXPECT_GT(run.dropped, 0u) << "16 buffers of 4 KiB cannot hold 2000 records";
  // Released, the writer finds every buffer waiting.
  EXPECT_GT(run.stored, 0u);
  EXPECT_GT(run.faster, 0u);
  EXPECT_EQ(run.zstd_test, 0);
}

TEST(CaptureFormat, StoredFramesDecodeAtEveryBlockBoundary) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{131071}, size_t{131072}, size_t{131073}, size_t{(1u << 20) + 5}}) {
    std::vector<uint8_t> data(n);
    for (size_t i = 0; i < n; ++i) data[i] = static_cast<uint8_t>(i * 131 + (i >> 9));
    std::vector<uint8_t> frame;
    capfile::append_stored_zstd_frame(data, frame);
    EXPECT_EQ(frame.size(), capfile::stored_zstd_frame_size(n)) << n;
    EXPECT_EQ(ZSTD_getFrameContentSize(frame.data(), frame.size()), n) << n;
    EXPECT_EQ(ZSTD_findFrameCompressedSize(frame.data(), frame.size()), frame.size()) << n;
    std::vector<uint8_t> back(n + 1);
    const size_t got = ZSTD_decompress(back.data(), back.size(), frame.data(), frame.size());
    ASSERT_FALSE(ZSTD_isError(got)) << n << ": " << ZSTD_getErrorName(got);
    back.resize(got);
    EXPECT_EQ(back, data) << n;
  }
}

TEST(CaptureFormat, LevelFollowsTheBacklogDownToStored) {
  EXPECT_EQ(CaptureFileSink::level_for_backlog(3, 0, 16), 3);
  EXPECT_EQ(CaptureFileSink::level_for_backlog(3, 4, 16), 3);
  EXPECT_EQ(CaptureFileSink::level_for_backlog(3, 5, 16), -5);
  EXPECT_EQ(CaptureFileSink::level_for_backlog(3, 8, 16), -5);
  EXPECT_EQ(CaptureFileSink::level_for_backlog(3, 9, 16), -50);
  EXPECT_EQ(CaptureFileSink::level_for_backlog(3, 10, 16), -50);
  EXPECT_EQ(CaptureFileSink::level_for_backlog(3, 11, 16), std::nullopt);
  EXPECT_EQ(CaptureFileSink::level_for_backlog(-100, 9, 16), -100);  // never slower than asked
}

// Full HTTP exchange on one connection, exported to pcapng and judged by tshark.
TEST(CaptureExport, PcapngIsDissectedByTshark) {
  if (std::system("command -v tshark >/dev/null 2>&1") != 0) GTEST_SKIP() << "tshark not installed";
  const std::string token = "tok" + std::to_string(getpid()) + "x" + std::to_string(std::random_device{}());
  TestRecord req, resp;
  req.ipv6("::1", 51000, "::1", 8443).with_payload("GET /" + token + " HTTP/1.1\r\nHost: h\r\n\r\n");
  resp.ipv6("::1", 8443, "::1", 51000).with_payload("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
  resp.raw.direction = CC_DIR_READ;
  const std::string pcap = tmp_path("x.pcapng"), har = tmp_path("x.har");
  for (const auto& [path, fmt] : {std::pair{pcap, "pcapng"}, std::pair{har, "har"}}) {
    auto ex = make_exporter(fmt, path, 0600, "test");
    ASSERT_TRUE(ex);
    ASSERT_TRUE((*ex)->write(req.event(1'000'000'000'000)));
    ASSERT_TRUE((*ex)->write(resp.event(1'000'002'000'000)));
    ASSERT_TRUE((*ex)->finish());
  }
  FILE* f = popen(("tshark -r " + pcap + " -Y http -T fields -e http.request.uri -e http.response.code "
                   "-e frame.comment 2>&1").c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof(buf), f)) out.append(buf, n);
  EXPECT_EQ(pclose(f), 0) << out;
  EXPECT_NE(out.find("/" + token), std::string::npos) << out;
  EXPECT_NE(out.find("200"), std::string::npos) << out;
  EXPECT_NE(out.find("pid=1234 comm=curl"), std::string::npos) << out;

  simdjson::ondemand::parser parser;
  auto json = simdjson::padded_string::load(har);
  auto doc = parser.iterate(json);
  auto entry = doc["log"]["entries"].at(0);
  std::string_view url = entry["request"]["url"].get_string();
  EXPECT_EQ(url, "https://h/" + token);
  EXPECT_EQ(int64_t(entry["response"]["status"].get_int64()), 200);
  std::string_view body = entry["response"]["content"]["text"].get_string();
  EXPECT_EQ(body, "hello");
  std::remove(pcap.c_str());
  std::remove(har.c_str());
}

}  // namespace
}  // namespace clearcap

namespace clearcap {
namespace {

// A capture file keeps each record exactly as the kernel wrote it, whatever
// its type: a packet, a keys record and a data record of another module come
// back byte for byte (the writer used to rebuild every event as a data
// record, which would have corrupted the others).
TEST(CaptureFile, KeepsRawRecordsOfEveryType) {
  std::vector<std::vector<uint8_t>> records;
  {
    test::TestRecord gnutls;
    gnutls.raw.source = CC_SRC_GNUTLS_RECV;
    gnutls.raw.direction = CC_DIR_READ;
    gnutls.raw.ts_ns = 1000;
    records.push_back(gnutls.with_payload("HTTP/1.1 200 OK\r\n").bytes());
  }
  {
    cc_packet_event p{};
    p.hdr.type = CC_REC_PACKET;
    p.hdr.hdr_len = sizeof(p);
    p.hdr.data_len = 60;
    p.ifindex = 1;
    p.wire_len = 1500;
    p.direction = CC_PKT_INGRESS;
    p.flags = CC_PKT_TRUNCATED;
    p.ts_ns = 2000;
    std::vector<uint8_t> b(sizeof(p) + 60);
    std::memcpy(b.data(), &p, sizeof(p));
    for (size_t i = 0; i < 60; ++i) b[sizeof(p) + i] = static_cast<uint8_t>(i * 7);
    records.push_back(std::move(b));
  }
  {
    cc_keys_event k{};
    k.hdr.type = CC_REC_KEYS;
    k.hdr.hdr_len = sizeof(k);
    k.pid = 77;
    k.ts_ns = 3000;
    k.present = 1;
    k.items[CC_KEY_CLIENT_RANDOM][0] = 0xab;
    std::vector<uint8_t> b(sizeof(k));
    std::memcpy(b.data(), &k, sizeof(k));
    records.push_back(std::move(b));
  }
  const std::string path = tmp_path("raw_types.ccap");
  {
    auto sink = CaptureFileSink::open(path, CaptureFileSink::Options{});
    ASSERT_TRUE(sink) << sink.error().message;
    for (const auto& r : records) {
      Event ev;
      ASSERT_EQ(decode_record(r, ev), DecodeStatus::kSuccess);
      ev.wall_ns = ev.boot_ns + 5;
      (*sink)->write(ev);
    }
    (*sink)->finish();
  }
  auto reader = CaptureReader::open(path);
  ASSERT_TRUE(reader) << reader.error().message;
  Event got;
  for (const auto& want : records) {
    ASSERT_TRUE((*reader)->next(got));
    EXPECT_EQ(std::vector<uint8_t>(got.record.begin(), got.record.end()), want);
    EXPECT_EQ(got.wall_ns, got.boot_ns + 5);
  }
  EXPECT_FALSE((*reader)->next(got));
  EXPECT_EQ((*reader)->skipped_records(), 0u);
}

}  // namespace
}  // namespace clearcap
