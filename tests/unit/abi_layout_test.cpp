// The BPF programs and userspace share these structs byte for byte; any
// change must be deliberate (and bump CC_ABI_VERSION).
#include <cstddef>

#include <gtest/gtest.h>

#include "clearcap_abi.h"

namespace {

#define EXPECT_FIELD(type, field, offset, size)          \
  do {                                                  \
    EXPECT_EQ(offsetof(type, field), size_t{offset});   \
    EXPECT_EQ(sizeof(type::field), size_t{size});       \
  } while (0)

TEST(AbiLayout, RecordHeader) {
  EXPECT_FIELD(cc_record_hdr, type, 0, 2);
  EXPECT_FIELD(cc_record_hdr, hdr_len, 2, 2);
  EXPECT_FIELD(cc_record_hdr, data_len, 4, 4);
  EXPECT_EQ(sizeof(cc_record_hdr), 8u);
}

TEST(AbiLayout, DataEvent) {
  EXPECT_FIELD(cc_data_event, hdr, 0, 8);
  EXPECT_FIELD(cc_data_event, pid, 8, 4);
  EXPECT_FIELD(cc_data_event, tid, 12, 4);
  EXPECT_FIELD(cc_data_event, uid, 16, 4);
  EXPECT_FIELD(cc_data_event, fd, 20, 4);
  EXPECT_FIELD(cc_data_event, ts_ns, 24, 8);
  EXPECT_FIELD(cc_data_event, cgroup_id, 32, 8);
  EXPECT_FIELD(cc_data_event, conn_id, 40, 8);
  EXPECT_FIELD(cc_data_event, seq, 48, 8);
  EXPECT_FIELD(cc_data_event, call_len, 56, 4);
  EXPECT_FIELD(cc_data_event, call_off, 60, 4);
  EXPECT_FIELD(cc_data_event, sport, 64, 2);
  EXPECT_FIELD(cc_data_event, dport, 66, 2);
  EXPECT_FIELD(cc_data_event, family, 68, 2);
  EXPECT_FIELD(cc_data_event, direction, 70, 1);
  EXPECT_FIELD(cc_data_event, source, 71, 1);
  EXPECT_FIELD(cc_data_event, flags, 72, 4);
  EXPECT_FIELD(cc_data_event, _pad0, 76, 4);
  EXPECT_FIELD(cc_data_event, saddr, 80, CC_ADDR_LEN);
  EXPECT_FIELD(cc_data_event, daddr, 96, CC_ADDR_LEN);
  EXPECT_FIELD(cc_data_event, comm, 112, CC_COMM_LEN);
  EXPECT_EQ(sizeof(cc_data_event), 128u);
  // Ring records are 8-byte aligned; the payload starts right after the
  // fixed part, so that part must keep 8-byte size too.
  EXPECT_EQ(alignof(cc_data_event), 8u);
  EXPECT_EQ(sizeof(cc_data_event) % 8, 0u);
}

TEST(AbiLayout, FilterCfg) {
  EXPECT_FIELD(cc_filter_cfg, flags, 0, 4);
  EXPECT_FIELD(cc_filter_cfg, uid, 4, 4);
  EXPECT_FIELD(cc_filter_cfg, cgroup_id, 8, 8);
  EXPECT_FIELD(cc_filter_cfg, generation, 16, 4);
  EXPECT_EQ(sizeof(cc_filter_cfg), 24u);
}

// Written by userspace into the fd_layouts map, read by tls.bpf.c's
// fd_from_ssl(); both sides compile this header, the test pins it.
TEST(AbiLayout, FdLayout) {
  EXPECT_FIELD(cc_fd_layout, valid, 0, 4);
  EXPECT_FIELD(cc_fd_layout, rbio_off, 4, 4);
  EXPECT_FIELD(cc_fd_layout, num_off, 8, 4);
  EXPECT_FIELD(cc_fd_layout, method_off, 12, 4);
  EXPECT_FIELD(cc_fd_layout, sock_type, 16, 4);
  EXPECT_EQ(sizeof(cc_fd_layout), 24u);
  EXPECT_EQ(CC_MAX_LAYOUTS, 256u);
}

TEST(AbiLayout, PacketEvent) {
  EXPECT_FIELD(cc_packet_event, hdr, 0, 8);
  EXPECT_FIELD(cc_packet_event, ifindex, 8, 4);
  EXPECT_FIELD(cc_packet_event, wire_len, 12, 4);
  EXPECT_FIELD(cc_packet_event, direction, 16, 1);
  EXPECT_FIELD(cc_packet_event, flags, 17, 1);
  // The processor reads every record's timestamp at this one offset.
  EXPECT_FIELD(cc_packet_event, ts_ns, offsetof(cc_data_event, ts_ns), 8);
  EXPECT_EQ(sizeof(cc_packet_event), 32u);
  // The tc program bounds the copy length with the mask 0xffff.
  EXPECT_EQ(CC_PACKET_MAX, 262144u);
  EXPECT_EQ(CC_REC_PACKET, 3);
}

TEST(AbiLayout, Constants) {
  // The BPF side bounds lengths for the verifier with the mask
  // CC_CHUNK_MAX * 2 - 1, which is a no-op for len <= CC_CHUNK_MAX only when
  // CC_CHUNK_MAX is a power of two.
  EXPECT_NE(CC_CHUNK_MAX, 0u);
  EXPECT_EQ(CC_CHUNK_MAX & (CC_CHUNK_MAX - 1), 0u);
  // Offsets within one call (call_off, call_len) are 32-bit.
  EXPECT_LE(uint64_t{CC_CHUNK_MAX} * CC_MAX_CHUNKS_PER_CALL, uint64_t{UINT32_MAX});
  EXPECT_EQ(CC_ADDR_LEN, 16);
  EXPECT_EQ(CC_COMM_LEN, 16);
  EXPECT_EQ(CC_DIR_WRITE, 0);
  EXPECT_EQ(CC_DIR_READ, 1);
  EXPECT_EQ(CC_REC_DATA, 1);
}

}  // namespace
