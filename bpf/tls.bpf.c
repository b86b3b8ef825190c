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
 * Where SSL_read/SSL_write start with an instruction the kernel must
 * single-step (a second trap per call), userspace hooks the function they
 * call instead (ssl_*_any_entry).
 */
#include "common.bpf.h"

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

#define CC_FAMILY_FD(ctx, obj) fd_from_ssl(ctx, obj)
#include "stream.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("uprobe")
int BPF_KPROBE(ssl_write_entry) { return cc_stream_entry(CC_SRC_SSL_WRITE, PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), 0, -1); }

SEC("uprobe")
int BPF_KPROBE(ssl_read_entry) { return cc_stream_entry(CC_SRC_SSL_READ, PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), 0, -1); }

SEC("uprobe")
int BPF_KPROBE(ssl_write_ex_entry)
{
	return cc_stream_entry(CC_SRC_SSL_WRITE_EX, PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), PT_REGS_PARM4(ctx), -1);
}

SEC("uprobe")
int BPF_KPROBE(ssl_read_ex_entry)
{
	return cc_stream_entry(CC_SRC_SSL_READ_EX, PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), PT_REGS_PARM4(ctx), -1);
}

/* The function both SSL_write and SSL_write_ex call (and the same for
 * reading), where userspace found it cheaper to hook than those two
 * (modules/tls/tls_targets.cpp, place_tls_probes): the arguments of
 * SSL_write_ex, (SSL*, buf, num, size_t *count). */
SEC("uprobe")
int BPF_KPROBE(ssl_write_any_entry)
{
	return cc_stream_entry(CC_SRC_SSL_WRITE_ANY, PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), PT_REGS_PARM4(ctx), -1);
}

SEC("uprobe")
int BPF_KPROBE(ssl_read_any_entry)
{
	return cc_stream_entry(CC_SRC_SSL_READ_ANY, PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), PT_REGS_PARM4(ctx), -1);
}

CC_SYS_FD_PROBES()

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
	/* Always a new connection, even when an SSL object is reused. */
	cc_stream_set_fd(ctx, PT_REGS_PARM1(ctx), (__s32)PT_REGS_PARM2(ctx));
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(ssl_free_entry)
{
	cc_stream_forget(PT_REGS_PARM1(ctx));
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(ssl_handshake_entry) { return cc_stream_entry(CC_SRC_HANDSHAKE, PT_REGS_PARM1(ctx), 0, 0, -1); }

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
	cc_keys_set_conn(ev, c);
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
	struct call_state cs;
	if (!cc_stream_take(cc_task(), &cs))
		return 0;
	__u64 ssl = cs.obj;
	__s32 fd = cs.fd;
	/* Each handshake step re-reads the fd: an SSL object reused on another
	 * socket through SSL_set_bio becomes a new connection here. */
	if (fd < 0)
		fd = fd_from_ssl(ctx, ssl);
	struct conn_state *c = conn_for(ctx, id >> 32, ssl, fd);
	if (c && c->fd < 0)
		cc_stream_await(cc_task(), ssl); /* a memory BIO: the next ciphertext write names the socket */
	if ((int)PT_REGS_RC(ctx) == 1) {
		if (!c) {
			struct conn_key key = {.tgid = id >> 32, .obj = ssl};
			c = bpf_map_lookup_elem(&conns, &key);
		}
		emit_keys(ctx, id, ssl, c);
	}
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(ssl_ret)
{
	struct task_struct *task = cc_task();
	struct call_state cs;
	if (!cc_stream_take(task, &cs))
		return 0;
	/* All four functions return a C int: only eax is defined, so -1 must not
	 * be read as the 64-bit 0xffffffff (a phantom 4 GiB read). */
	int rc = (int)PT_REGS_RC(ctx);
	__u64 n = 0;
	if (cs.len_ptr) {
		/* SSL_*_ex: 1 on success, count in *len_ptr; the function they
		 * call: > 0 on success */
		if (rc <= 0 || bpf_probe_read_user(&n, sizeof(n), (void *)cs.len_ptr))
			return 0;
	} else {
		if (rc <= 0)
			return 0;
		n = rc;
	}
	if (n == 0)
		return 0;
	__u8 dir = (cs.source == CC_SRC_SSL_READ || cs.source == CC_SRC_SSL_READ_EX || cs.source == CC_SRC_SSL_READ_ANY)
			   ? CC_DIR_READ
			   : CC_DIR_WRITE;
	cc_stream_emit(ctx, task, &cs, n, dir);
	return 0;
}
