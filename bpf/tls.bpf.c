// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * OpenSSL/BoringSSL plaintext capture.
 *
 * Entry uprobes on SSL_write/SSL_read/SSL_write_ex/SSL_read_ex remember the
 * call's arguments per thread; the shared uretprobe emits only the bytes the
 * call really transferred (nothing for -1/0 returns, so non-blocking retries
 * produce no phantom data).
 *
 * The socket fd is read from the SSL object's read BIO through a layout
 * learned at start-up by running the very library file (cc_fd_layout: no
 * per-version offset table), once per connection and again at each
 * handshake. For a library whose layout cannot be learned, the library's own
 * read/write/send/recv syscall on the same thread, seen at the syscall
 * tracepoints, names it; userspace attaches those tracepoints only while such
 * a target exists, because they run for every syscall on the machine. The fd
 * is cached per connection for calls served from the library's buffer. The
 * 4-tuple comes from the fd's socket through CO-RE.
 *
 * Cost: the per-call path is one task-storage access at entry, one at return
 * (no hash map update), one connection lookup and the copy of the bytes.
 */
#include "common.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Arguments of a library call in flight, from entry to return. */
struct call_state {
	__u64 ssl;      /* SSL* */
	__u64 buf;      /* user buffer */
	__u64 len_ptr;  /* size_t* for the _ex variants, else 0 */
	__s32 fd;       /* fd of the first socket syscall seen during the call, -1 none */
	__u8 source;    /* enum cc_source */
	__u8 active;    /* 1 from entry to return */
	__u8 _pad[2];
	struct cc_filter_cache filter; /* this thread's pid verdict */
};

/* One call state per thread, in the task's own storage: found through the
 * task pointer without hashing, freed by the kernel when the thread exits,
 * and the entry probe stores into it without a map update (the LRU hash it
 * replaces took an update at every entry and a delete at every return). */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct call_state);
} active_calls SEC(".maps");

/* The task is fetched once per program and passed around: the helper is
 * not free, and a program used to call it up to three times. */
static __always_inline struct call_state *call_of(struct task_struct *task, __u64 flags)
{
	return bpf_task_storage_get(&active_calls, task, 0, flags);
}

/* Load-time: 0 when the syscall tracepoints are never attached
 * (--syscall-fd never): the in-call marks below are then not kept. */
const volatile __u32 syscall_fd = 1;

/*
 * Threads inside a hooked call, counted per tid slot. The syscall
 * tracepoints run for every syscall on the machine; a plain load of this
 * array lets them skip a thread that is in no hooked call before any helper
 * call. 64-byte slots: nginx's workers have consecutive tids and run on
 * different CPUs. A count, not a flag, so two threads sharing a slot cannot
 * clear each other's mark; a slot left raised (a thread killed inside a
 * call) only sends its slot-mates down the slow path.
 */
#define CC_INFLIGHT_SLOTS 1024
#define CC_INFLIGHT_STRIDE 16 /* __u32s per 64-byte slot */
__u32 inflight[CC_INFLIGHT_SLOTS * CC_INFLIGHT_STRIDE] SEC(".bss");

static __always_inline __u32 *inflight_of(__u32 tid)
{
	return &inflight[(tid & (CC_INFLIGHT_SLOTS - 1)) * CC_INFLIGHT_STRIDE];
}

static __always_inline void mark_in_call(struct call_state *cs, __u32 tid, bool in)
{
	if (!syscall_fd)
		return;
	if (in == (bool)cs->active)
		return; /* already marked (a nested or unreturned call) or not marked */
	__sync_fetch_and_add(inflight_of(tid), in ? 1 : -1);
}

struct conn_key {
	__u32 tgid;
	__u32 _pad;
	__u64 ssl;
};

/* What is known about one connection (one SSL object in one process). */
struct conn_state {
	__u64 conn_id;
	__u64 seq[2];   /* next byte offset, by enum cc_direction */
	__s32 fd;
	__u16 family;
	__u16 sport;    /* local port */
	__u16 dport;    /* peer port */
	__u16 has_tuple;
	__u32 _pad;
	__u8 laddr[CC_ADDR_LEN];
	__u8 raddr[CC_ADDR_LEN];
};

