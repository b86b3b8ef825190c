/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What every ring record and capture-file record starts with.
 *
 * The rule of every header in bpf/abi/: an existing record layout never
 * changes. A new field means a new record type (a new cc_record_type value
 * and struct): capture files keep the raw records forever, and a reader of
 * any later version must decode every record ever written. Layouts are
 * checked by static asserts (clearcap_abi.h, both compilers) and by
 * tests/unit/abi_layout_test.
 */
#ifndef CLEARCAP_ABI_RECORD_H
#define CLEARCAP_ABI_RECORD_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define CC_ABI_VERSION 2

#define CC_COMM_LEN 16
#define CC_ADDR_LEN 16

/* cc_record_hdr.type */
enum cc_record_type {
	CC_REC_DATA = 1, /* struct cc_data_event + payload */
	CC_REC_KEYS = 2, /* struct cc_keys_event, no payload */
	CC_REC_PACKET = 3, /* struct cc_packet_event + captured packet bytes (tc, -m pcap) */
};

/* Every ring record starts with this header. */
struct cc_record_hdr {
	__u16 type;     /* enum cc_record_type */
	__u16 hdr_len;  /* size of the type's fixed struct (includes this header) */
	__u32 data_len; /* payload bytes following the fixed struct */
};

#endif /* CLEARCAP_ABI_RECORD_H */
