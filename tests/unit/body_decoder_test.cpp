// decode_body against inputs made here with the real encoders (zlib,
// libbrotlienc, libzstd): each coding round-trips, lists are undone right to
// left, both kinds of "deflate", concatenated gzip members and zstd frames;
// the bound holds against decompression bombs (1 GiB of zeros, made by
// streaming so that the test itself stays small) and at exactly max_out;
// truncated and corrupt streams keep what decoded before the damage.
#include "proto/http/body_decoder.h"

#include <brotli/encode.h>
#include <gtest/gtest.h>
#include <zlib.h>
#include <zstd.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace clearcap::http {
namespace {

using Status = DecodedBody::Status;

enum class Codec { kGzip, kZlib, kRawDeflate, kBrotli, kZstd };

// The Content-Encoding name a codec goes by.
std::string_view name(Codec c) {
  switch (c) {
    case Codec::kGzip:
      return "gzip";
    case Codec::kZlib:
    case Codec::kRawDeflate:
      return "deflate";
    case Codec::kBrotli:
      return "br";
    case Codec::kZstd:
      return "zstd";
  }
  return "";
}

const Codec kAllCodecs[] = {Codec::kGzip, Codec::kZlib, Codec::kRawDeflate, Codec::kBrotli, Codec::kZstd};

// A streaming encoder, so that a bomb's input is never held whole, and so
// that a stream can be flushed to a byte boundary between two parts.
class Encoder {
 public:
  // `fast`: quick settings for the bombs.
  explicit Encoder(Codec c, int zstd_window_log = 0, bool fast = false) : codec_(c) {
    switch (c) {
      case Codec::kGzip:
      case Codec::kZlib:
      case Codec::kRawDeflate: {
        const int bits = c == Codec::kGzip ? 15 + 16 : c == Codec::kZlib ? 15 : -15;
        EXPECT_EQ(deflateInit2(&z_, fast ? 1 : 6, Z_DEFLATED, bits, 8, fast ? Z_RLE : Z_DEFAULT_STRATEGY), Z_OK);
        break;
      }
      case Codec::kBrotli:
        br_ = BrotliEncoderCreateInstance(nullptr, nullptr, nullptr);
        BrotliEncoderSetParameter(br_, BROTLI_PARAM_QUALITY, fast ? 1 : 5);
        break;
      case Codec::kZstd:
        zs_ = ZSTD_createCCtx();
        if (zstd_window_log) ZSTD_CCtx_setParameter(zs_, ZSTD_c_windowLog, zstd_window_log);
        ZSTD_CCtx_setParameter(zs_, ZSTD_c_compressionLevel, fast ? 1 : 3);
        break;
    }
  }
  ~Encoder() {
    if (br_) BrotliEncoderDestroyInstance(br_);
    if (zs_) ZSTD_freeCCtx(zs_);
    if (codec_ != Codec::kBrotli && codec_ != Codec::kZstd) deflateEnd(&z_);
  }
  Encoder(const Encoder&) = delete;
  Encoder& operator=(const Encoder&) = delete;

  enum class Op { kAdd, kFlush, kFinish };

  void add(std::string_view data) { run(data, Op::kAdd); }
  // Everything so far is in `out()`, ending on a byte boundary.
  void flush() { run({}, Op::kFlush); }
  std::string finish() {
    run({}, Op::kFinish);
    return std::move(out_);
  }
  const std::string& out() const { return out_; }

