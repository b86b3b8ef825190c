/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The only structures shared between the BPF programs and userspace.
 *
 * Rules: plain C, fixed-width types, explicit padding, every field 8-byte
 * aligned where it is 8 bytes wide. Layout is checked by static asserts at
 * the bottom of this file (both compilers) and by tests/unit/abi_layout_test.
 * Changing a layout means bumping CC_ABI_VERSION.
 */
#ifndef CLEARCAP_ABI_H
#define CLEARCAP_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define CC_ABI_VERSION 2

/* Payload bytes carried by one record at most. A larger SSL_read/SSL_write is
 * split into several records (chunks), each with its byte offset. */
#define CC_CHUNK_MAX 16384u
/* Maximum chunks emitted for one library call; bytes beyond are counted as
 * lost (CC_STAT_CHUNK_LIMIT_BYTES). 512 x 16 KiB = 8 MiB per call. */
#define CC_MAX_CHUNKS_PER_CALL 512u

#define CC_COMM_LEN 16
#define CC_ADDR_LEN 16

/* cc_record_hdr.type */
enum cc_record_type {
	CC_REC_DATA = 1, /* struct cc_data_event + payload */
	CC_REC_KEYS = 2, /* struct cc_keys_event, no payload */
	CC_REC_PACKET = 3, /* struct cc_packet_event + captured packet bytes (tc, -m pcap) */
};

/* Bytes of one packet a record carries at most (the largest --snaplen). A
 * longer packet is cut to the snap length and marked CC_PKT_TRUNCATED; its
 * wire length stays in the record. */
#define CC_PACKET_MAX 65535u

/* cc_packet_event.direction */
enum cc_pkt_direction {
	CC_PKT_EGRESS = 0,  /* leaving the interface (sent) */
	CC_PKT_INGRESS = 1, /* arriving on the interface (received) */
};

/* cc_packet_event.flags */
#define CC_PKT_TRUNCATED (1u << 0) /* cut to the snap length: data_len < wire_len */

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

/* Every ring record starts with this header. */
struct cc_record_hdr {
	__u16 type;     /* enum cc_record_type */
	__u16 hdr_len;  /* size of the type's fixed struct (includes this header) */
	__u32 data_len; /* payload bytes following the fixed struct */
};

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

/* Slots of per-library layouts (fd_layouts, key_layouts; index = the
 * uprobe's bpf cookie). The last slot stays empty: "no layout". */
#define CC_MAX_LAYOUTS 256u

/*
 * Where a library keeps a connection's socket fd (ARRAY "fd_layouts", index
 * = the uprobe's bpf cookie), learned at start-up like the key layout
 * (core/key_layout.cpp): SSL_set_fd(ssl, N) with distinctive N, then N is
 * found behind the SSL object's read BIO. The fd is
 *   *(s32 *)(rbio + num_off) with rbio = *(u64 *)(ssl + rbio_off),
 * valid only when the BIO is a socket BIO:
 *   *(s32 *)(*(u64 *)(rbio + method_off)) == sock_type
 * (BIO_METHOD starts with its type in OpenSSL 1.1+, 3.x and BoringSSL).
 * valid 0: unknown; the fd then comes from the syscall tracepoints.
 * Not a record: changing it needs no new record type.
 */
struct cc_fd_layout {
	__u32 valid;      /* 1: the offsets below hold */
	__u32 rbio_off;   /* SSL object -> read BIO pointer */
	__u32 num_off;    /* BIO -> int num (the fd of a socket BIO) */
	__u32 method_off; /* BIO -> const BIO_METHOD * */
	__s32 sock_type;  /* BIO_TYPE_SOCKET as the library defines it (0x0505) */
	__u32 _pad;
};

/* Per-CPU loss and activity counters (PERCPU_ARRAY "stats", index = enum). */
enum cc_stat {
	CC_STAT_EVENTS = 0,           /* records written to a ring */
	CC_STAT_BYTES,                /* payload bytes written to a ring */
	CC_STAT_RINGBUF_FULL,         /* records dropped: ring had no room */
	CC_STAT_RINGBUF_FULL_BYTES,   /* payload bytes in those records */
	CC_STAT_CHUNK_LIMIT,          /* calls cut short by CC_MAX_CHUNKS_PER_CALL */
	CC_STAT_CHUNK_LIMIT_BYTES,    /* bytes beyond CC_MAX_CHUNKS_PER_CALL */
	CC_STAT_READ_FAULT,           /* chunks dropped: bpf_probe_read_user failed */
	CC_STAT_READ_FAULT_BYTES,     /* payload bytes in those chunks */
	CC_STAT_NO_ENTRY_STATE,       /* return probe without its entry state (map full) */
	CC_STAT_CALL_STATE_FULL,      /* entry state could not be stored */
	CC_STAT_NO_RING,              /* no ring for this CPU (misconfiguration) */
	CC_STAT_CONN_STATE_FULL,      /* connection state could not be stored */
	CC_STAT_FILTERED,             /* calls skipped by pid/uid filters */
	CC_STAT_NO_FD,                /* events emitted without a known fd */
	CC_STAT_SCRATCH_BUSY,         /* calls dropped: this CPU's record scratch was in use (preempted program) */
	CC_STAT_KEYS,                 /* key records written to a ring */
	CC_STAT_KEYS_READ_FAULT,      /* key items that could not be read from the library object */
	CC_STAT_KEYS_RINGBUF_FULL,    /* key records dropped: ring had no room */
	CC_STAT_PACKETS,              /* packet records written to a ring (-m pcap) */
	CC_STAT_PACKET_BYTES,         /* packet bytes in those records */
	CC_STAT_PACKETS_RINGBUF_FULL, /* packets dropped: ring had no room */
	CC_STAT_PACKETS_RINGBUF_FULL_BYTES, /* captured bytes in those packets */
	CC_STAT_PACKETS_TRUNCATED,    /* packets cut to the snap length (kept, marked; not a loss) */
	CC_STAT_PACKETS_READ_FAULT,   /* packets dropped: bpf_skb_load_bytes failed */
	CC_STAT_PACKETS_SCRATCH_BUSY, /* packets dropped: this CPU's packet scratch was in use */
	CC_STAT_NOT_TLS,              /* calls skipped: not on a TLS object (nss: an NSPR fd without an SSL layer) */
	CC_STAT__COUNT,
};

