// Inputs the fuzz targets (fuzz/, scripts/fuzz.sh) found to crash, replayed
// against the fixed code: the input as the fuzzer found it (kept in
// fuzz/corpus/<target>/ too), and the same case built by hand so that the
// test says what went wrong.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "proto/http/body_decoder.h"
#include "proto/http2/frames.h"
#include "sinks/capture_file/capture_format.h"
#include "sinks/capture_file/capture_reader.h"
#include "test_record.h"

namespace clearcap {
namespace {

const std::string kCorpus = CLEARCAP_FUZZ_CORPUS_DIR;

// Reads a capture file to its end; returns the records delivered.
size_t read_all(CaptureReader& reader) {
  Event ev;
  size_t n = 0;
  while (reader.next(ev)) ++n;
  return n;
}

// fuzz_capture_reader: a data frame whose zstd checksum is wrong, last in the
// file. The reader counted its records as skipped and returned false, but
// kept the frame's decompressed bytes: asked once more, it delivered the
// skipped records after all.
TEST(FuzzRegressions, CaptureReaderKeepsACorruptLastFrameSkipped) {
  std::vector<uint8_t> file;
  capfile::append_header_frame(capfile::local_header(0, "test"), file);
  const auto rec = test::TestRecord().with_payload("GET /fuzz HTTP/1.1\r\n\r\n").bytes();
  static_assert(capfile::kRecordPrefix == sizeof(uint32_t));
  const uint32_t len = static_cast<uint32_t>(rec.size());
  std::vector<uint8_t> content(capfile::kRecordPrefix + rec.size());
  std::memcpy(content.data(), &len, sizeof(len));
  std::copy(rec.begin(), rec.end(), content.begin() + capfile::kRecordPrefix);
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
  std::vector<uint8_t> frame(ZSTD_compressBound(content.size()));
  const size_t n = ZSTD_compress2(cctx, frame.data(), frame.size(), content.data(), content.size());
  ZSTD_freeCCtx(cctx);
  ASSERT_FALSE(ZSTD_isError(n));
  frame.resize(n);
  frame.back() ^= 0xff;  // the last byte of the content checksum: the whole content decompresses first
  capfile::BatchInfo info;
  info.records = 1;
  info.compressed_bytes = static_cast<uint32_t>(frame.size());
  info.uncompressed_bytes = content.size();
  capfile::append_batch_frame(info, file);
  file.insert(file.end(), frame.begin(), frame.end());

  const std::string path = ::testing::TempDir() + "clearcap_fuzz_" + std::to_string(getpid()) + ".ccap";
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(file.data()),
                                              static_cast<std::streamsize>(file.size()));
  auto reader = CaptureReader::open(path);
  ASSERT_TRUE(reader) << reader.error().message;
  EXPECT_EQ(read_all(**reader), 0u);
  EXPECT_EQ((*reader)->skipped_frames(), 1u);
  EXPECT_EQ((*reader)->skipped_records(), 1u);
  Event ev;
  EXPECT_FALSE((*reader)->next(ev)) << "a skipped frame's record came back: " << ev.pid;
  EXPECT_EQ((*reader)->records(), 0u);
  std::remove(path.c_str());
}

// The file the fuzzer found: tls.ccap with its data frame damaged.
TEST(FuzzRegressions, CaptureReaderFuzzInputEndsOnce) {
  auto reader = CaptureReader::open(kCorpus + "/capture_reader/crash_corrupt_last_frame.ccap");
  ASSERT_TRUE(reader) << reader.error().message;
  read_all(**reader);
  EXPECT_EQ((*reader)->skipped_frames(), 1u);
  Event ev;
  EXPECT_FALSE((*reader)->next(ev));
  EXPECT_EQ((*reader)->records(), 0u);
}

// fuzz_http2: picked up mid-way, a plausible frame header whose length runs
// past the bytes buffered made the search read a header beyond the buffer's
// end (fuzz/corpus/http2/regression_sync_past_end). The search now waits
// for more bytes.
TEST(FuzzRegressions, Http2SearchWaitsWhenAFrameRunsPastTheBuffer) {
  const std::vector<uint8_t> bytes = {0, 0, 100, 0, 1, 0, 0, 0, 1, '1', '2', '3', '4', '5'};
  http2::Framer f(false);
  f.feed(bytes);
  http2::Frame fr;
  EXPECT_EQ(f.next(fr), http2::Framer::State::kNeedsMoreData);
  EXPECT_FALSE(f.synced());
  EXPECT_EQ(f.buffered(), bytes.size()) << "kept: it may be the start of frames";
}


// fuzz_body: "br, deflate" whose br stage is cut at the bound (100 bytes):
// the deflate stage then saw a prefix and failed on it, and the stack
// reported an error where a larger bound decoded something else. A stage
// after a cut sees a prefix: what it reports is the cut's doing, and the
// stack says "cut" (so "not cut" really means "the bound changed nothing").
TEST(FuzzRegressions, BodyStackCutBeforeAnErrorReportsTheCut) {
  std::ifstream f(kCorpus + "/body/regression_stack_cut_then_error", std::ios::binary);
  const std::string input((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  ASSERT_GT(input.size(), 1u);
  ASSERT_EQ(input[0] & 7, 6);          // "br, deflate"
  ASSERT_EQ((input[0] >> 3) & 7, 3);   // bound 100
  const std::string_view body = std::string_view(input).substr(1);
  const auto small = http::decode_body("br, deflate", body, 100);
  const auto large = http::decode_body("br, deflate", body, 256 * 1024);
  if (small.status != http::DecodedBody::Status::kCut) {
    EXPECT_EQ(small.status, large.status);
    EXPECT_EQ(small.text, large.text);
  } else {
    EXPECT_EQ(large.text.substr(0, small.text.size()), small.text);
  }
  EXPECT_EQ(small.status, http::DecodedBody::Status::kCut);
}

}  // namespace
}  // namespace clearcap
