/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Keys records: the secrets of a completed handshake (tls). */
#ifndef CLEARCAP_ABI_KEYS_H
#define CLEARCAP_ABI_KEYS_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif
#include "record.h"

/*
 * TLS secrets, read from the library's SSL object when a handshake completes.
 *
 * Where each item lives is learned at start-up (core/key_layout.cpp) by
 * running handshakes inside the very library file and searching its objects
 * for secrets the library itself reported: no per-version offset table.
 */
enum cc_key_item {
	CC_KEY_CLIENT_RANDOM = 0,  /* 32 bytes */
	CC_KEY_MASTER,             /* TLS 1.2 master secret, 48 bytes */
	CC_KEY_CLIENT_HS_TRAFFIC,  /* TLS 1.3 secrets, hash length (32 or 48) ... */
	CC_KEY_SERVER_HS_TRAFFIC,  /* ... the two handshake ones only where the library keeps them */
	CC_KEY_CLIENT_APP_TRAFFIC,
	CC_KEY_SERVER_APP_TRAFFIC,
	CC_KEY_EXPORTER,
	CC_KEY_HANDSHAKE_SECRET,   /* TLS 1.3 handshake secret: the handshake traffic secrets */
	CC_KEY_HANDSHAKE_HASH,     /* are derived from it and this transcript hash when not kept */
	CC_KEY_VERSION,            /* negotiated protocol version (int, 4 bytes: 0x0303, 0x0304) */
	CC_KEY__COUNT,
};

#define CC_KEY_SECRET_MAX 64 /* EVP_MAX_MD_SIZE: bytes read per item at most */
#define CC_KEY_MAX_DEPTH 3   /* pointers followed from the SSL object at most */

/* Where one item lives: follow `depth` pointers (each at off[i] of the object
 * reached so far), then read len bytes at off[depth]. len 0 = not known. */
struct cc_key_path {
	__u8 depth;     /* pointers to follow, <= CC_KEY_MAX_DEPTH */
	__u8 len;       /* bytes to read, <= CC_KEY_SECRET_MAX; 0 = item absent */
	__u16 _pad;
	__u32 off[CC_KEY_MAX_DEPTH + 1]; /* byte offsets, see above */
};

/* One library's layout (ARRAY "key_layouts", index = the uprobe's bpf cookie). */
struct cc_key_layout {
	struct cc_key_path items[CC_KEY__COUNT]; /* index = enum cc_key_item */
};

/* A completed handshake's secrets, as found in the library object. */
struct cc_keys_event {
	struct cc_record_hdr hdr;       /* data_len = 0 */
	__u32 pid;                      /* tgid */
	__u32 tid;
	__u64 conn_id;                  /* as in cc_data_event, 0 when unknown */
	__u64 ts_ns;                    /* bpf_ktime_get_boot_ns() at the handshake's return; same
	                                 * offset as in cc_data_event: the processor merges by it */
	__u32 present;                  /* bit per enum cc_key_item: read successfully */
	__u32 failed;                   /* bit per enum cc_key_item: in the layout but unreadable */
	__u16 family;                   /* AF_INET / AF_INET6, 0 when unknown */
	__u16 sport;                    /* local port, host byte order */
	__u16 dport;                    /* peer port, host byte order */
	__u16 _pad0;
	__u8 laddr[CC_ADDR_LEN];        /* local address, network order */
	__u8 raddr[CC_ADDR_LEN];        /* peer address */
	char comm[CC_COMM_LEN];
	__u8 items[CC_KEY__COUNT][CC_KEY_SECRET_MAX]; /* index = enum cc_key_item; unused bytes zero */
};

#endif /* CLEARCAP_ABI_KEYS_H */
