/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Data records: plaintext a library call transferred (every stream module). */
#ifndef CLEARCAP_ABI_DATA_H
#define CLEARCAP_ABI_DATA_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif
#include "record.h"

/* Payload bytes carried by one record at most. A larger SSL_read/SSL_write is
 * split into several records (chunks), each with its byte offset. */
#define CC_CHUNK_MAX 16384u
/* Maximum chunks emitted for one library call; bytes beyond are counted as
 * lost (CC_STAT_CHUNK_LIMIT_BYTES). 512 x 16 KiB = 8 MiB per call. */
#define CC_MAX_CHUNKS_PER_CALL 512u


/* cc_data_event.direction */
enum cc_direction {
	CC_DIR_WRITE = 0, /* the process wrote (sent) plaintext */
	CC_DIR_READ = 1,  /* the process read (received) plaintext */
};

/* cc_data_event.source: which library function produced the bytes.
 * Append-only: capture files keep these numbers forever. Each module owns a
 * block (its name and the function names are in its ModuleInfo). */
enum cc_source {
	/* tls: OpenSSL/BoringSSL */
	CC_SRC_SSL_WRITE = 0,
	CC_SRC_SSL_READ = 1,
	CC_SRC_SSL_WRITE_EX = 2,
	CC_SRC_SSL_READ_EX = 3,
	CC_SRC_HANDSHAKE = 4, /* a handshake call: learns the fd, emits nothing (any module) */
	/* The function SSL_write and SSL_write_ex (SSL_read and SSL_read_ex)
	 * both call, hooked instead of them where that is cheaper: the record
	 * came from one of the two, which one is not known. */
	CC_SRC_SSL_WRITE_ANY = 5,
	CC_SRC_SSL_READ_ANY = 6,
	/* gnutls */
	CC_SRC_GNUTLS_SEND = 16,       /* gnutls_record_send2 (or _send where send2 is missing) */
	CC_SRC_GNUTLS_RECV = 17,       /* gnutls_record_recv */
	CC_SRC_GNUTLS_SEND_RANGE = 18, /* gnutls_record_send_range */
	CC_SRC_GNUTLS_RECV_SEQ = 19,   /* gnutls_record_recv_seq */
	/* nss: NSPR calls on SSL file descriptors */
	CC_SRC_PR_WRITE = 32,
	CC_SRC_PR_READ = 33,
	CC_SRC_PR_SEND = 34,
	CC_SRC_PR_RECV = 35,
};

/* cc_data_event.flags */
#define CC_FLAG_HAS_TUPLE (1u << 0)  /* family/addresses/ports are valid */
#define CC_FLAG_LAST_CHUNK (1u << 1) /* last chunk of this library call */
#define CC_FLAG_FD_CACHED (1u << 2)  /* fd came from the per-connection cache, not this call's syscall */

/*
 * One chunk of plaintext. Record = struct cc_data_event, then data_len bytes.
 * Addresses follow the data: for a write, src = local end and dst = peer; for
 * a read, src = peer and dst = local end. So both ends of one TCP flow report
 * the same src/dst for bytes travelling the same way.
 */
struct cc_data_event {
	struct cc_record_hdr hdr;
	__u32 pid;          /* tgid */
	__u32 tid;
	__u32 uid;
	__s32 fd;           /* socket fd, -1 when unknown (memory BIO, no syscall seen) */
	__u64 ts_ns;        /* bpf_ktime_get_boot_ns() at the library call's return */
	__u64 cgroup_id;    /* cgroup v2 id of the task */
	__u64 conn_id;      /* unique per connection (library object) while clearcap runs */
	__u64 seq;          /* offset of the first payload byte within the connection and direction */
	__u32 call_len;     /* bytes the library call really transferred (all chunks) */
	__u32 call_off;     /* offset of this chunk within the call */
	__u16 sport;        /* host byte order */
	__u16 dport;        /* host byte order */
	__u16 family;       /* AF_INET / AF_INET6, 0 when unknown */
	__u8 direction;     /* enum cc_direction */
	__u8 source;        /* enum cc_source */
	__u32 flags;        /* CC_FLAG_* */
	__u32 _pad0;
	__u8 saddr[CC_ADDR_LEN]; /* IPv4 in the first 4 bytes, network order */
	__u8 daddr[CC_ADDR_LEN];
	char comm[CC_COMM_LEN];
};

#endif /* CLEARCAP_ABI_DATA_H */