 private:
  void run(std::string_view data, Op op) {
    uint8_t buf[64 * 1024];
    switch (codec_) {
      case Codec::kGzip:
      case Codec::kZlib:
      case Codec::kRawDeflate: {
        z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
        z_.avail_in = static_cast<uInt>(data.size());
        const int mode = op == Op::kAdd ? Z_NO_FLUSH : op == Op::kFlush ? Z_FULL_FLUSH : Z_FINISH;
        int rc;
        do {
          z_.next_out = buf;
          z_.avail_out = sizeof(buf);
          rc = deflate(&z_, mode);
          ASSERT_NE(rc, Z_STREAM_ERROR);
          out_.append(reinterpret_cast<char*>(buf), sizeof(buf) - z_.avail_out);
        } while (z_.avail_out == 0 || (op == Op::kFinish && rc != Z_STREAM_END));
        break;
      }
      case Codec::kBrotli: {
        auto next_in = reinterpret_cast<const uint8_t*>(data.data());
        size_t avail_in = data.size();
        const auto bop = op == Op::kAdd     ? BROTLI_OPERATION_PROCESS
                         : op == Op::kFlush ? BROTLI_OPERATION_FLUSH
                                            : BROTLI_OPERATION_FINISH;
        for (;;) {
          uint8_t* next_out = buf;
          size_t avail_out = sizeof(buf);
          ASSERT_TRUE(BrotliEncoderCompressStream(br_, bop, &avail_in, &next_in, &avail_out, &next_out, nullptr));
          out_.append(reinterpret_cast<char*>(buf), sizeof(buf) - avail_out);
          const bool done = op == Op::kFinish ? BrotliEncoderIsFinished(br_)
                                              : avail_in == 0 && !BrotliEncoderHasMoreOutput(br_);
          if (done) break;
        }
        break;
      }
      case Codec::kZstd: {
        ZSTD_inBuffer in{data.data(), data.size(), 0};
        const auto mode = op == Op::kAdd ? ZSTD_e_continue : op == Op::kFlush ? ZSTD_e_flush : ZSTD_e_end;
        for (;;) {
          ZSTD_outBuffer o{buf, sizeof(buf), 0};
          const size_t left = ZSTD_compressStream2(zs_, &o, &in, mode);
          ASSERT_FALSE(ZSTD_isError(left)) << ZSTD_getErrorName(left);
          out_.append(reinterpret_cast<char*>(buf), o.pos);
          if (mode == ZSTD_e_continue ? in.pos == in.size : left == 0) break;
        }
        break;
      }
    }
  }

  Codec codec_;
  z_stream z_{};
  BrotliEncoderState* br_ = nullptr;
  ZSTD_CCtx* zs_ = nullptr;
  std::string out_;
};

std::string encode(Codec c, std::string_view text) {
  Encoder e(c);
  e.add(text);
  return e.finish();
}

// `a`, a flush, then `b`: returns the stream and where `b`'s part starts.
std::pair<std::string, size_t> encode_two_parts(Codec c, std::string_view a, std::string_view b) {
  Encoder e(c);
  e.add(a);
  e.flush();
  const size_t at = e.out().size();
  e.add(b);
  return {e.finish(), at};
}

// `bytes` zeros (a multiple of 1 MiB), encoded without ever holding them.
std::string zeros_bomb(Codec c, size_t bytes) {
  static const std::string zeros(1 << 20, '\0');
  Encoder e(c, 0, /*fast=*/true);
  for (size_t done = 0; done < bytes; done += zeros.size()) e.add(zeros);
  return e.finish();
}

void put_le32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s += static_cast<char>(v >> (8 * i));
}

// gzip and zlib around the same raw deflate bomb: deflating a GiB is the
// slow part, done once. The check values are combined per MiB.
std::string wrap_raw_zeros(Codec c, const std::string& raw, size_t bytes) {
  static const std::string zeros(1 << 20, '\0');
  const auto z = reinterpret_cast<const Bytef*>(zeros.data());
  const uLong crc_mib = crc32(0, z, zeros.size()), adler_mib = adler32(1, z, zeros.size());
  uLong crc = 0, adler = 1;
  for (size_t done = 0; done < bytes; done += zeros.size()) {
    crc = crc32_combine(crc, crc_mib, zeros.size());
    adler = adler32_combine(adler, adler_mib, zeros.size());
  }
  if (c == Codec::kGzip) {
    std::string s("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", 10);
    s += raw;
    put_le32(s, static_cast<uint32_t>(crc));
    put_le32(s, static_cast<uint32_t>(bytes));
    return s;
  }
  std::string s("\x78\x01", 2);
  s += raw;
  for (int i = 3; i >= 0; --i) s += static_cast<char>(adler >> (8 * i));
  return s;
}