/* LRU: connections whose SSL object is freed without a further call age out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct conn_key);
	__type(value, struct conn_state);
} conns SEC(".maps");

/* Record under construction; too big for the 512-byte BPF stack. */
struct scratch {
	struct cc_data_event ev;
	__u8 data[CC_CHUNK_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch_map SEC(".maps");

/* Owner count of this CPU's scratch. Uprobe programs run with migration
 * disabled but, on a preemptible kernel, not with preemption disabled: a
 * second program on the same CPU must not overwrite a record half-built by
 * the first. It drops its call instead (counted) - never a mixed record. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} scratch_busy SEC(".maps");

/* Per-CPU counter behind conn ids: id = cpu << 40 | n: unique without atomics, and below 2^53 so JSON readers keep it exact. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} conn_counter SEC(".maps");

static __always_inline __u64 next_conn_id(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&conn_counter, &zero);
	if (!n)
		return 0;
	*n += 1;
	return ((__u64)bpf_get_smp_processor_id() << 40) | *n;
}

static __always_inline int on_entry(struct pt_regs *ctx, __u8 source, bool ex)
{
	struct task_struct *task = cc_task();
	struct call_state *cs = call_of(task, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!cs) {
		cc_stat_add(CC_STAT_CALL_STATE_FULL, 1);
		return 0;
	}
	if (cc_filtered_task(task, &cs->filter)) {
		cc_stat_add(CC_STAT_FILTERED, 1);
		return 0;
	}
	mark_in_call(cs, task->pid, true);
	cs->ssl = PT_REGS_PARM1(ctx);
	cs->buf = PT_REGS_PARM2(ctx);
	cs->len_ptr = ex ? PT_REGS_PARM4(ctx) : 0;
	cs->fd = -1;
	cs->source = source;
	cs->active = 1;
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(ssl_write_entry) { return on_entry(ctx, CC_SRC_SSL_WRITE, false); }

SEC("uprobe")
int BPF_KPROBE(ssl_read_entry) { return on_entry(ctx, CC_SRC_SSL_READ, false); }

SEC("uprobe")
int BPF_KPROBE(ssl_write_ex_entry) { return on_entry(ctx, CC_SRC_SSL_WRITE_EX, true); }

SEC("uprobe")
int BPF_KPROBE(ssl_read_ex_entry) { return on_entry(ctx, CC_SRC_SSL_READ_EX, true); }

/* Syscall side: remember the fd the library used during the call. */
static __always_inline int on_sys_fd(__s64 fd)
{
	struct task_struct *task = cc_task();
	if (fd < 0 || !*inflight_of(task->pid))
		return 0;
	struct call_state *cs = call_of(task, 0);
	if (cs && cs->active && cs->fd < 0)
		cs->fd = (__s32)fd;
	return 0;
}

#define SYS_FD_PROBE(name)                                              \
	SEC("tracepoint/syscalls/sys_enter_" #name)                     \
	int sys_enter_##name(struct trace_event_raw_sys_enter *ctx)     \
	{                                                               \
		return on_sys_fd((__s64)ctx->args[0]);                  \
	}

SYS_FD_PROBE(read)
SYS_FD_PROBE(write)
SYS_FD_PROBE(readv)
SYS_FD_PROBE(writev)
SYS_FD_PROBE(sendto)
SYS_FD_PROBE(recvfrom)
SYS_FD_PROBE(sendmsg)
SYS_FD_PROBE(recvmsg)

/* The fd's socket addresses, through CO-RE; no library struct offsets. */
static __always_inline void resolve_tuple(struct conn_state *c, __s32 fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || (__u32)fd >= BPF_CORE_READ(fdt, max_fds))
		return;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = NULL;
	bpf_core_read(&f, sizeof(f), &fds[fd]);
	if (!f)
		return;
	umode_t mode = BPF_CORE_READ(f, f_inode, i_mode);
	if ((mode & S_IFMT) != S_IFSOCK)
		return;
	struct socket *sock = BPF_CORE_READ(f, private_data);
	if (!sock)
		return;
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family == AF_INET) {
		__u32 l = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__u32 r = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(c->laddr, &l, 4);
		__builtin_memcpy(c->raddr, &r, 4);
	} else if (family == AF_INET6) {
		BPF_CORE_READ_INTO(&c->laddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&c->raddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	} else {
		return;
	}
	__u16 dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (dport == 0)
		return; /* not connected yet: try again on the next call */
	c->family = family;
	c->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	c->dport = dport;
	c->has_tuple = 1;
}

/* Where each hooked library keeps the socket fd (index = the uprobe's bpf
 * cookie, a slot per library file set by userspace); valid 0 = unknown. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CC_MAX_LAYOUTS);
	__type(key, __u32);
	__type(value, struct cc_fd_layout);
} fd_layouts SEC(".maps");

/* The socket fd behind the SSL object's read BIO, -1 when the layout is
 * unknown, the BIO is not a socket BIO (memory BIO, BIO pair) or a read
 * fails. Three small user reads; called once per connection and at each
 * handshake step, never per byte. */
static __always_inline __s32 fd_from_ssl(struct pt_regs *ctx, __u64 ssl)
{
	__u32 idx = (__u32)bpf_get_attach_cookie(ctx);
	struct cc_fd_layout *l = bpf_map_lookup_elem(&fd_layouts, &idx);
	if (!l || !l->valid)
		return -1;
	__u64 bio = 0, meth = 0;
	__s32 type = 0, num = -1;
	if (bpf_probe_read_user(&bio, sizeof(bio), (void *)(ssl + l->rbio_off)) || !bio)
		return -1;
	if (bpf_probe_read_user(&meth, sizeof(meth), (void *)(bio + l->method_off)) || !meth)
		return -1;
	if (bpf_probe_read_user(&type, sizeof(type), (void *)meth) || type != l->sock_type)
		return -1;
	if (bpf_probe_read_user(&num, sizeof(num), (void *)(bio + l->num_off)))
		return -1;
	return num >= 0 ? num : -1;
}

/* The connection state of (tgid, ssl), created when missing. An SSL object
 * reused on another socket (SSL_clear + SSL_set_fd) starts a new connection.
 * Learns the fd (from the call's syscall, else from the SSL object once per
 * new connection) and, once connected, the tuple. */
static __always_inline struct conn_state *conn_for(struct pt_regs *ctx, __u32 tgid, __u64 ssl, __s32 fd)
{
	struct conn_key key = {.tgid = tgid, .ssl = ssl};
	struct conn_state *c = bpf_map_lookup_elem(&conns, &key);
	if (c && fd >= 0 && c->fd >= 0 && c->fd != fd)
		c = NULL;
	if (!c) {
		if (fd < 0)
			fd = fd_from_ssl(ctx, ssl);
		struct conn_state fresh = {.conn_id = next_conn_id(), .fd = fd};
		if (bpf_map_update_elem(&conns, &key, &fresh, BPF_ANY)) {
			cc_stat_add(CC_STAT_CONN_STATE_FULL, 1);
			return NULL;
		}
		c = bpf_map_lookup_elem(&conns, &key);
		if (!c) {
			cc_stat_add(CC_STAT_CONN_STATE_FULL, 1);
			return NULL;
		}
	}
	if (fd >= 0 && c->fd < 0)
		c->fd = fd;
	if (!c->has_tuple && c->fd >= 0)
		resolve_tuple(c, c->fd);
	return c;
}

/*
 * The fd of connections whose first SSL_read is served from the library's
 * buffer (TLS 1.3 servers often read the request with the client's Finished
 * during the handshake) comes from SSL_set_fd, or from the socket syscalls
 * made inside SSL_do_handshake (SSL_set_bio users). Both run once per
 * connection, so their traps cost nothing per byte.
 */
SEC("uprobe")
int BPF_KPROBE(ssl_set_fd_entry)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (cc_filtered_now())
		return 0;
	__s32 fd = (__s32)PT_REGS_PARM2(ctx);
	__u64 ssl = PT_REGS_PARM1(ctx);
	struct conn_key key = {.tgid = id >> 32, .ssl = ssl};
	/* Always a new connection, even when an SSL object is reused. */
	bpf_map_delete_elem(&conns, &key);
	conn_for(ctx, id >> 32, ssl, fd);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(ssl_handshake_entry) { return on_entry(ctx, CC_SRC_HANDSHAKE, false); }

/* Where each secret lives, per hooked library file (index = the uprobe's
 * bpf cookie, the library's slot). An entry whose
 * client random length is 0 means "no keys for this library". */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CC_MAX_LAYOUTS);
	__type(key, __u32);
	__type(value, struct cc_key_layout);
} key_layouts SEC(".maps");

