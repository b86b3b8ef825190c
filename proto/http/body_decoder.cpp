#include "proto/http/body_decoder.h"

#define ZLIB_CONST  // next_in as const: the body is a string_view
#include <brotli/decode.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <new>
#include <stdexcept>
#include <utility>

namespace clearcap::http {
namespace {

using Status = DecodedBody::Status;

enum class Coding : uint8_t { kGzip, kDeflate, kBrotli, kZstd };

// More codings than this on one body is no server's doing; each one costs a
// pass of up to max_out bytes, so a crafted header must not multiply that
// (curl stops at 5 too).
constexpr size_t kMaxCodings = 5;

// The decoders write into this much stack before `text` keeps what fits.
constexpr size_t kChunk = 16 * 1024;

// RFC 9659 caps a zstd content coding's window at 8 MiB; a frame asking for
// more would make the decoder allocate it (up to 128 MiB by default)
// regardless of max_out, so it is refused. Brotli without its large-window
// extension stays within 16 MiB, zlib within 32 KiB.
constexpr int kZstdWindowLogMax = 23;

// Where one stage's output goes: kept up to max_out, the rest dropped.
class Output {
 public:
  explicit Output(size_t max_out) : max_(max_out) {}

  // How much the next decoder call may write: one byte beyond the bound, so
  // that a stream ending exactly at max_out is told apart from one going on.
  size_t room() const {
    const size_t left = max_ - text_.size();
    return left < kChunk ? left + 1 : kChunk;
  }

  // False once the bound is passed: the caller stops decoding there.
  bool take(size_t n) {
    const size_t keep = std::min(n, max_ - text_.size());
    if (text_.size() + keep > text_.capacity()) {
      // Geometric growth, but never past max_out: a string's own growth
      // could double a large `text` beyond the bound. A fresh string gets
      // exactly what it reserves.
      std::string grown;
      grown.reserve(std::min(max_, std::max(text_.size() + keep, 2 * text_.capacity())));
      grown.append(text_);
      text_.swap(grown);
    }
    text_.append(reinterpret_cast<const char*>(buf), keep);
    return keep == n;
  }

  void clear() { text_.clear(); }
  std::string release() { return std::move(text_); }

  uint8_t buf[kChunk];