// About 200 KiB of lines that compress, but not to nothing.
std::string sample_text(size_t lines = 5000) {
  std::string s;
  uint32_t x = 12345;
  for (size_t i = 0; i < lines; ++i) {
    x = x * 1103515245 + 12345;
    s += "line " + std::to_string(i) + ": the quick brown fox " + std::to_string(x % 100000) + " jumps\n";
  }
  return s;
}

// Bytes that do not compress at all.
std::string noise(size_t n) {
  std::string s(n, '\0');
  uint64_t x = 88172645463325252ull;
  for (auto& c : s) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x);
  }
  return s;
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

// Texts here run to 200 KiB: on a mismatch, say where, not the whole text.
::testing::AssertionResult same(std::string_view got, std::string_view want) {
  if (got == want) return ::testing::AssertionSuccess();
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  return ::testing::AssertionFailure() << got.size() << " bytes where " << want.size()
                                       << " were expected, first difference at " << i;
}

constexpr size_t kBig = 64 << 20;

TEST(BodyDecoder, EachCodingRoundTrips) {
  const std::string text = sample_text();
  for (Codec c : kAllCodecs) {
    const std::string body = encode(c, text);
    ASSERT_LT(body.size(), text.size() / 2) << name(c);
    const auto d = decode_body(name(c), body, kBig);
    EXPECT_EQ(d.status, Status::kDecoded) << name(c);
    EXPECT_TRUE(same(d.text, text)) << name(c);
  }
}

TEST(BodyDecoder, TextsOfRoundSizesRoundTrip) {
  // A decoder's last output filling the output buffer exactly is no sign
  // that more is pending.
  const std::string text = sample_text(30000);
  for (size_t size : {size_t{4} << 10, size_t{16} << 10, size_t{64} << 10, size_t{1} << 20}) {
    const std::string_view part = std::string_view(text).substr(0, size);
    for (Codec c : kAllCodecs) {
      for (size_t max_out : {kBig, size}) {
        const auto d = decode_body(name(c), encode(c, part), max_out);
        EXPECT_EQ(d.status, Status::kDecoded) << name(c) << " " << size << " " << max_out;
        EXPECT_TRUE(same(d.text, part)) << name(c) << " " << size;
      }
    }
  }
}

TEST(BodyDecoder, DeflateIsTakenZlibWrappedOrRaw) {
  const std::string text = "deflate either way; " + sample_text(100);
  const std::string zlib = encode(Codec::kZlib, text), raw = encode(Codec::kRawDeflate, text);
  auto zlib_header = [](std::string_view s) {
    return (static_cast<uint8_t>(s[0]) * 256 + static_cast<uint8_t>(s[1])) % 31 == 0;
  };
  ASSERT_TRUE(zlib_header(zlib));
  ASSERT_FALSE(zlib_header(raw));  // else this would not tell them apart
  for (const auto& body : {zlib, raw}) {
    const auto d = decode_body("deflate", body, kBig);
    EXPECT_EQ(d.status, Status::kDecoded);
    EXPECT_TRUE(same(d.text, text));
  }
  // compress2() makes the zlib wrapping with its smallest window too.
  uLongf n = compressBound(text.size());
  std::string small(n, '\0');
  Bytef* dst = reinterpret_cast<Bytef*>(small.data());
  ASSERT_EQ(compress2(dst, &n, reinterpret_cast<const Bytef*>(text.data()), text.size(), 1), Z_OK);
  small.resize(n);
  EXPECT_TRUE(same(decode_body("deflate", small, kBig).text, text));
}

TEST(BodyDecoder, ListIsUndoneRightToLeft) {
  const std::string text = sample_text(500);
  // "gzip, br": gzip was applied first, br last.
  const std::string body = encode(Codec::kBrotli, encode(Codec::kGzip, text));
  auto d = decode_body("gzip, br", body, kBig);
  EXPECT_EQ(d.status, Status::kDecoded);
  EXPECT_TRUE(same(d.text, text));
  // The other order is not the same thing.
  EXPECT_EQ(decode_body("br, gzip", body, kBig).status, Status::kError);

  const std::string three = encode(Codec::kZstd, encode(Codec::kRawDeflate, encode(Codec::kBrotli, text)));
  d = decode_body("br,deflate,zstd", three, kBig);
  EXPECT_EQ(d.status, Status::kDecoded);
  EXPECT_TRUE(same(d.text, text));
}

