// HpackDecoder against RFC 7541 Appendix C (requests with and without
// Huffman coding, responses with evictions in a 256-byte table), a
// connection picked up mid-way (blocks needing unseen entries are reported
// as such, never as guessed values), broken blocks and the list limit.
#include "proto/http2/hpack.h"

#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <string>
#include <utility>
#include <vector>

namespace clearcap::http2 {
namespace {

std::vector<uint8_t> hex(std::string_view s) {
  std::vector<uint8_t> out;
  int hi = -1;
  for (char c : s) {
    int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (v < 0) continue;
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(static_cast<uint8_t>(hi << 4 | v));
      hi = -1;
    }
  }
  return out;
}

using Pairs = std::vector<std::pair<std::string, std::string>>;

Pairs pairs(const std::vector<Header>& hs) {
  Pairs out;
  for (const auto& h : hs) out.emplace_back(h.name, h.value);
  return out;
}

const Pairs kReq1 = {{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {":authority", "www.example.com"}};
const Pairs kReq2 = {{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {":authority", "www.example.com"},
                     {"cache-control", "no-cache"}};
const Pairs kReq3 = {{":method", "GET"}, {":scheme", "https"}, {":path", "/index.html"},
                     {":authority", "www.example.com"}, {"custom-key", "custom-value"}};

void expect_block(HpackDecoder& d, std::string_view block_hex, const Pairs& want, size_t table) {
  std::vector<Header> out;
  ASSERT_EQ(d.decode(hex(block_hex), out), HpackDecoder::Status::kSuccess) << block_hex;
  EXPECT_EQ(pairs(out), want);
  EXPECT_EQ(d.table_bytes(), table);
}

TEST(Hpack, Rfc7541C3RequestsWithoutHuffman) {
  HpackDecoder d(true);
  expect_block(d, "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d", kReq1, 57);
  expect_block(d, "8286 84be 5808 6e6f 2d63 6163 6865", kReq2, 110);
  expect_block(d, "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65", kReq3, 164);
}

TEST(Hpack, Rfc7541C4RequestsWithHuffman) {
  HpackDecoder d(true);
  expect_block(d, "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff", kReq1, 57);
  expect_block(d, "8286 84be 5886 a8eb 1064 9cbf", kReq2, 110);
  expect_block(d, "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf", kReq3, 164);
}

TEST(Hpack, Rfc7541C5ResponsesEvictInASmallTable) {
  // The receiver announced 256 bytes (SETTINGS_HEADER_TABLE_SIZE); a
  // smaller table than the default must be signalled by the encoder, so the
  // first block starts with a dynamic table size update to 256 (3f e1 01),
  // then RFC 7541 C.5.1 as printed there.
  HpackDecoder d(true);
  ASSERT_TRUE(d.set_max_table_size(256));
  const std::string date1 = "Mon, 21 Oct 2013 20:13:21 GMT", loc = "https://www.example.com";
  expect_block(d,
               "3fe1 01 4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 "
               "3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
               {{":status", "302"}, {"cache-control", "private"}, {"date", date1}, {"location", loc}}, 222);
  expect_block(d, "4803 3330 37c1 c0bf",
               {{":status", "307"}, {"cache-control", "private"}, {"date", date1}, {"location", loc}}, 222);
  expect_block(d,
               "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a "
               "6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d "
               "6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31",
               {{":status", "200"},
                {"cache-control", "private"},
                {"date", "Mon, 21 Oct 2013 20:13:22 GMT"},
                {"location", loc},
                {"content-encoding", "gzip"},
                {"set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"}},
               215);
}

TEST(Hpack, PickedUpMidConnectionReportsWhatItCannotDecode) {
  // The capture starts at the second request: its ":authority" is index 62
  // of the encoder's table, an entry this decoder never saw.
  HpackDecoder d(false);
  std::vector<Header> out;
  EXPECT_EQ(d.decode(hex("8286 84be 5808 6e6f 2d63 6163 6865"), out), HpackDecoder::Status::kUnknownState);
  EXPECT_TRUE(out.empty());
  EXPECT_FALSE(d.state_known());
  // A block of static entries and literals decodes whatever came before.
  expect_block(d, "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d", kReq1, 57);
  // And an entry added since then decodes by its index (62).
  expect_block(d, "8286 84be", {{":method", "GET"}, {":scheme", "http"}, {":path", "/"},
                                {":authority", "www.example.com"}}, 57);
}

TEST(Hpack, AnEncodersBlocksDecodeFromTheStartAndOnlyPartlyFromTheMiddle) {
  nghttp2_hd_deflater* def = nullptr;
  ASSERT_EQ(nghttp2_hd_deflate_new(&def, 4096), 0);
  auto deflate = [&](const Pairs& hs) {
    std::vector<nghttp2_nv> nv;
    for (const auto& [n, v] : hs)
      nv.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(n.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(),
                    NGHTTP2_NV_FLAG_NONE});
    std::vector<uint8_t> buf(nghttp2_hd_deflate_bound(def, nv.data(), nv.size()));
    ssize_t n = nghttp2_hd_deflate_hd(def, buf.data(), buf.size(), nv.data(), nv.size());
    EXPECT_GE(n, 0);
    buf.resize(static_cast<size_t>(std::max<ssize_t>(n, 0)));
    return buf;
  };
  // Blocks 0-9 all name one authority; blocks 10-19 another, first sent
  // in block 10, with paths and a header name never sent before (a name
  // seen earlier would be sent as an index to the earlier entry).
  std::vector<std::vector<uint8_t>> blocks;
  std::vector<Pairs> sent;
  for (int i = 0; i < 20; ++i) {
    const bool second = i >= 10;
    sent.push_back({{":method", "GET"},
                    {":path", (second ? "/other/" : "/item/") + std::to_string(i % 5)},
                    {":authority", second ? "api.example" : "shop.example"},
                    {second ? "x-span" : "x-trace", "t" + std::to_string(i)}});
    blocks.push_back(deflate(sent.back()));
  }
  nghttp2_hd_deflate_del(def);

  HpackDecoder whole(true);
  for (size_t i = 0; i < blocks.size(); ++i) {
    std::vector<Header> out;
    ASSERT_EQ(whole.decode(blocks[i], out), HpackDecoder::Status::kSuccess) << i;
    EXPECT_EQ(pairs(out), sent[i]) << i;
  }
  // From block 3 on: every block either decodes to exactly what was sent or
  // says it cannot; never other values.
  HpackDecoder middle(false);
  size_t decoded = 0, unknown = 0;
  for (size_t i = 3; i < blocks.size(); ++i) {
    std::vector<Header> out;
    auto s = middle.decode(blocks[i], out);
    ASSERT_NE(s, HpackDecoder::Status::kInvalid) << i;
    if (s == HpackDecoder::Status::kSuccess) {
      EXPECT_EQ(pairs(out), sent[i]) << i;
      ++decoded;
    } else {
      EXPECT_TRUE(out.empty());
      ++unknown;
    }
  }
  EXPECT_EQ(unknown, 7u) << "blocks 3-9 need the first authority's entry";
  EXPECT_EQ(decoded, 10u) << "block 10 is new literals, and 11-19 need only entries added since";
}

TEST(Hpack, BrokenBlocksAndOversizeListsAreInvalidAndTheDecoderGoesOn) {
  HpackDecoder d(true);
  std::vector<Header> out;
  EXPECT_EQ(d.decode(hex("ff ff ff ff ff ff ff ff ff 7f"), out), HpackDecoder::Status::kInvalid);  // index overflow
  // After a failure the table state is unknown: index 62 may be an entry
  // the failed block added.
  EXPECT_EQ(d.decode(hex("be"), out), HpackDecoder::Status::kUnknownState);
  expect_block(d, "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d", kReq1, 57);

  HpackDecoder small(true, {.max_list_bytes = 100, .max_headers = 1024});
  // C.3.1's third header takes the list past 100 bytes (42 + 43 + 38).
  EXPECT_EQ(small.decode(hex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d"), out),
            HpackDecoder::Status::kInvalid);
  EXPECT_TRUE(out.empty());
}

TEST(Hpack, ATableSizeBeyondTheCapIsCapped) {
  HpackDecoder d(true);
  EXPECT_FALSE(d.set_max_table_size(1u << 30));
  EXPECT_TRUE(d.set_max_table_size(HpackDecoder::kMaxTableBytes));
}

TEST(Hpack, NeverIndexedLiteralsAreMarked) {
  HpackDecoder d(true);
  std::vector<Header> out;
  // RFC 7541 C.2.3: a literal never indexed, "password: secret".
  ASSERT_EQ(d.decode(hex("1008 7061 7373 776f 7264 0673 6563 7265 74"), out), HpackDecoder::Status::kSuccess);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].name, "password");
  EXPECT_EQ(out[0].value, "secret");
  EXPECT_TRUE(out[0].never_indexed);
  EXPECT_EQ(d.table_bytes(), 0u);
}

}  // namespace
}  // namespace clearcap::http2
