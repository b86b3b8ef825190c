// One direction of an HTTP/2 connection through the framer and HPACK: the
// first input byte chooses from-start or picked-up-mid-way and where the
// stream is cut (split delivery, and a gap), the rest is the byte stream.
// Invariants: the framer's buffer stays bounded, every header block it
// hands over is within its limit, and the HPACK decoder's table within the
// size it was given.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "proto/http2/frames.h"
#include "proto/http2/hpack.h"

using namespace clearcap::http2;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  const std::span<const uint8_t> in(data + 1, size - 1);
  const bool from_start = mode & 1;
  const FramerLimits limits{.max_frame_bytes = 16384, .max_header_block_bytes = 8192};
  Framer framer(from_start, limits);
  HpackDecoder hpack(from_start, HpackLimits{.max_list_bytes = 16384, .max_headers = 256});
  const size_t cut = in.empty() ? 0 : (mode >> 1) % (in.size() + 1);
  std::vector<Header> headers;
  auto drain = [&] {
    Frame f;
    for (;;) {
      auto s = framer.next(f);
      if (s == Framer::State::kNeedsMoreData) return;
      if (s == Framer::State::kInvalid) continue;
      if (f.payload.size() > limits.max_header_block_bytes + limits.max_frame_bytes) std::abort();
      if (f.type == FrameType::kHeaders || f.type == FrameType::kPushPromise) hpack.decode(f.payload, headers);
      if (f.type == FrameType::kSettings && f.stream_id != 0) std::abort();
      if (hpack.table_bytes() > HpackDecoder::kDefaultTableBytes) std::abort();
    }
  };
  framer.feed(in.first(cut));
  drain();
  if (mode & 0x80) framer.gap();
  framer.feed(in.subspan(cut));
  drain();
  // Nothing complete is left behind, and what is buffered is bounded.
  if (framer.buffered() > limits.max_frame_bytes + kFrameHeaderBytes + in.size()) std::abort();
  return 0;
}