TEST(BodyDecoder, FiveCodingsAtMostOnOneBody) {
  const std::string text = "nested five times";
  std::string body = text;
  for (int i = 0; i < 5; ++i) body = encode(Codec::kGzip, body);
  auto d = decode_body("gzip, gzip, gzip, gzip, gzip", body, kBig);
  EXPECT_EQ(d.status, Status::kDecoded);
  EXPECT_TRUE(same(d.text, text));
  // Identity adds no pass.
  EXPECT_TRUE(same(decode_body("identity, gzip, gzip, gzip, identity, gzip, gzip", body, kBig).text, text));
  body = encode(Codec::kGzip, body);
  d = decode_body("gzip, gzip, gzip, gzip, gzip, gzip", body, kBig);
  EXPECT_EQ(d.status, Status::kUnsupported);
  EXPECT_EQ(d.text, "");
}

TEST(BodyDecoder, ConcatenatedGzipMembersAreOneBody) {
  const std::string a = "first member\n", b = sample_text(200), c = "third";
  const std::string body = encode(Codec::kGzip, a) + encode(Codec::kGzip, b) + encode(Codec::kGzip, c);
  const auto d = decode_body("gzip", body, kBig);
  EXPECT_EQ(d.status, Status::kDecoded);
  EXPECT_TRUE(same(d.text, a + b + c));
  // Another member that breaks off: the ones before it are whole.
  const std::string cut = encode(Codec::kGzip, a) + encode(Codec::kGzip, b).substr(0, 15);
  const auto t = decode_body("gzip", cut, kBig);
  EXPECT_EQ(t.status, Status::kTruncated);
  EXPECT_TRUE(starts_with(t.text, a));
}

TEST(BodyDecoder, ZstdFramesWithoutContentSizeAndConcatenated) {
  const std::string a = sample_text(300), b = "second frame, one call, with its size";
  const std::string streamed = encode(Codec::kZstd, a);  // streaming: the size is not known up front
  ASSERT_EQ(ZSTD_getFrameContentSize(streamed.data(), streamed.size()), ZSTD_CONTENTSIZE_UNKNOWN);
  std::string sized(ZSTD_compressBound(b.size()), '\0');
  const size_t n = ZSTD_compress(sized.data(), sized.size(), b.data(), b.size(), 3);
  ASSERT_FALSE(ZSTD_isError(n));
  sized.resize(n);
  ASSERT_EQ(ZSTD_getFrameContentSize(sized.data(), sized.size()), b.size());
  // A skippable frame (RFC 8878 3.1.2) between them carries no text.
  const std::string skippable("\x50\x2a\x4d\x18\x03\x00\x00\x00xyz", 11);
  const auto d = decode_body("zstd", streamed + skippable + sized, kBig);
  EXPECT_EQ(d.status, Status::kDecoded);
  EXPECT_TRUE(same(d.text, a + b));
}

TEST(BodyDecoder, ZstdWindowBeyondEightMiBIsRefused) {
  // RFC 9659: the decoder need not hold more; holding it would cost up to
  // 128 MiB whatever max_out says.
  const std::string text = sample_text(100);
  for (int log : {23, 24}) {
    Encoder e(Codec::kZstd, log);
    e.add(text);
    const std::string body = e.finish();
    // RFC 8878 3.1.1.1: no single-segment flag, so a window descriptor
    // follows, exponent in its high five bits (log - 10), mantissa 0.
    ASSERT_GT(body.size(), 6u);
    ASSERT_EQ(body[4] & 0x20, 0);
    ASSERT_EQ(static_cast<uint8_t>(body[5]), (log - 10) << 3);
    const auto d = decode_body("zstd", body, kBig);
    EXPECT_EQ(d.status, log == 23 ? Status::kDecoded : Status::kError) << log;
    EXPECT_TRUE(same(d.text, log == 23 ? text : "")) << log;
  }
}