 private:
  size_t max_;
  std::string text_;
};

struct Inflater {
  z_stream s{};
  bool live = false;
  ~Inflater() {
    if (live) inflateEnd(&s);
  }
};

struct BrotliState {
  BrotliDecoderState* s = BrotliDecoderCreateInstance(nullptr, nullptr, nullptr);
  ~BrotliState() {
    if (s) BrotliDecoderDestroyInstance(s);
  }
};

struct ZstdContext {
  ZSTD_DCtx* d = ZSTD_createDCtx();
  ~ZstdContext() { ZSTD_freeDCtx(d); }  // accepts null
};

// `members`: after the stream's end, further input is another member (gzip,
// RFC 1952 2.2); otherwise it is an error.
Status inflate_into(std::string_view in, int window_bits, bool members, Output& out) {
  Inflater z;
  if (inflateInit2(&z.s, window_bits) != Z_OK) return Status::kError;
  z.live = true;
  auto next = reinterpret_cast<const Bytef*>(in.data());
  size_t left = in.size();  // not yet handed to zlib, whose counts are 32-bit
  for (;;) {
    if (z.s.avail_in == 0 && left > 0) {
      const auto n = static_cast<uInt>(std::min<size_t>(left, UINT_MAX));
      z.s.next_in = next;
      z.s.avail_in = n;
      next += n;
      left -= n;
    }
    const size_t room = out.room();
    z.s.next_out = out.buf;
    z.s.avail_out = static_cast<uInt>(room);
    const int rc = inflate(&z.s, Z_NO_FLUSH);
    // What was written before an error is still the body's text.
    if (!out.take(room - z.s.avail_out)) return Status::kCut;
    const bool input_done = z.s.avail_in == 0 && left == 0;
    if (rc == Z_STREAM_END) {
      if (input_done) return Status::kDecoded;
      if (!members || inflateReset(&z.s) != Z_OK) return Status::kError;
      continue;
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR) return Status::kError;  // data, dictionary, memory
    // Room left over means zlib stopped for want of input.
    if (input_done && z.s.avail_out > 0) return Status::kTruncated;
  }
}

// Servers send "deflate" both as RFC 1950 (zlib) and as bare RFC 1951 data.
// A zlib header is a multiple of 31 with method 8 and a window of at most
// 32 KiB; raw data matching all three by chance is rare enough to accept.
Status inflate_deflate(std::string_view in, Output& out) {
  bool zlib = false;
  if (in.size() >= 2) {
    const auto cmf = static_cast<uint8_t>(in[0]), flg = static_cast<uint8_t>(in[1]);
    zlib = (cmf * 256 + flg) % 31 == 0 && (cmf & 0x0f) == 8 && (cmf >> 4) <= 7;
  }
  return inflate_into(in, zlib ? 15 : -15, /*members=*/false, out);
}

// brotli and zstd hold decoded bytes back (brotli in its ring buffer, zstd
// a block in its own buffer) and drop them when a later part of the same
// call fails. So a pass is given at most `step` new bytes per call; after an
// error the input is decoded again a byte at a time, and then the failing
// call has nothing of earlier input left to hand over. Only the error path
// pays for that: a call per input byte (up to some 0.2 s per MiB).
template <class Pass>
Status with_retry(Pass pass, std::string_view in, Output& out) {
  const Status s = pass(in, SIZE_MAX, out);
  if (s != Status::kError) return s;
  out.clear();
  return pass(in, 1, out);
}

Status brotli_pass(std::string_view in, size_t step, Output& out) {
  BrotliState b;
  if (!b.s) return Status::kError;
  const auto data = reinterpret_cast<const uint8_t*>(in.data());
  size_t fed = 0;  // handed to the decoder so far
  const uint8_t* next_in = data;
  size_t avail_in = 0;
  bool pending = false;  // the last call filled the output
  for (;;) {
    // Nothing new while output is pending: brotli decodes on from new input
    // before it writes out what it holds.
    if (!pending && avail_in == 0 && fed < in.size()) {
      next_in = data + fed;
      avail_in = std::min(step, in.size() - fed);
      fed += avail_in;
    }
    const size_t room = out.room();
    uint8_t* next_out = out.buf;
    size_t avail_out = room;
    const auto r = BrotliDecoderDecompressStream(b.s, &avail_in, &next_in, &avail_out, &next_out, nullptr);
    if (!out.take(room - avail_out)) return Status::kCut;
    pending = avail_out == 0;
    switch (r) {
      case BROTLI_DECODER_RESULT_SUCCESS:
        return avail_in == 0 && fed == in.size() ? Status::kDecoded : Status::kError;  // bytes after the stream
      case BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT:
        continue;
      case BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT:
        // Wanting input, it pushes out what it holds, as far as there is room.
        if (pending || fed < in.size()) continue;
        return Status::kTruncated;
      case BROTLI_DECODER_RESULT_ERROR:
        return Status::kError;
    }
    return Status::kError;
  }
}

// A frame's first bytes (as many as there are, up to four): a zstd frame's
// magic number or a skippable frame's (RFC 8878 3.1.1, 3.1.2). libzstd also
// takes its pre-1.0 formats, which no zstd content coding is, and takes
// them only when handed their first four bytes at once: a byte-wise retry
// would see them differently.
bool frame_magic(std::string_view s) {
  static constexpr uint8_t kFrame[4] = {0x28, 0xb5, 0x2f, 0xfd}, kSkippable[4] = {0x50, 0x2a, 0x4d, 0x18};
  bool frame = true, skippable = true;
  for (size_t i = 0; i < std::min<size_t>(4, s.size()); ++i) {
    const auto b = static_cast<uint8_t>(s[i]);
    frame = frame && b == kFrame[i];
    skippable = skippable && (i == 0 ? (b & 0xf0) == kSkippable[0] : b == kSkippable[i]);
  }
  return frame || skippable;
}

// Concatenated frames (and skippable ones) are one body to zstd's streaming
// decoder; a frame need not state its content size.
Status zstd_pass(std::string_view in, size_t step, Output& out) {
  ZstdContext z;
  if (!z.d || ZSTD_isError(ZSTD_DCtx_setParameter(z.d, ZSTD_d_windowLogMax, kZstdWindowLogMax))) return Status::kError;
  size_t pos = 0;
  bool frame_start = true;  // a call that returns 0 has ended a frame, and read no further
  for (;;) {
    if (frame_start && !frame_magic(in.substr(pos))) return Status::kError;
    // No need to hold input back while output is pending: zstd flushes
    // before it reads on, leaving what it was offered unread.
    const size_t end = pos + std::min(step, in.size() - pos);
    ZSTD_inBuffer src{in.data(), end, pos};
    const size_t room = out.room();
    ZSTD_outBuffer dst{out.buf, room, 0};
    const size_t r = ZSTD_decompressStream(z.d, &dst, &src);
    if (!out.take(dst.pos)) return Status::kCut;
    if (ZSTD_isError(r)) return Status::kError;
    const bool moved = src.pos != pos || dst.pos != 0;
    pos = src.pos;
    frame_start = r == 0;
    // 0: the frame ended and all of it is out, even if that filled `dst`
    // (asked again, zstd would wait for another frame).
    if (r == 0 && pos == in.size()) return Status::kDecoded;
    if (dst.pos == dst.size) continue;  // more may be pending
    // Room left over: zstd wants input (or, at r == 0, starts the next
    // frame on the next call).
    if (pos == in.size()) return Status::kTruncated;
    if (!moved && end > pos) return Status::kError;  // given input and room, it did nothing
  }
}

Status run(Coding c, std::string_view in, Output& out) {
  switch (c) {
    case Coding::kGzip:
      return inflate_into(in, 15 + 16, /*members=*/true, out);
    case Coding::kDeflate:
      return inflate_deflate(in, out);
    case Coding::kBrotli:
      return with_retry(brotli_pass, in, out);
    case Coding::kZstd:
      return with_retry(zstd_pass, in, out);
  }
  return Status::kError;
}

bool is_space(char c) { return c == ' ' || c == '\t'; }

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x >= 'A' && x <= 'Z' ? x - 'A' + 'a' : x) == y;
         });
}