/* Run-time filter settings (ARRAY "filter_cfg", one entry). Hot-reloadable. */
struct cc_filter_cfg {
	__u32 flags;      /* CC_FILTER_* */
	__u32 uid;        /* with CC_FILTER_UID: only this uid */
	__u64 cgroup_id;  /* with CC_FILTER_CGROUP: only this cgroup id */
	__u32 generation; /* changes with every update, never 0: per-thread cached pid verdicts expire */
	__u32 cgroup_level; /* with CC_FILTER_CGROUP: depth of cgroup_id below the root; its whole subtree passes */
};

#define CC_FILTER_PID (1u << 0)    /* only pids present in map "pid_filter" */
#define CC_FILTER_UID (1u << 1)
#define CC_FILTER_CGROUP (1u << 2)

#ifdef __cplusplus
static_assert(sizeof(struct cc_record_hdr) == 8, "cc_record_hdr layout");
static_assert(sizeof(struct cc_data_event) == 128, "cc_data_event layout");
static_assert(__builtin_offsetof(struct cc_data_event, ts_ns) == 24, "ts_ns offset");
static_assert(__builtin_offsetof(struct cc_data_event, seq) == 48, "seq offset");
static_assert(__builtin_offsetof(struct cc_data_event, saddr) == 80, "saddr offset");
static_assert(__builtin_offsetof(struct cc_data_event, comm) == 112, "comm offset");
static_assert(sizeof(struct cc_filter_cfg) == 24, "cc_filter_cfg layout");
static_assert(sizeof(struct cc_key_path) == 20, "cc_key_path layout");
static_assert(sizeof(struct cc_key_layout) == 200, "cc_key_layout layout");
static_assert(__builtin_offsetof(struct cc_keys_event, ts_ns) == __builtin_offsetof(struct cc_data_event, ts_ns), "cc_keys_event ts_ns offset");
static_assert(__builtin_offsetof(struct cc_keys_event, laddr) == 48, "cc_keys_event laddr offset");
static_assert(__builtin_offsetof(struct cc_keys_event, items) == 96, "cc_keys_event items offset");
static_assert(sizeof(struct cc_keys_event) == 736, "cc_keys_event layout");
static_assert(sizeof(struct cc_packet_event) == 32, "cc_packet_event layout");
static_assert(sizeof(struct cc_fd_layout) == 24, "cc_fd_layout layout");
static_assert(__builtin_offsetof(struct cc_packet_event, ts_ns) == __builtin_offsetof(struct cc_data_event, ts_ns), "cc_packet_event ts_ns offset");
#else
_Static_assert(sizeof(struct cc_record_hdr) == 8, "cc_record_hdr layout");
_Static_assert(sizeof(struct cc_data_event) == 128, "cc_data_event layout");
_Static_assert(__builtin_offsetof(struct cc_data_event, ts_ns) == 24, "ts_ns offset");
_Static_assert(__builtin_offsetof(struct cc_data_event, seq) == 48, "seq offset");
_Static_assert(__builtin_offsetof(struct cc_data_event, saddr) == 80, "saddr offset");
_Static_assert(__builtin_offsetof(struct cc_data_event, comm) == 112, "comm offset");
_Static_assert(sizeof(struct cc_filter_cfg) == 24, "cc_filter_cfg layout");
_Static_assert(sizeof(struct cc_key_path) == 20, "cc_key_path layout");
_Static_assert(sizeof(struct cc_key_layout) == 200, "cc_key_layout layout");
_Static_assert(__builtin_offsetof(struct cc_keys_event, ts_ns) == __builtin_offsetof(struct cc_data_event, ts_ns), "cc_keys_event ts_ns offset");
_Static_assert(__builtin_offsetof(struct cc_keys_event, laddr) == 48, "cc_keys_event laddr offset");
_Static_assert(__builtin_offsetof(struct cc_keys_event, items) == 96, "cc_keys_event items offset");
_Static_assert(sizeof(struct cc_keys_event) == 736, "cc_keys_event layout");
_Static_assert(sizeof(struct cc_packet_event) == 32, "cc_packet_event layout");
_Static_assert(sizeof(struct cc_fd_layout) == 24, "cc_fd_layout layout");
_Static_assert(__builtin_offsetof(struct cc_packet_event, ts_ns) == __builtin_offsetof(struct cc_data_event, ts_ns), "cc_packet_event ts_ns offset");
#endif

#endif /* CLEARCAP_ABI_H */