/* Follows one item's pointer chain from the SSL object and copies its bytes.
 * Every step is a bpf_probe_read_user: a wrong or freed pointer is a counted
 * failure, never a crash. */
static __always_inline int read_key_item(__u64 ssl, const struct cc_key_path *p, __u8 *dst)
{
	__u64 addr = ssl;
	__u32 depth = p->depth;
	/* Written out rather than a loop: one step per possible depth. */
	if (depth > 0 && (bpf_probe_read_user(&addr, sizeof(addr), (void *)(addr + p->off[0])) || !addr))
		return -1;
	if (depth > 1 && (bpf_probe_read_user(&addr, sizeof(addr), (void *)(addr + p->off[1])) || !addr))
		return -1;
	if (depth > 2 && (bpf_probe_read_user(&addr, sizeof(addr), (void *)(addr + p->off[2])) || !addr))
		return -1;
	__u64 len = p->len;
	if (len == 0 || len > CC_KEY_SECRET_MAX)
		return -1;
	/* 1..64 on the very register handed to the helper: clang would
	 * otherwise test a copy (verifier). Same value for 1..64. */
	asm volatile("%[len] -= 1\n\t%[len] &= 63\n\t%[len] += 1" : [len] "+r"(len));
	return bpf_probe_read_user(dst, len, (void *)(addr + p->off[depth & CC_KEY_MAX_DEPTH])) ? -1 : 0;
}

