/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Packet records: -m pcap, from the tc programs (packet.bpf.c). */
#ifndef CLEARCAP_ABI_PACKET_H
#define CLEARCAP_ABI_PACKET_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif
#include "record.h"

/* Bytes of one packet a record carries at most (the largest --snaplen, as
 * tcpdump's): GSO/GRO packets on lo reach 128 KiB and more. A longer packet
 * is cut to the snap length and marked CC_PKT_TRUNCATED; its wire length
 * stays in the record. */
#define CC_PACKET_MAX 262144u

/* The largest packet record a perf event array carries (--buffer perf): a
 * perf record's size is 16 bits. */
#define CC_PACKET_MAX_PERF 65400u

/* cc_packet_event.direction */
enum cc_pkt_direction {
	CC_PKT_EGRESS = 0,  /* leaving the interface (sent) */
	CC_PKT_INGRESS = 1, /* arriving on the interface (received) */
};

/* cc_packet_event.flags */
#define CC_PKT_TRUNCATED (1u << 0) /* cut to the snap length: data_len < wire_len */

/*
 * One packet seen by the tc program on an interface (-m pcap). Record =
 * struct cc_packet_event, then data_len bytes from the link-layer header on
 * (Ethernet on Ethernet devices and on lo). New record type, no existing
 * layout changed: CC_ABI_VERSION stays.
 */
struct cc_packet_event {
	struct cc_record_hdr hdr; /* data_len = captured bytes, <= CC_PACKET_MAX */
	__u32 ifindex;            /* interface the packet was seen on */
	__u32 wire_len;           /* skb->len: the whole packet, captured or not */
	__u8 direction;           /* enum cc_pkt_direction */
	__u8 flags;               /* CC_PKT_* */
	__u16 _pad0;
	__u32 _pad1;
	__u64 ts_ns;              /* bpf_ktime_get_boot_ns() in the tc program; same offset as in
	                           * cc_data_event: the processor merges by it */
};

#endif /* CLEARCAP_ABI_PACKET_H */
