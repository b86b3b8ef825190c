#include "proto/http2/hpack.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <new>
#include <utility>

namespace clearcap::http2 {

HpackDecoder::HpackDecoder(bool from_start, Limits limits) : limits_(limits) {
  restart();
  known_ = from_start;
}

HpackDecoder::~HpackDecoder() {
  if (inf_) nghttp2_hd_inflate_del(inf_);
}

HpackDecoder::HpackDecoder(HpackDecoder&& o) noexcept
    : inf_(std::exchange(o.inf_, nullptr)), known_(o.known_), max_table_(o.max_table_), limits_(o.limits_) {}

HpackDecoder& HpackDecoder::operator=(HpackDecoder&& o) noexcept {
  if (this != &o) {
    if (inf_) nghttp2_hd_inflate_del(inf_);
    inf_ = std::exchange(o.inf_, nullptr);
    known_ = o.known_;
    max_table_ = o.max_table_;
    limits_ = o.limits_;
  }
  return *this;
}

void HpackDecoder::restart() {
  if (inf_) nghttp2_hd_inflate_del(inf_);
  inf_ = nullptr;
  if (nghttp2_hd_inflate_new(&inf_) != 0) throw std::bad_alloc();
  nghttp2_hd_inflate_change_table_size(inf_, max_table_);
  known_ = false;
}

bool HpackDecoder::set_max_table_size(size_t bytes) {
  const bool within = bytes <= kMaxTableBytes;
  max_table_ = std::min(bytes, kMaxTableBytes);
  // Between blocks (decode() always ends its block), so the inflater
  // accepts it; a failure would mean it is mid-block, which cannot be.
  if (nghttp2_hd_inflate_change_table_size(inf_, max_table_) != 0) restart();
  return within;
}

size_t HpackDecoder::table_bytes() const { return nghttp2_hd_inflate_get_dynamic_table_size(inf_); }

HpackDecoder::Status HpackDecoder::decode(std::span<const uint8_t> block, std::vector<Header>& out) {
  out.clear();
  const uint8_t* in = block.data();
  size_t left = block.size();
  size_t list_bytes = 0;
  // With a known state a failing block is broken; with an unknown one it
  // may only refer to entries this decoder never saw.
  auto fail = [&] {
    const Status s = known_ ? Status::kInvalid : Status::kUnknownState;
    out.clear();
    restart();
    return s;
  };
  for (;;) {
    nghttp2_nv nv{};
    int flags = 0;
    const ssize_t n = nghttp2_hd_inflate_hd2(inf_, &nv, &flags, in, left, /*in_final=*/1);
    if (n < 0) return fail();  // an index past the table, a bad size update, bad Huffman
    in += n;
    left -= static_cast<size_t>(n);
    if (flags & NGHTTP2_HD_INFLATE_EMIT) {
      list_bytes += nv.namelen + nv.valuelen + 32;
      if (list_bytes > limits_.max_list_bytes || out.size() >= limits_.max_headers) {
        out.clear();
        restart();  // the rest of the block is not read: its table changes are lost
        return Status::kInvalid;
      }
      out.push_back({std::string(reinterpret_cast<const char*>(nv.name), nv.namelen),
                     std::string(reinterpret_cast<const char*>(nv.value), nv.valuelen),
                     (nv.flags & NGHTTP2_NV_FLAG_NO_INDEX) != 0});
    }
    if (flags & NGHTTP2_HD_INFLATE_FINAL) {
      nghttp2_hd_inflate_end_headers(inf_);
      return Status::kSuccess;
    }
    if (n == 0 && !(flags & NGHTTP2_HD_INFLATE_EMIT)) return fail();  // no progress on a final input: truncated
  }
}

}  // namespace clearcap::http2
