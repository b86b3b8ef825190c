// The HTTP/2 framer: every frame type, padding and priority removed, header
// blocks joined across CONTINUATIONs, input split at every byte, a stream
// picked up mid-frame, a gap, and the limits (a huge frame, a flood of tiny
// CONTINUATIONs, a frame between a block's fragments).
#include "proto/http2/frames.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "proto/http2/hpack.h"

namespace clearcap::http2 {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes frame(FrameType type, uint8_t fl, uint32_t stream, const Bytes& payload) {
  Bytes out = {uint8_t(payload.size() >> 16), uint8_t(payload.size() >> 8), uint8_t(payload.size()),
               uint8_t(type),                 fl,
               uint8_t(stream >> 24),         uint8_t(stream >> 16),         uint8_t(stream >> 8),
               uint8_t(stream)};
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

Bytes text(std::string_view s) { return Bytes(s.begin(), s.end()); }

// RFC 7541 C.3.1: GET http://www.example.com/ as an HPACK block.
const Bytes kBlock = {0x82, 0x86, 0x84, 0x41, 0x0f, 0x77, 0x77, 0x77, 0x2e, 0x65, 0x78,
                      0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x63, 0x6f, 0x6d};

// A connection's server-bound frames after the preface.
Bytes conversation() {
  Bytes padded_data = {3};  // pad length 3
  auto body = text("hello");
  padded_data.insert(padded_data.end(), body.begin(), body.end());
  padded_data.insert(padded_data.end(), {0, 0, 0});
  Bytes headers_prio = {0x80, 0, 0, 0, 16};  // exclusive dependency on 0, weight 16
  headers_prio.insert(headers_prio.end(), kBlock.begin(), kBlock.begin() + 8);
  const Bytes rest(kBlock.begin() + 8, kBlock.end());
  return cat({frame(FrameType::kSettings, 0, 0, {0, 4, 0, 1, 0, 0}),
              frame(FrameType::kWindowUpdate, 0, 0, {0, 0x0f, 0, 1}),
              frame(FrameType::kHeaders, flags::kPriority, 1, headers_prio),
              frame(FrameType::kContinuation, flags::kEndHeaders, 1, rest),
              frame(FrameType::kData, flags::kPadded | flags::kEndStream, 1, padded_data),
              frame(FrameType::kPing, 0, 0, text("12345678")),
              frame(FrameType::kPriority, 0, 3, {0, 0, 0, 1, 200}),
              frame(FrameType::kRstStream, 0, 3, {0, 0, 0, 8}),
              frame(FrameType::kGoaway, 0, 0, {0, 0, 0, 1, 0, 0, 0, 0})});
}

struct Seen {
  FrameType type;
  uint32_t stream;
  Bytes payload;
  bool operator==(const Seen&) const = default;
};

std::vector<Seen> drain(Framer& f, int* invalid = nullptr) {
  std::vector<Seen> out;
  Frame fr;
  for (;;) {
    auto s = f.next(fr);
    if (s == Framer::State::kNeedsMoreData) return out;
    if (s == Framer::State::kInvalid) {
      if (invalid) ++*invalid;
      continue;
    }
    out.push_back({fr.type, fr.stream_id, fr.payload});
  }
}

const std::vector<Seen> kExpected = {
    {FrameType::kSettings, 0, {0, 4, 0, 1, 0, 0}},
    {FrameType::kWindowUpdate, 0, {0, 0x0f, 0, 1}},
    {FrameType::kHeaders, 1, kBlock},
    {FrameType::kData, 1, {'h', 'e', 'l', 'l', 'o'}},
    {FrameType::kPing, 0, {'1', '2', '3', '4', '5', '6', '7', '8'}},
    {FrameType::kPriority, 3, {0, 0, 0, 1, 200}},
    {FrameType::kRstStream, 3, {0, 0, 0, 8}},
    {FrameType::kGoaway, 0, {0, 0, 0, 1, 0, 0, 0, 0}},
};

TEST(Http2Frames, EveryTypeWithPaddingPriorityAndContinuationsRemoved) {
  Framer f(true);
  f.feed(conversation());
  EXPECT_EQ(drain(f), kExpected);
  EXPECT_EQ(f.buffered(), 0u);
}

TEST(Http2Frames, TheHeaderBlockDecodes) {
  Framer f(true);
  f.feed(conversation());
  auto frames = drain(f);
  ASSERT_GE(frames.size(), 3u);
  HpackDecoder d(true);
  std::vector<Header> hs;
  ASSERT_EQ(d.decode(frames[2].payload, hs), HpackDecoder::Status::kSuccess);
  ASSERT_EQ(hs.size(), 4u);
  EXPECT_EQ(hs[3].value, "www.example.com");
}

TEST(Http2Frames, SplitAtEveryByteGivesTheSameFrames) {
  const Bytes all = conversation();
  for (size_t cut = 1; cut < all.size(); ++cut) {
    Framer f(true);
    f.feed(std::span(all).first(cut));
    auto got = drain(f);
    f.feed(std::span(all).subspan(cut));
    auto more = drain(f);
    got.insert(got.end(), more.begin(), more.end());
    ASSERT_EQ(got, kExpected) << "cut at " << cut;
  }
  Framer f(true);
  std::vector<Seen> got;
  for (uint8_t b : all) {
    f.feed(std::span(&b, 1));
    auto more = drain(f);
    got.insert(got.end(), more.begin(), more.end());
  }
  EXPECT_EQ(got, kExpected);
}

TEST(Http2Frames, PickedUpMidFrameFindsTheFramesThatFollow) {
  const Bytes all = conversation();
  // Start inside the HEADERS frame (after SETTINGS 15 + WINDOW_UPDATE 13
  // bytes, 4 bytes in): its CONTINUATION is skipped, the rest is exact.
  Framer f(false);
  f.feed(std::span(all).subspan(15 + 13 + 4));
  int invalid = 0;
  auto got = drain(f, &invalid);
  EXPECT_EQ(invalid, 0);
  EXPECT_EQ(got, std::vector<Seen>(kExpected.begin() + 3, kExpected.end()));
}

TEST(Http2Frames, AGapNeverTurnsBytesIntoFrames) {
  const Bytes all = conversation();
  for (size_t lost_from = 0; lost_from < all.size(); lost_from += 7) {
    for (size_t lost = 1; lost < 40 && lost_from + lost < all.size(); lost += 13) {
      Framer f(true);
      f.feed(std::span(all).first(lost_from));
      auto got = drain(f);
      f.gap();
      f.feed(std::span(all).subspan(lost_from + lost));
      auto more = drain(f);
      got.insert(got.end(), more.begin(), more.end());
      // Every frame reported is one that was sent.
      for (const auto& s : got)
        ASSERT_NE(std::find(kExpected.begin(), kExpected.end(), s), kExpected.end())
            << "lost " << lost << " at " << lost_from;
    }
  }
}

TEST(Http2Frames, LimitsHold) {
  {  // a frame longer than SETTINGS_MAX_FRAME_SIZE
    Framer f(true);
    f.feed(frame(FrameType::kData, 0, 1, Bytes(20000, 'x')));
    Frame fr;
    EXPECT_EQ(f.next(fr), Framer::State::kInvalid);
  }
  {  // 10 000 tiny CONTINUATIONs: the block limit stops them, memory stays bounded
    Framer f(true, {.max_frame_bytes = 16384, .max_header_block_bytes = 4096});
    f.feed(frame(FrameType::kHeaders, 0, 1, {0x82}));
    int invalid = 0;
    for (int i = 0; i < 10000; ++i) {
      f.feed(frame(FrameType::kContinuation, 0, 1, {0x82}));
      drain(f, &invalid);
      ASSERT_LT(f.buffered(), 4096u + 100);
    }
    EXPECT_GE(invalid, 1);
  }
  {  // a frame of another stream inside a header block is a protocol error
    Framer f(true);
    f.feed(cat({frame(FrameType::kHeaders, 0, 1, {0x82}), frame(FrameType::kData, 0, 1, text("x")),
                frame(FrameType::kContinuation, flags::kEndHeaders, 1, {0x86})}));
    int invalid = 0;
    drain(f, &invalid);
    EXPECT_GE(invalid, 1);
  }
}

TEST(Http2Frames, PushPromiseCarriesThePromisedStream) {
  Bytes p = {2, 0, 0, 0, 4};  // pad 2, promised stream 4
  p.insert(p.end(), kBlock.begin(), kBlock.end());
  p.insert(p.end(), {0, 0});
  Framer f(true);
  f.feed(frame(FrameType::kPushPromise, flags::kPadded | flags::kEndHeaders, 1, p));
  Frame fr;
  ASSERT_EQ(f.next(fr), Framer::State::kFrame);
  EXPECT_EQ(fr.type, FrameType::kPushPromise);
  EXPECT_EQ(fr.promised_stream_id, 4u);
  EXPECT_EQ(fr.payload, kBlock);
}

}  // namespace
}  // namespace clearcap::http2