// The list in the order applied; false on a coding not known here (or too
// many). "identity" and empty list elements (RFC 9110 5.6.1) add nothing.
bool parse(std::string_view value, Coding (&codings)[kMaxCodings], size_t& n) {
  n = 0;
  while (!value.empty()) {
    const size_t comma = value.find(',');
    std::string_view name = value.substr(0, comma);
    value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
    while (!name.empty() && is_space(name.front())) name.remove_prefix(1);
    while (!name.empty() && is_space(name.back())) name.remove_suffix(1);
    if (name.empty() || iequals(name, "identity")) continue;
    Coding c;
    if (iequals(name, "gzip") || iequals(name, "x-gzip")) {
      c = Coding::kGzip;
    } else if (iequals(name, "deflate")) {
      c = Coding::kDeflate;
    } else if (iequals(name, "br")) {
      c = Coding::kBrotli;
    } else if (iequals(name, "zstd")) {
      c = Coding::kZstd;
    } else {
      return false;
    }
    if (n == kMaxCodings) return false;
    codings[n++] = c;
  }
  return true;
}

// Which status a stack of stages reports. A cut anywhere wins: the text
// shown stops at the bound and more of it exists, which is what a reader
// must be told (and a stage after a cut sees a prefix, so whatever it
// reports - "truncated", even "error": a prefix of a valid stream can look
// corrupt - is the cut's doing). Then an error anywhere; a truncated stage
// stays truncated.
int rank(Status s) {
  switch (s) {
    case Status::kCut:
      return 3;
    case Status::kError:
      return 2;
    case Status::kTruncated:
      return 1;
    default:
      return 0;
  }
}

DecodedBody decode(std::string_view encoding, std::string_view body, size_t max_out) {
  Coding codings[kMaxCodings];
  size_t n = 0;
  if (!parse(encoding, codings, n)) return {Status::kUnsupported, {}};
  if (n == 0) {
    const bool cut = body.size() > max_out;
    return {cut ? Status::kCut : Status::kIdentity, std::string(body.substr(0, max_out))};
  }
  // No body at all (HEAD, 304, 204 keep the header): nothing to undo.
  if (body.empty()) return {Status::kDecoded, {}};
  // Undone right to left. Each intermediate result is bounded by max_out
  // like the final one, so a stacked coding whose intermediate exceeds the
  // bound is reported cut even if the final text is shorter.
  DecodedBody result{Status::kDecoded, {}};
  std::string_view in = body;
  bool cut_before = false;
  for (size_t i = n; i-- > 0;) {
    Output out(max_out);
    const Status s = run(codings[i], in, out);
    if (!cut_before && rank(s) > rank(result.status)) result.status = s;
    cut_before = cut_before || s == Status::kCut;
    result.text = out.release();
    in = result.text;
  }
  return result;
}

}  // namespace

DecodedBody decode_body(std::string_view encoding, std::string_view body, size_t max_out) {
  // Growing `text` is what can throw (the codecs' own allocations report
  // failure by return value): a bound beyond the memory there is must not
  // make this throw.
  try {
    return decode(encoding, body, max_out);
  } catch (const std::bad_alloc&) {
  } catch (const std::length_error&) {
  }
  return {Status::kError, {}};
}

}  // namespace clearcap::http