/* Emits the secrets of a completed handshake. Runs once per handshake, so
 * its cost (a few small user reads) is not on the per-byte path. */
static __always_inline void emit_keys(struct pt_regs *ctx, __u64 id, __u64 ssl, struct conn_state *c)
{
	__u32 idx = (__u32)bpf_get_attach_cookie(ctx);
	struct cc_key_layout *layout = bpf_map_lookup_elem(&key_layouts, &idx);
	if (!layout || layout->items[CC_KEY_CLIENT_RANDOM].len == 0)
		return;
	void *ring = cc_current_ring();
	if (!ring) {
		cc_stat_add(CC_STAT_NO_RING, 1);
		return;
	}
	/* Built in place in the ring; with --buffer perf in this CPU's record
	 * scratch (busy-guarded like the data path), then copied out. */
	struct cc_keys_event *ev;
	__u32 zero = 0, *busy = NULL;
	if (use_perf) {
		struct scratch *s = bpf_map_lookup_elem(&scratch_map, &zero);
		busy = bpf_map_lookup_elem(&scratch_busy, &zero);
		if (!s || !busy)
			return;
		if (!cc_claim(busy)) {
			cc_stat_add(CC_STAT_SCRATCH_BUSY, 1);
			return;
		}
		ev = (struct cc_keys_event *)s;
	} else {
		ev = bpf_ringbuf_reserve(ring, sizeof(*ev), 0);
		if (!ev) {
			cc_stat_add(CC_STAT_KEYS_RINGBUF_FULL, 1);
			return;
		}
	}
	/* Not zeroed (ring memory, a reused scratch): every byte is written below. */
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->hdr.type = CC_REC_KEYS;
	ev->hdr.hdr_len = sizeof(*ev);
	ev->pid = id >> 32;
	ev->tid = (__u32)id;
	ev->ts_ns = bpf_ktime_get_boot_ns();
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));
	if (c) {
		ev->conn_id = c->conn_id;
		if (c->has_tuple) {
			ev->family = c->family;
			ev->sport = c->sport;
			ev->dport = c->dport;
			__builtin_memcpy(ev->laddr, c->laddr, CC_ADDR_LEN);
			__builtin_memcpy(ev->raddr, c->raddr, CC_ADDR_LEN);
		}
	}
	__u32 present = 0, failed = 0;
