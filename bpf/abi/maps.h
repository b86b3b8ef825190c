/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Map values shared by the BPF programs and userspace (not records: they
 * live only as long as one clearcap process, so they may change with it). */
#ifndef CLEARCAP_ABI_MAPS_H
#define CLEARCAP_ABI_MAPS_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

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

#endif /* CLEARCAP_ABI_MAPS_H */