TEST(BodyDecoder, ZstdPreOneFramesAreNotZstd) {
  // Found by fuzz_body (fuzz/corpus/body/regression_zstd_legacy_frame): a
  // v0.5 frame (magic 0xFD2FB525), which libzstd decodes when it sees the
  // whole header at once but not byte by byte, so a larger bound turned a
  // cut text into an empty error. RFC 9659's zstd is RFC 8878 frames only.
  const std::string legacy("\x25\xb5\x2f\xfd\xa0\x00\x00\x00\x01\x00\x00\xfe\x34\x10\x02\x02\x00", 17);
  for (size_t max_out : {size_t{100}, size_t{4096}, kBig}) {
    const auto d = decode_body("zstd", legacy, max_out);
    EXPECT_EQ(d.status, Status::kError) << max_out;
    EXPECT_EQ(d.text, "") << max_out;
  }
  // The same after a good frame: text up to there.
  const auto d = decode_body("zstd", encode(Codec::kZstd, "good frame") + legacy, kBig);
  EXPECT_EQ(d.status, Status::kError);
  EXPECT_EQ(d.text, "good frame");
  // A frame's magic cut short is a truncated body, not a foreign one.
  EXPECT_EQ(decode_body("zstd", std::string("\x28\xb5", 2), kBig).status, Status::kTruncated);
  EXPECT_EQ(decode_body("zstd", std::string("\x5e\x2a", 2), kBig).status, Status::kTruncated);
}

TEST(BodyDecoder, BombsStopAtTheBound) {
  constexpr size_t kGiB = size_t{1} << 30;
  // Not a multiple of any chunk size: a string doubling itself from one
  // would end at 2 MiB.
  constexpr size_t kMaxOut = (1 << 20) + 12345;
  const std::string raw = zeros_bomb(Codec::kRawDeflate, kGiB);
  for (Codec c : kAllCodecs) {
    const std::string bomb = c == Codec::kRawDeflate                       ? raw
                             : c == Codec::kGzip || c == Codec::kZlib ? wrap_raw_zeros(c, raw, kGiB)
                                                                           : zeros_bomb(c, kGiB);
    ASSERT_LT(bomb.size(), kGiB / 500) << name(c);
    const auto start = std::chrono::steady_clock::now();
    const auto d = decode_body(name(c), bomb, kMaxOut);
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(d.status, Status::kCut) << name(c);
    ASSERT_EQ(d.text.size(), kMaxOut) << name(c);
    EXPECT_EQ(d.text.find_first_not_of('\0'), std::string::npos) << name(c);
    // `text` was never grown past the bound.
    EXPECT_LE(d.text.capacity(), kMaxOut + 64) << name(c);
    // Decoding all of it takes seconds (zstd: 0.1 s); the first MiB, milliseconds.
    EXPECT_LT(took, std::chrono::milliseconds(500)) << name(c);
    // Nor was the rest read: damage past the bound goes unseen.
    EXPECT_EQ(decode_body(name(c), bomb + "\xff damage", kMaxOut).status, Status::kCut) << name(c);
  }
  // The wrapped streams are whole: their checks hold.
  static const std::string mib(1 << 20, '\0');
  for (Codec c : {Codec::kGzip, Codec::kZlib}) {
    const std::string small = wrap_raw_zeros(c, zeros_bomb(Codec::kRawDeflate, 2 << 20), 2 << 20);
    const auto d = decode_body(name(c), small, kBig);
    EXPECT_EQ(d.status, Status::kDecoded) << name(c);
    EXPECT_TRUE(same(d.text, mib + mib)) << name(c);
  }
}

TEST(BodyDecoder, ExactlyMaxOutIsDecodedOneMoreIsCut) {
  const std::string text = sample_text(1000);
  for (Codec c : kAllCodecs) {
    const std::string body = encode(c, text);
    auto d = decode_body(name(c), body, text.size());
    EXPECT_EQ(d.status, Status::kDecoded) << name(c);
    EXPECT_TRUE(same(d.text, text)) << name(c);
    d = decode_body(name(c), body, text.size() - 1);
    EXPECT_EQ(d.status, Status::kCut) << name(c);
    EXPECT_TRUE(same(d.text, text.substr(0, text.size() - 1))) << name(c);
    d = decode_body(name(c), body, 0);
    EXPECT_EQ(d.status, Status::kCut) << name(c);
    EXPECT_EQ(d.text, "") << name(c);
  }
}

