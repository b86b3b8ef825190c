// pcapng block layout: lengths at both ends, 4-byte padding, option codes.
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "sinks/encoders/pcapng_blocks.h"

namespace {

using namespace clearcap;

uint32_t u32(const std::string& s, size_t off) {
  uint32_t v;
  std::memcpy(&v, s.data() + off, 4);
  return v;
}
uint16_t u16(const std::string& s, size_t off) {
  uint16_t v;
  std::memcpy(&v, s.data() + off, 2);
  return v;
}

TEST(PcapngBlocks, DecryptionSecretsBlockPadsAndCountsLengths) {
  for (size_t n = 0; n <= 9; ++n) {
    std::string secrets(n, 'k');
    std::string out;
    pcapng::put_dsb(out, pcapng::kSecretsTls, secrets);
    const size_t padded = (n + 3) / 4 * 4;
    ASSERT_EQ(out.size(), 20 + padded) << n;
    EXPECT_EQ(u32(out, 0), 0x0000000Au);
    EXPECT_EQ(u32(out, 4), out.size());
    EXPECT_EQ(u32(out, 8), 0x544c534bu);  // 'TLSK'
    EXPECT_EQ(u32(out, 12), n);           // unpadded secrets length
    EXPECT_EQ(out.substr(16, n), secrets);
    for (size_t i = 16 + n; i < 16 + padded; ++i) EXPECT_EQ(out[i], '\0');
    EXPECT_EQ(u32(out, out.size() - 4), out.size());
  }
}

TEST(PcapngBlocks, InterfaceDescriptionCarriesNameAndNanosecondResolution) {
  std::string out;
  pcapng::put_idb(out, pcapng::kLinktypeEthernet, 65535, "eth0x");
  EXPECT_EQ(u32(out, 0), 1u);
  EXPECT_EQ(u32(out, 4), out.size());
  EXPECT_EQ(out.size() % 4, 0u);
  EXPECT_EQ(u16(out, 8), 1);  // LINKTYPE_ETHERNET
  EXPECT_EQ(u32(out, 12), 65535u);
  // if_name: code 2, length 5, "eth0x", 3 bytes padding.
  EXPECT_EQ(u16(out, 16), 2);
  EXPECT_EQ(u16(out, 18), 5);
  EXPECT_EQ(out.substr(20, 5), "eth0x");
  EXPECT_EQ(out.substr(25, 3), std::string(3, '\0'));
  // if_tsresol: code 9, length 1, value 9 (10^-9 s).
  EXPECT_EQ(u16(out, 28), 9);
  EXPECT_EQ(u16(out, 30), 1);
  EXPECT_EQ(out[32], 9);
  EXPECT_EQ(u32(out, 36), 0u);  // opt_endofopt
  EXPECT_EQ(u32(out, out.size() - 4), out.size());
}

TEST(PcapngBlocks, EnhancedPacketWithCommentAndFlags) {
  const uint8_t data[5] = {1, 2, 3, 4, 5};
  std::string out;
  const uint64_t ts = 0x123456789abcdefull;
  pcapng::put_epb(out, 0, ts, data, 1500, "pid=1 comm=x", pcapng::kEpbInbound);
  EXPECT_EQ(u32(out, 0), 6u);
  EXPECT_EQ(u32(out, 4), out.size());
  EXPECT_EQ(u32(out, 12), static_cast<uint32_t>(ts >> 32));
  EXPECT_EQ(u32(out, 16), static_cast<uint32_t>(ts));
  EXPECT_EQ(u32(out, 20), 5u);     // captured
  EXPECT_EQ(u32(out, 24), 1500u);  // on the wire
  // data 5 + 3 padding, then opt_comment (code 1, len 12), epb_flags, end.
  EXPECT_EQ(u16(out, 36), 1);
  EXPECT_EQ(u16(out, 38), 12);
  EXPECT_EQ(out.substr(40, 12), "pid=1 comm=x");
  EXPECT_EQ(u16(out, 52), 2);
  EXPECT_EQ(u32(out, 56), 1u);
  EXPECT_EQ(u32(out, 60), 0u);
  EXPECT_EQ(out.size(), 68u);
  // Without options there is no end-of-options word.
  std::string bare;
  pcapng::put_epb(bare, 0, ts, data, 5);
  EXPECT_EQ(bare.size(), 12u + 20 + 8);
  EXPECT_EQ(u32(bare, bare.size() - 4), bare.size());
}

}  // namespace
