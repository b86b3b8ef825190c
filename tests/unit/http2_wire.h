// HTTP/2 bytes as a real endpoint would send them, for tests: frames, and
// header blocks from nghttp2's own HPACK encoder (one per direction, so its
// dynamic table carries state from block to block like a real peer's).
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proto/http2/frames.h"

namespace clearcap::test {

using Bytes = std::vector<uint8_t>;

inline Bytes h2_frame(http2::FrameType type, uint8_t fl, uint32_t stream, const Bytes& payload) {
  Bytes out = {uint8_t(payload.size() >> 16), uint8_t(payload.size() >> 8), uint8_t(payload.size()),
               uint8_t(type), fl, uint8_t(stream >> 24), uint8_t(stream >> 16), uint8_t(stream >> 8),
               uint8_t(stream)};
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

inline Bytes h2_bytes(std::string_view s) { return Bytes(s.begin(), s.end()); }

inline void append(Bytes& to, const Bytes& b) { to.insert(to.end(), b.begin(), b.end()); }

class HpackEncoder {
 public:
  explicit HpackEncoder(size_t table = 4096) {
    if (nghttp2_hd_deflate_new(&def_, table) != 0) throw std::runtime_error("deflater");
  }
  ~HpackEncoder() { nghttp2_hd_deflate_del(def_); }
  HpackEncoder(const HpackEncoder&) = delete;
  HpackEncoder& operator=(const HpackEncoder&) = delete;

  Bytes block(const std::vector<std::pair<std::string, std::string>>& hs) {
    std::vector<nghttp2_nv> nv;
    for (const auto& [n, v] : hs)
      nv.push_back({(uint8_t*)n.data(), (uint8_t*)v.data(), n.size(), v.size(), NGHTTP2_NV_FLAG_NONE});
    Bytes buf(nghttp2_hd_deflate_bound(def_, nv.data(), nv.size()));
    const ssize_t n = nghttp2_hd_deflate_hd(def_, buf.data(), buf.size(), nv.data(), nv.size());
    if (n < 0) throw std::runtime_error("deflate");
    buf.resize(size_t(n));
    return buf;
  }

 private:
  nghttp2_hd_deflater* def_ = nullptr;
};

}  // namespace clearcap::test