TEST(BodyDecoder, IntermediateBeyondTheBoundIsReportedCut) {
  // gzip makes noise slightly larger, so the br stage's output (the gzip
  // stream) passes max_out while the text would not have.
  const std::string text = noise(10000);
  const std::string gz = encode(Codec::kGzip, text);
  ASSERT_GT(gz.size(), text.size());
  const std::string body = encode(Codec::kBrotli, gz);
  auto d = decode_body("gzip, br", body, text.size());
  EXPECT_EQ(d.status, Status::kCut);
  EXPECT_LT(d.text.size(), text.size());
  EXPECT_TRUE(starts_with(text, d.text));
  d = decode_body("gzip, br", body, gz.size());
  EXPECT_EQ(d.status, Status::kDecoded);
  EXPECT_TRUE(same(d.text, text));
}

TEST(BodyDecoder, TruncatedStreamKeepsTheDecodedPrefix) {
  // 1 MiB: half of its zstd stream holds whole blocks (128 KiB of text each,
  // zstd hands out no less).
  const std::string text = sample_text(25000);
  for (Codec c : kAllCodecs) {
    const std::string body = encode(c, text);
    const size_t half = body.size() / 2;
    for (size_t keep : {half, body.size() - 1}) {
      const auto d = decode_body(name(c), body.substr(0, keep), kBig);
      EXPECT_EQ(d.status, Status::kTruncated) << name(c) << " " << keep;
      EXPECT_TRUE(starts_with(text, d.text)) << name(c) << " " << keep;
      // Everything the input held came out (up to a block), not only what
      // filled a chunk or a ring buffer.
      if (keep == half) {
        EXPECT_GT(d.text.size(), text.size() / 4) << name(c);
        EXPECT_LT(d.text.size(), text.size() * 3 / 4) << name(c);
      } else {
        EXPECT_GT(d.text.size(), text.size() - (128 << 10)) << name(c);
      }
    }
  }
  // Only the gzip trailer missing: all the text, still truncated.
  const std::string gz = encode(Codec::kGzip, text);
  const auto d = decode_body("gzip", gz.substr(0, gz.size() - 8), kBig);
  EXPECT_EQ(d.status, Status::kTruncated);
  EXPECT_TRUE(same(d.text, text));
}

TEST(BodyDecoder, CorruptStreamKeepsWhatDecodedBefore) {
  // Text of one zstd block (less than 128 KiB) and a run that a few bytes
  // encode: either way several output chunks' worth is still held by the
  // decoder when the damage is reached.
  const std::string text = sample_text(3000), run(200 << 10, 'a'), b = "after the damage";
  ASSERT_GT(text.size(), 100000u);
  ASSERT_LT(text.size(), 128u << 10);
  for (const std::string& a : {text, run}) {
    for (Codec c : kAllCodecs) {
      auto [body, at] = encode_two_parts(c, a, b);
      ASSERT_LT(at, body.size()) << name(c);
      if (c == Codec::kBrotli) {
        // A metadata block (MNIBBLES 0) with its reserved bit set.
        body[at] = 0x0e;
      } else if (c == Codec::kZstd) {
        // The flush ended a block; a reserved block type (3) follows.
        body[at] = static_cast<char>(body[at] | 0x06);
      } else {
        // A deflate block of the reserved type (BTYPE 11).
        body[at] = 0x06;
      }
      const auto d = decode_body(name(c), body, kBig);
      EXPECT_EQ(d.status, Status::kError) << name(c);
      EXPECT_TRUE(same(d.text, a)) << name(c) << " " << a.size();
    }
  }
}