#pragma unroll
	for (int i = 0; i < CC_KEY__COUNT; i++) {
		const struct cc_key_path *p = &layout->items[i];
		if (p->len == 0)
			continue;
		if (read_key_item(ssl, p, ev->items[i]) == 0) {
			present |= 1u << i;
		} else {
			failed |= 1u << i;
			cc_stat_add(CC_STAT_KEYS_READ_FAULT, 1);
		}
	}
	ev->present = present;
	ev->failed = failed;
	if (use_perf) {
		long err = cc_output(ctx, ring, ev, sizeof(*ev));
		if (busy)
			cc_release(busy);
		cc_stat_add(err ? CC_STAT_KEYS_RINGBUF_FULL : CC_STAT_KEYS, 1);
		return;
	}
	bpf_ringbuf_submit(ev, cc_wake_flags(ring, sizeof(*ev)));
	cc_stat_add(CC_STAT_KEYS, 1);
}

/* SSL_do_handshake's return: SSL_connect and SSL_accept end in it (OpenSSL
 * and BoringSSL), nginx calls it directly. A return of 1 means the handshake
 * is complete: every secret of TLS 1.2 and 1.3 has been derived, and none has
 * been wiped yet. */
SEC("uretprobe")
int BPF_KRETPROBE(ssl_handshake_ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct call_state *csp = call_of(cc_task(), 0);
	if (!csp || !csp->active)
		return 0;
	__u64 ssl = csp->ssl;
	__s32 fd = csp->fd;
	mark_in_call(csp, (__u32)id, false);
	csp->active = 0;
	/* Each handshake step re-reads the fd: an SSL object reused on another
	 * socket through SSL_set_bio becomes a new connection here. */
	if (fd < 0)
		fd = fd_from_ssl(ctx, ssl);
	struct conn_state *c = NULL;
	if (fd >= 0)
		c = conn_for(ctx, id >> 32, ssl, fd);
	if ((int)PT_REGS_RC(ctx) == 1) {
		if (!c) {
			struct conn_key key = {.tgid = id >> 32, .ssl = ssl};
			c = bpf_map_lookup_elem(&conns, &key);
		}
		emit_keys(ctx, id, ssl, c);
	}
	return 0;
}

struct emit_ctx {
	void *ctx;      /* the program's context (bpf_perf_event_output needs it) */
	__u64 buf;      /* start of the call's buffer */
	__u32 total;    /* bytes to emit */
	__u32 _pad;
};

/* bpf_loop callback: one chunk per iteration. The fixed header was filled by
 * the caller in this CPU's scratch record; only per-chunk fields change. */
