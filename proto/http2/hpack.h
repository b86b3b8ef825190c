// HPACK (RFC 7541) for one direction of one HTTP/2 connection: the header
// blocks one endpoint's encoder sends, decoded with nghttp2's inflater. The
// dynamic table carries state from block to block, so a decoder lives as
// long as its connection and sees every block of its direction in order.
//
// Picked up mid-connection, the encoder's table holds entries this decoder
// never saw. Entries added since the decoder started are exactly the
// encoder's newest ones (each new entry goes in at index 62, and the
// encoder evicts its oldest entries first), so an index into them decodes
// right; an index past them fails in the inflater. A block that fails there
// is reported as kUnknownState - "headers that cannot be decoded" - and
// never as guessed values. After any failure the inflater starts over
// (nghttp2 cannot resume one), so its state is unknown again.
//
// Bounded: the table by the size the receiver announced (at most
// kMaxTableBytes, whatever SETTINGS says), a block's header list by
// Limits; what exceeds them is kInvalid and counted by the caller.
// Thread: one owner (the processor thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

struct nghttp2_hd_inflater;

namespace clearcap::http2 {

struct Header {
  std::string name, value;
  bool never_indexed = false;  // sent as "never indexed" (RFC 7541 6.2.3): a secret, by the sender's own account
};

struct HpackLimits {
  size_t max_list_bytes = 256 * 1024;  // RFC 7541 4.1 sizes (name + value + 32 each)
  size_t max_headers = 1024;
};

class HpackDecoder {
 public:
  enum class Status {
    kSuccess,       // every header of the block decoded
    kUnknownState,  // the block needs table entries from before this decoder's state was known
    kInvalid,       // not HPACK, or beyond the limits
  };
  using Limits = HpackLimits;
  static constexpr size_t kDefaultTableBytes = 4096;     // RFC 7540 6.5.2 default
  static constexpr size_t kMaxTableBytes = 1024 * 1024;  // what any SETTINGS may ask of us

  // `from_start`: the decoder sees the connection's first block (its table
  // state is known); false when the connection was picked up mid-way.
  explicit HpackDecoder(bool from_start, Limits limits = {});
  ~HpackDecoder();
  HpackDecoder(HpackDecoder&& o) noexcept;
  HpackDecoder& operator=(HpackDecoder&& o) noexcept;
  HpackDecoder(const HpackDecoder&) = delete;
  HpackDecoder& operator=(const HpackDecoder&) = delete;

  // Decodes one complete header block (a HEADERS or PUSH_PROMISE fragment
  // with its CONTINUATIONs joined). `out` holds the headers on kSuccess and
  // is empty otherwise.
  Status decode(std::span<const uint8_t> block, std::vector<Header>& out);
  // SETTINGS_HEADER_TABLE_SIZE from the receiving end of this direction,
  // once acknowledged. False when it was more than kMaxTableBytes (the cap
  // is used instead).
  bool set_max_table_size(size_t bytes);

  bool state_known() const { return known_; }
  // Bytes in the dynamic table (RFC 7541 4.1 sizes).
  size_t table_bytes() const;

 private:
  void restart();  // a fresh inflater with the announced table size; state unknown
  nghttp2_hd_inflater* inf_ = nullptr;
  bool known_ = false;
  size_t max_table_ = kDefaultTableBytes;
  Limits limits_;
};

}  // namespace clearcap::http2
