// decode_body on arbitrary bodies: the first input byte chooses the
// Content-Encoding (low three bits) and the bound (the next three), the rest
// is the body. Invariants: the text never exceeds the bound; identity is the
// body's prefix; and the bound only ever cuts: decoded again with a larger
// one, a text that was not cut comes out the same, and one that was cut is
// extended, never changed.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "proto/http/body_decoder.h"

using namespace clearcap::http;
using Status = DecodedBody::Status;

namespace {

constexpr std::string_view kEncodings[8] = {"gzip", "deflate",  "br",          "zstd",
                                            "",     "gzip, br", "br, deflate", " zstd ,X-Gzip"};
// Around the decoder's 16 KiB output chunk, and the zlib header's two bytes.
constexpr size_t kBounds[8] = {0, 1, 2, 100, 4096, 16384, 16385, 65536};
constexpr size_t kLargerBound = 256 * 1024;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view encoding = kEncodings[data[0] & 7];
  const size_t bound = kBounds[(data[0] >> 3) & 7];
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  const bool stacked = encoding.find(',') != std::string_view::npos;

  const DecodedBody d = decode_body(encoding, body, bound);
  if (d.text.size() > bound) std::abort();
  if (d.status == Status::kUnsupported) std::abort();  // every name here is known
  if (encoding.empty()) {
    const bool cut = body.size() > bound;
    if (d.status != (cut ? Status::kCut : Status::kIdentity) || d.text != body.substr(0, bound)) std::abort();
    return 0;
  }
  if (d.status == Status::kIdentity) std::abort();
  // One coding is cut exactly at the bound; a stack may be cut in between.
  if (d.status == Status::kCut && !stacked && d.text.size() != bound) std::abort();

  // Below two bytes a stacked "deflate" cannot see the zlib header it would
  // with more, so only from there on is the larger result comparable.
  if (bound < 2) return 0;
  const DecodedBody more = decode_body(encoding, body, kLargerBound);
  if (more.text.size() > kLargerBound) std::abort();
  if (d.status != Status::kCut) {
    if (more.status != d.status || more.text != d.text) std::abort();
  } else if (std::string_view(more.text).substr(0, d.text.size()) != d.text) {
    std::abort();
  }
  return 0;
}