static long emit_chunk(__u32 i, void *data)
{
	struct emit_ctx *ec = data;
	__u32 zero = 0;
	__u64 total = ec->total;
	__u64 off = (__u64)i * CC_CHUNK_MAX;
	if (off >= total)
		return 1;
	__u64 len = total - off;
	if (len > CC_CHUNK_MAX)
		len = CC_CHUNK_MAX;

	struct scratch *s = bpf_map_lookup_elem(&scratch_map, &zero);
	void *ring = cc_current_ring();
	if (!s || !ring) {
		cc_stat_add(CC_STAT_NO_RING, 1);
		return 1;
	}
	/* Re-check on the very register passed to the helper: clang may
	 * otherwise test a copy and pass the unchecked value (verifier). */
	asm volatile("%[len] &= 0x7fff" : [len] "+r"(len));
	if (len > CC_CHUNK_MAX || len == 0)
		return 1;
	if (bpf_probe_read_user(s->data, len, (void *)(ec->buf + off))) {
		cc_stat_add(CC_STAT_READ_FAULT, 1);
		cc_stat_add(CC_STAT_READ_FAULT_BYTES, len);
		return 0; /* the gap is visible to userspace through seq */
	}
	__u64 seq0 = s->ev.seq;
	s->ev.hdr.data_len = len;
	s->ev.call_off = off;
	s->ev.seq = seq0 + off;
	if (off + len >= ec->total)
		s->ev.flags |= CC_FLAG_LAST_CHUNK;
	long err = cc_output(ec->ctx, ring, s, sizeof(s->ev) + len);
	s->ev.seq = seq0;
	if (err) {
		cc_stat_add(CC_STAT_RINGBUF_FULL, 1);
		cc_stat_add(CC_STAT_RINGBUF_FULL_BYTES, len);
	} else {
		cc_stat_add(CC_STAT_EVENTS, 1);
		cc_stat_add(CC_STAT_BYTES, len);
	}
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(ssl_ret)
{
	struct task_struct *task = cc_task();
	__u32 tgid = task->tgid;
	struct call_state *csp = call_of(task, 0);
	if (!csp || !csp->active) {
		if (!cc_filtered_now())
			cc_stat_add(CC_STAT_NO_ENTRY_STATE, 1);
		return 0;
	}
	struct call_state cs = *csp;
	mark_in_call(csp, task->pid, false);
	csp->active = 0;

	/* All four functions return a C int: only eax is defined, so -1 must not
	 * be read as the 64-bit 0xffffffff (a phantom 4 GiB read). */
	int rc = (int)PT_REGS_RC(ctx);
	__u64 n = 0;
	if (cs.len_ptr) {
		/* SSL_*_ex: 1 on success, count in *len_ptr */
		if (rc != 1 || bpf_probe_read_user(&n, sizeof(n), (void *)cs.len_ptr))
			return 0;
	} else {
		if (rc <= 0)
			return 0;
		n = rc;
	}
	if (n == 0)
		return 0;
	__u8 dir = (cs.source == CC_SRC_SSL_READ || cs.source == CC_SRC_SSL_READ_EX) ? CC_DIR_READ
										      : CC_DIR_WRITE;

	struct conn_state *c = conn_for(ctx, tgid, cs.ssl, cs.fd);
	if (!c)
		return 0;
	__u32 flags = 0;
	if (cs.fd < 0 && c->fd >= 0) {
		cs.fd = c->fd;
		flags |= CC_FLAG_FD_CACHED;
	}
	if (cs.fd < 0)
		cc_stat_add(CC_STAT_NO_FD, 1);

	__u32 zero = 0;
	__u32 *busy = bpf_map_lookup_elem(&scratch_busy, &zero);
	struct scratch *s = bpf_map_lookup_elem(&scratch_map, &zero);
	if (!s || !busy)
		return 0;
	if (!cc_claim(busy)) {
		c->seq[dir & 1] += n; /* the loss shows as a gap */
		cc_stat_add(CC_STAT_SCRATCH_BUSY, 1);
		return 0;
	}
	struct cc_data_event *ev = &s->ev;
	ev->hdr.type = CC_REC_DATA;
	ev->hdr.hdr_len = sizeof(*ev);
	ev->pid = tgid;
	ev->tid = task->pid;
	ev->uid = cc_task_uid(task);
	ev->fd = cs.fd;
	ev->ts_ns = bpf_ktime_get_boot_ns();
	ev->cgroup_id = cc_task_cgroup_id(task);
	ev->conn_id = c->conn_id;
	ev->seq = c->seq[dir & 1];
	ev->direction = dir;
	ev->source = cs.source;
	cc_task_comm(task, ev->comm);
	ev->family = c->has_tuple ? c->family : 0;
	if (c->has_tuple) {
		flags |= CC_FLAG_HAS_TUPLE;
		if (dir == CC_DIR_WRITE) {
			ev->sport = c->sport;
			ev->dport = c->dport;
			__builtin_memcpy(ev->saddr, c->laddr, CC_ADDR_LEN);
			__builtin_memcpy(ev->daddr, c->raddr, CC_ADDR_LEN);
		} else {
			ev->sport = c->dport;
			ev->dport = c->sport;
			__builtin_memcpy(ev->saddr, c->raddr, CC_ADDR_LEN);
			__builtin_memcpy(ev->daddr, c->laddr, CC_ADDR_LEN);
		}
	} else {
		ev->sport = ev->dport = 0;
		__builtin_memset(ev->saddr, 0, CC_ADDR_LEN);
		__builtin_memset(ev->daddr, 0, CC_ADDR_LEN);
	}
	ev->flags = flags;
	ev->_pad0 = 0;

	/* Advance the stream offset by everything the call transferred, emitted
	 * or not, so that any loss shows up as a gap in seq. */
	c->seq[dir & 1] += n;

	__u64 max_bytes = (__u64)CC_MAX_CHUNKS_PER_CALL * CC_CHUNK_MAX;
	__u32 total = n > max_bytes ? max_bytes : n;
	if (n > max_bytes) {
		cc_stat_add(CC_STAT_CHUNK_LIMIT, 1);
		cc_stat_add(CC_STAT_CHUNK_LIMIT_BYTES, n - max_bytes);
	}
	ev->call_len = (__u32)(n > 0xffffffffull ? 0xffffffffu : n);

	struct emit_ctx ec = {.ctx = ctx, .buf = cs.buf, .total = total};
	bpf_loop((total + CC_CHUNK_MAX - 1) / CC_CHUNK_MAX, emit_chunk, &ec, 0);
	cc_release(busy);
	return 0;
}

/*
 * Packets (-m pcap): a tc program on the interface copies each packet (up to
 * the snap length) into the same per-CPU rings as the keys records, so the
 * processor sees packets and handshake keys in one time order.
 */
#ifndef TC_ACT_OK
#define TC_ACT_OK 0 /* a macro of linux/pkt_cls.h, not in vmlinux.h */
#endif

/* Bytes copied per packet at most (load-time, --snaplen), <= CC_PACKET_MAX. */
const volatile __u32 snap_len = CC_PACKET_MAX;

/* Packet record under construction. 64 KiB is above the per-CPU map value
 * limit (32 KiB), so this is a plain ARRAY with one entry per possible CPU
 * (max_entries set by userspace before load), indexed by the current CPU. */
struct pkt_scratch {
	struct cc_packet_event ev;
	__u8 data[CC_PACKET_MAX + 1];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1); /* set to the number of possible CPUs before load */
	__type(key, __u32);
	__type(value, struct pkt_scratch);
} pkt_scratch_map SEC(".maps");