TEST(BodyDecoder, FailedChecksOrTrailingBytesAreErrors) {
  const std::string text = sample_text(300);
  std::string gz = encode(Codec::kGzip, text);
  gz[gz.size() - 6] ^= 0x40;  // inside the CRC-32
  auto d = decode_body("gzip", gz, kBig);
  EXPECT_EQ(d.status, Status::kError);
  EXPECT_TRUE(same(d.text, text));

  std::string zl = encode(Codec::kZlib, text);
  zl.back() ^= 0x01;  // the Adler-32
  d = decode_body("deflate", zl, kBig);
  EXPECT_EQ(d.status, Status::kError);
  EXPECT_TRUE(same(d.text, text));

  // After a stream that is not made of members or frames, more bytes are
  // not part of it.
  for (Codec c : {Codec::kZlib, Codec::kRawDeflate, Codec::kBrotli, Codec::kZstd}) {
    d = decode_body(name(c), encode(c, text) + "garbage", kBig);
    EXPECT_EQ(d.status, Status::kError) << name(c);
    EXPECT_TRUE(same(d.text, text)) << name(c);
  }
  d = decode_body("gzip", encode(Codec::kGzip, text) + "garbage", kBig);
  EXPECT_EQ(d.status, Status::kError);
  EXPECT_TRUE(same(d.text, text));

  // Not coded at all.
  d = decode_body("gzip", "plain text, not gzip", kBig);
  EXPECT_EQ(d.status, Status::kError);
  EXPECT_EQ(d.text, "");
}

TEST(BodyDecoder, UnknownCodingsAreUnsupported) {
  const std::string body = encode(Codec::kGzip, "x");
  for (std::string_view enc : {"compress", "x-compress", "xyz", "gzip, xyz", "xyz, gzip", "g zip", "gzip;q=1"}) {
    const auto d = decode_body(enc, body, kBig);
    EXPECT_EQ(d.status, Status::kUnsupported) << enc;
    EXPECT_EQ(d.text, "") << enc;
  }
}

TEST(BodyDecoder, IdentityIsTheBodyUpToTheBound) {
  const std::string body = "as sent, no coding";
  for (std::string_view enc : {"", "identity", " IDENTITY ", "identity, identity", " , "}) {
    auto d = decode_body(enc, body, kBig);
    EXPECT_EQ(d.status, Status::kIdentity) << enc;
    EXPECT_TRUE(same(d.text, body)) << enc;
    d = decode_body(enc, body, body.size());
    EXPECT_EQ(d.status, Status::kIdentity) << enc;
    EXPECT_TRUE(same(d.text, body)) << enc;
    d = decode_body(enc, body, 5);
    EXPECT_EQ(d.status, Status::kCut) << enc;
    EXPECT_EQ(d.text, "as se") << enc;
  }
}

TEST(BodyDecoder, NamesAreCaseInsensitiveAndSpacesIgnored) {
  const std::string text = "case and spaces";
  const std::string gz = encode(Codec::kGzip, text);
  for (std::string_view enc : {"GZIP", " gzip ", "\tGzip\t", "x-gzip", "X-GZip", "identity, gzip", "gzip,"}) {
    const auto d = decode_body(enc, gz, kBig);
    EXPECT_EQ(d.status, Status::kDecoded) << enc;
    EXPECT_TRUE(same(d.text, text)) << enc;
  }
  EXPECT_EQ(decode_body("BR", encode(Codec::kBrotli, text), kBig).text, text);
  EXPECT_EQ(decode_body(" Zstd", encode(Codec::kZstd, text), kBig).text, text);
  EXPECT_EQ(decode_body("DEFLATE ", encode(Codec::kRawDeflate, text), kBig).text, text);
  const auto d = decode_body(" gzip ,\tBr ", encode(Codec::kBrotli, gz), kBig);
  EXPECT_EQ(d.status, Status::kDecoded);
  EXPECT_TRUE(same(d.text, text));
}

TEST(BodyDecoder, EmptyBodyHasNothingToUndo) {
  // HEAD, 204 and 304 responses carry Content-Encoding without a body.
  for (Codec c : kAllCodecs) {
    const auto d = decode_body(name(c), "", kBig);
    EXPECT_EQ(d.status, Status::kDecoded) << name(c);
    EXPECT_EQ(d.text, "") << name(c);
  }
  EXPECT_EQ(decode_body("compress", "", kBig).status, Status::kUnsupported);
}

}  // namespace
}  // namespace clearcap::http
