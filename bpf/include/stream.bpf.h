/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The machinery every stream family shares (tls, gnutls, nss, ...): per-call
 * state from a library call's entry to its return, the fd seen at the
 * syscall tracepoints during the call, per-connection state (id, byte
 * offsets, fd, 4-tuple from the socket) and the chunked emit of the bytes a
 * call really transferred.
 *
 * A family's .bpf.c includes this header once and writes only what is its
 * own: which functions, where their arguments are, what their return value
 * means, and (optionally) how to find the socket fd from its library object
 * without a syscall: define CC_FAMILY_FD(ctx, obj) before the include.
 *
 * Each family's object gets its own copy of these maps (call state, inflight
 * marks, connections, scratch); the rings, counters and filters come from
 * common.bpf.h and are shared by every family (userspace's RingSet).
 */
#ifndef CLEARCAP_STREAM_BPF_H
#define CLEARCAP_STREAM_BPF_H

#include "common.bpf.h"

#ifndef CC_FAMILY_FD
#define CC_FAMILY_FD(ctx, obj) (-1)
#endif

/* Arguments of a library call in flight, from entry to return. */
struct call_state {
	__u64 obj;      /* the library's connection object (SSL*, gnutls_session_t, PRFileDesc*) */
	__u64 buf;      /* user buffer */
	__u64 len_ptr;  /* size_t* for calls that return the count through a pointer, else 0 */
	__s32 fd;       /* socket fd: from the entry, else the first socket syscall during the call; -1 none */
	__u8 source;    /* enum cc_source */
	__u8 active;    /* 1 from entry to return */
	__u8 skipped;   /* the entry chose not to capture this call (cc_stream_skip) */
	__u8 awaiting;  /* after a call on a connection without a socket: see cc_stream_await */
	struct cc_filter_cache filter; /* this thread's pid verdict */
	__u64 await_obj; /* the object whose ciphertext this thread is about to send */
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

/* Memory-BIO connections (asyncio's SSLObject, a proxy's own BIO pair) have
 * no socket in the library: the program moves the ciphertext itself. Right
 * after a call on such a connection, the thread's next write()/sendto() of
 * bytes that start with a TLS record header names the socket (asyncio sends
 * the ClientHello right after SSL_do_handshake returns). Until then the
 * thread keeps its in-call mark, so the tracepoints look at it; its next
 * library call ends the wait. Other threads pay nothing. */
static __always_inline void stop_awaiting(struct call_state *cs, __u32 tid)
{
	if (!cs->awaiting)
		return;
	cs->awaiting = 0;
	cs->await_obj = 0;
	if (syscall_fd)
		__sync_fetch_and_add(inflight_of(tid), -1);
}

static __always_inline void cc_stream_await(struct task_struct *task, __u64 obj)
{
	if (!syscall_fd)
		return;
	struct call_state *cs = call_of(task, 0);
	if (!cs || cs->active || cs->awaiting)
		return;
	cs->awaiting = 1;
	cs->await_obj = obj;
	__sync_fetch_and_add(inflight_of(task->pid), 1);
}

/* A library call starts: remember its arguments for the return probe. `fd`
 * is the socket when the entry already knows it, else -1 (the syscall
 * tracepoints, the connection cache or CC_FAMILY_FD find it). */
static __always_inline int cc_stream_entry(__u8 source, __u64 obj, __u64 buf, __u64 len_ptr, __s32 fd)
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
	stop_awaiting(cs, task->pid);
	mark_in_call(cs, task->pid, true);
	cs->obj = obj;
	cs->buf = buf;
	cs->len_ptr = len_ptr;
	cs->fd = fd;
	cs->source = source;
	cs->active = 1;
	cs->skipped = 0;
	return 0;
}

/* The entry decided this call is not one to capture (nss: an NSPR file
 * that is no SSL socket): its return is then skipped without counting a
 * missing entry state. Counted under `why`. */
static __always_inline int cc_stream_skip(__u32 why)
{
	cc_stat_add(why, 1);
	struct call_state *cs = call_of(cc_task(), BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (cs && !cs->active)
		cs->skipped = 1;
	return 0;
}

/* The return side: the call's state, taken (inactive from now on). False
 * when the thread has none (skipped, filtered, or the entry probe could not
 * store it: counted). */
static __always_inline bool cc_stream_take(struct task_struct *task, struct call_state *out)
{
	struct call_state *csp = call_of(task, 0);
	if (!csp || !csp->active) {
		if (csp && csp->skipped)
			csp->skipped = 0;
		else if (!cc_filtered_now())
			cc_stat_add(CC_STAT_NO_ENTRY_STATE, 1);
		return false;
	}
	*out = *csp;
	mark_in_call(csp, task->pid, false);
	csp->active = 0;
	return true;
}


struct conn_key {
	__u32 tgid;
	__u32 _pad;
	__u64 obj;
};

/* What is known about one connection (one library object in one process). */
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

/* LRU: connections whose object is freed without a further call age out. */
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

/* Syscall side: remember the fd the library used during the call, or
 * (`buf` of a write/sendto, else 0) the socket an awaited connection's
 * ciphertext goes to. */
static __always_inline int on_sys_fd(__s64 fd, __u64 buf)
{
	struct task_struct *task = cc_task();
	if (fd < 0 || !*inflight_of(task->pid))
		return 0;
	struct call_state *cs = call_of(task, 0);
	if (!cs)
		return 0;
	if (cs->active) {
		if (cs->fd < 0)
			cs->fd = (__s32)fd;
		return 0;
	}
	if (!cs->awaiting || !buf)
		return 0;
	/* A TLS record: content type 20..23, version 3.x. */
	__u8 hdr[3];
	if (bpf_probe_read_user(hdr, sizeof(hdr), (void *)buf) || hdr[0] < 20 || hdr[0] > 23 || hdr[1] != 3)
		return 0;
	struct conn_key key = {.tgid = task->tgid, .obj = cs->await_obj};
	struct conn_state *c = bpf_map_lookup_elem(&conns, &key);
	if (c && c->fd < 0) {
		c->fd = (__s32)fd;
		resolve_tuple(c, c->fd);
	}
	stop_awaiting(cs, task->pid);
	return 0;
}

#define SYS_FD_PROBE(name)                                              \
	SEC("tracepoint/syscalls/sys_enter_" #name)                     \
	int sys_enter_##name(struct trace_event_raw_sys_enter *ctx)     \
	{                                                               \
		return on_sys_fd((__s64)ctx->args[0], 0);               \
	}

/* write(fd, buf, n) and sendto(fd, buf, n, ...): the buffer is looked at. */
#define SYS_FD_BUF_PROBE(name)                                          \
	SEC("tracepoint/syscalls/sys_enter_" #name)                     \
	int sys_enter_##name(struct trace_event_raw_sys_enter *ctx)     \
	{                                                               \
		return on_sys_fd((__s64)ctx->args[0], (__u64)ctx->args[1]); \
	}

/* The socket syscalls a library makes inside its calls; userspace attaches
 * them (all of them, by these program names) only when the family needs
 * them. */
#define CC_SYS_FD_PROBES()    \
	SYS_FD_PROBE(read)     \
	SYS_FD_BUF_PROBE(write) \
	SYS_FD_PROBE(readv)    \
	SYS_FD_PROBE(writev)   \
	SYS_FD_BUF_PROBE(sendto) \
	SYS_FD_PROBE(recvfrom) \
	SYS_FD_PROBE(sendmsg)  \
	SYS_FD_PROBE(recvmsg)

/* The connection state of (tgid, obj), created when missing. An object
 * reused on another socket starts a new connection. Learns the fd (from the
 * call, else from the family's object once per new connection) and, once
 * connected, the tuple. */
static __always_inline struct conn_state *conn_for(struct pt_regs *ctx, __u32 tgid, __u64 obj, __s32 fd)
{
	struct conn_key key = {.tgid = tgid, .obj = obj};
	struct conn_state *c = bpf_map_lookup_elem(&conns, &key);
	if (c && fd >= 0 && c->fd >= 0 && c->fd != fd)
		c = NULL;
	if (!c) {
		if (fd < 0)
			fd = CC_FAMILY_FD(ctx, obj);
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

/* A keys record's connection fields (id and tuple) from its connection. */
static __always_inline void cc_keys_set_conn(struct cc_keys_event *k, struct conn_state *c)
{
	if (!c)
		return;
	k->conn_id = c->conn_id;
	if (c->has_tuple) {
		k->family = c->family;
		k->sport = c->sport;
		k->dport = c->dport;
		__builtin_memcpy(k->laddr, c->laddr, CC_ADDR_LEN);
		__builtin_memcpy(k->raddr, c->raddr, CC_ADDR_LEN);
	}
}

/* A new connection on (tgid, obj) with this fd, whatever was known before
 * (SSL_set_fd, gnutls_transport_set_int2: an object reused on another
 * socket). */
static __always_inline void cc_stream_set_fd(struct pt_regs *ctx, __u64 obj, __s32 fd)
{
	if (cc_filtered_now())
		return;
	struct conn_key key = {.tgid = bpf_get_current_pid_tgid() >> 32, .obj = obj};
	bpf_map_delete_elem(&conns, &key);
	conn_for(ctx, key.tgid, obj, fd);
}

/* The library frees its object (SSL_free, gnutls_deinit): the connection is
 * over. Memory-BIO connections (no fd to tell them apart) whose next object
 * lands at the same address then start a new connection: a new conn_id,
 * offsets from 0. Once per connection, so its trap costs nothing per byte. */
static __always_inline void cc_stream_forget(__u64 obj)
{
	struct conn_key key = {.tgid = bpf_get_current_pid_tgid() >> 32, .obj = obj};
	bpf_map_delete_elem(&conns, &key);
}

/* A handshake call returns: its socket syscalls named the fd (connections
 * whose first read is served from the library's buffer make none later). */
static __always_inline void cc_stream_handshake_ret(struct pt_regs *ctx, struct call_state *cs)
{
	struct conn_state *c = conn_for(ctx, bpf_get_current_pid_tgid() >> 32, cs->obj, cs->fd);
	if (c && c->fd < 0)
		cc_stream_await(cc_task(), cs->obj);
}

struct emit_ctx {
	void *ctx;      /* the program's context (bpf_perf_event_output needs it) */
	__u64 buf;      /* start of the call's buffer */
	__u32 total;    /* bytes to emit */
	__u32 _pad;
};

/* Ring path, one chunk: reserved in the ring at a size class that holds it
 * (a reservation's size must be a constant the verifier knows), the header
 * copied from the scratch, and the bytes read from the process straight
 * into the reservation: one copy of the bytes, where going through the
 * scratch makes two (measured with bench/probe_cost against its copy
 * floor). The unused tail of a class is never written; the reader takes
 * only hdr_len + data_len of a record. 0, or -1 when the ring is full, or
 * -2 when the process's memory could not be read (nothing is submitted). */
static __always_inline long emit_in_ring(void *ring, const struct cc_data_event *ev, __u64 src, __u64 len,
					 const __u32 cap)
{
	__u8 *rec = bpf_ringbuf_reserve(ring, sizeof(*ev) + cap, 0);
	if (!rec)
		return -1;
	__builtin_memcpy(rec, ev, sizeof(*ev));
	/* Bound the very register handed to the helper (see emit_chunk). */
	asm volatile("%[len] &= 0x7fff" : [len] "+r"(len));
	if (len > cap || len == 0 || bpf_probe_read_user(rec + sizeof(*ev), len, (void *)src)) {
		bpf_ringbuf_discard(rec, BPF_RB_NO_WAKEUP);
		return -2;
	}
	bpf_ringbuf_submit(rec, cc_wake_flags(ring, sizeof(*ev) + cap));
	return 0;
}

/* Size classes: powers of two, so a record wastes less than half of its
 * reservation's data part (the ring holds at worst half as many bytes of
 * plaintext as it could; 1 KiB and 16 KiB calls waste nothing). */
static __always_inline long emit_in_ring_classed(void *ring, const struct cc_data_event *ev, __u64 src, __u64 len)
{
	if (len <= 64)
		return emit_in_ring(ring, ev, src, len, 64);
	if (len <= 256)
		return len <= 128 ? emit_in_ring(ring, ev, src, len, 128) : emit_in_ring(ring, ev, src, len, 256);
	if (len <= 1024)
		return len <= 512 ? emit_in_ring(ring, ev, src, len, 512) : emit_in_ring(ring, ev, src, len, 1024);
	if (len <= 4096)
		return len <= 2048 ? emit_in_ring(ring, ev, src, len, 2048) : emit_in_ring(ring, ev, src, len, 4096);
	return len <= 8192 ? emit_in_ring(ring, ev, src, len, 8192) : emit_in_ring(ring, ev, src, len, CC_CHUNK_MAX);
}

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
	__u64 seq0 = s->ev.seq;
	__u32 flags0 = s->ev.flags;
	s->ev.hdr.data_len = len;
	s->ev.call_off = off;
	s->ev.seq = seq0 + off;
	if (off + len >= ec->total)
		s->ev.flags |= CC_FLAG_LAST_CHUNK;
	long err;
	if (use_perf) {
		/* A perf ring takes a copy of memory the program owns. */
		if (bpf_probe_read_user(s->data, len, (void *)(ec->buf + off)))
			err = -2;
		else
			err = cc_output(ec->ctx, ring, s, sizeof(s->ev) + len) ? -1 : 0;
	} else {
		err = emit_in_ring_classed(ring, &s->ev, ec->buf + off, len);
	}
	s->ev.seq = seq0;
	s->ev.flags = flags0;
	if (err == -2) {
		cc_stat_add(CC_STAT_READ_FAULT, 1);
		cc_stat_add(CC_STAT_READ_FAULT_BYTES, len);
		return 0; /* the gap is visible to userspace through seq */
	}
	if (err) {
		cc_stat_add(CC_STAT_RINGBUF_FULL, 1);
		cc_stat_add(CC_STAT_RINGBUF_FULL_BYTES, len);
	} else {
		cc_stat_add(CC_STAT_EVENTS, 1);
		cc_stat_add(CC_STAT_BYTES, len);
	}
	return 0;
}

/* Emits the n bytes the call transferred in direction dir (enum
 * cc_direction) from cs->buf, as chunks of at most CC_CHUNK_MAX, each with
 * the connection's identity, tuple and byte offset. */
static __always_inline void cc_stream_emit(struct pt_regs *ctx, struct task_struct *task, struct call_state *cs,
					   __u64 n, __u8 dir)
{
	__u32 tgid = task->tgid;
	struct conn_state *c = conn_for(ctx, tgid, cs->obj, cs->fd);
	if (!c)
		return;
	__u32 flags = 0;
	__s32 fd = cs->fd;
	if (fd < 0 && c->fd >= 0) {
		fd = c->fd;
		flags |= CC_FLAG_FD_CACHED;
	}
	if (fd < 0) {
		cc_stat_add(CC_STAT_NO_FD, 1);
		cc_stream_await(task, cs->obj);
	}

	__u32 zero = 0;
	__u32 *busy = bpf_map_lookup_elem(&scratch_busy, &zero);
	struct scratch *s = bpf_map_lookup_elem(&scratch_map, &zero);
	if (!s || !busy)
		return;
	if (!cc_claim(busy)) {
		c->seq[dir & 1] += n; /* the loss shows as a gap */
		cc_stat_add(CC_STAT_SCRATCH_BUSY, 1);
		return;
	}
	struct cc_data_event *ev = &s->ev;
	ev->hdr.type = CC_REC_DATA;
	ev->hdr.hdr_len = sizeof(*ev);
	ev->pid = tgid;
	ev->tid = task->pid;
	ev->uid = cc_task_uid(task);
	ev->fd = fd;
	ev->ts_ns = bpf_ktime_get_boot_ns();
	ev->cgroup_id = cc_task_cgroup_id(task);
	ev->conn_id = c->conn_id;
	ev->seq = c->seq[dir & 1];
	ev->direction = dir;
	ev->source = cs->source;
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

	struct emit_ctx ec = {.ctx = ctx, .buf = cs->buf, .total = total};
	bpf_loop((total + CC_CHUNK_MAX - 1) / CC_CHUNK_MAX, emit_chunk, &ec, 0);
	cc_release(busy);
}

#endif /* CLEARCAP_STREAM_BPF_H */