/* Owner count of this CPU's packet scratch: a tc program interrupted on its
 * CPU (egress in process context, then ingress in a softirq) must not reuse
 * a record half-built by the first; it drops its packet instead (counted). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} pkt_scratch_busy SEC(".maps");

static __always_inline int capture_packet(struct __sk_buff *skb, __u8 direction)
{
	__u32 zero = 0;
	__u32 cpu = bpf_get_smp_processor_id();
	struct pkt_scratch *s = bpf_map_lookup_elem(&pkt_scratch_map, &cpu);
	__u32 *busy = bpf_map_lookup_elem(&pkt_scratch_busy, &zero);
	void *ring = cc_current_ring();
	if (!s || !busy || !ring) {
		cc_stat_add(CC_STAT_NO_RING, 1);
		return TC_ACT_OK;
	}
	if (!cc_claim(busy)) {
		cc_stat_add(CC_STAT_PACKETS_SCRATCH_BUSY, 1);
		return TC_ACT_OK;
	}
	__u32 wire = skb->len;
	__u64 len = wire < snap_len ? wire : snap_len;
	/* Bound on the very register handed to the helpers (verifier); a no-op
	 * for len <= CC_PACKET_MAX. */
	asm volatile("%[len] &= 0xffff" : [len] "+r"(len));
	s->ev.hdr.type = CC_REC_PACKET;
	s->ev.hdr.hdr_len = sizeof(s->ev);
	s->ev.hdr.data_len = len;
	s->ev.ifindex = skb->ifindex;
	s->ev.wire_len = wire;
	s->ev.direction = direction;
	s->ev.flags = len < wire ? CC_PKT_TRUNCATED : 0;
	s->ev._pad0 = 0;
	s->ev._pad1 = 0;
	s->ev.ts_ns = bpf_ktime_get_boot_ns();
	if (len > 0 && bpf_skb_load_bytes(skb, 0, s->data, len)) {
		cc_stat_add(CC_STAT_PACKETS_READ_FAULT, 1);
		goto out;
	}
	if (cc_output(skb, ring, s, sizeof(s->ev) + len)) {
		cc_stat_add(CC_STAT_PACKETS_RINGBUF_FULL, 1);
		cc_stat_add(CC_STAT_PACKETS_RINGBUF_FULL_BYTES, len);
		goto out;
	}
	cc_stat_add(CC_STAT_PACKETS, 1);
	cc_stat_add(CC_STAT_PACKET_BYTES, len);
	if (len < wire)
		cc_stat_add(CC_STAT_PACKETS_TRUNCATED, 1);
out:
	cc_release(busy);
	return TC_ACT_OK; /* observe only: never change the packet's fate */
}

SEC("tc")
int tc_egress(struct __sk_buff *skb) { return capture_packet(skb, CC_PKT_EGRESS); }

SEC("tc")
int tc_ingress(struct __sk_buff *skb) { return capture_packet(skb, CC_PKT_INGRESS); }
