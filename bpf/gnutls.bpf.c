// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * GnuTLS plaintext capture.
 *
 * Entry uprobes on the record-layer calls remember the session, the buffer
 * and the direction; the shared uretprobe emits the bytes the call returned
 * (ssize_t: > 0 is a count, anything else - GNUTLS_E_AGAIN, an alert - emits
 * nothing).
 *
 * Which functions: gnutls_record_send is a tail call into
 * gnutls_record_send2 (3.6.3+), so only send2 is hooked where it exists (a
 * probe on both would see every write twice); gnutls_record_send_range,
 * gnutls_record_recv and gnutls_record_recv_seq do their own work.
 *
 * The socket fd: GnuTLS keeps it behind an opaque transport pointer, so it
 * comes from gnutls_transport_set_int2 (wget, gnutls-cli), from the socket
 * syscalls of the default transport inside a call (sendmsg, recvfrom; seen
 * at the syscall tracepoints) or inside gnutls_handshake, and is cached per
 * session for reads served from GnuTLS's buffer.
 *
 * Keys (-m keylog, -m pcap): GnuTLS calls a built-in key log callback once
 * per secret in every session, (session, label, secret); userspace learns
 * its file offset and where the session keeps the client random by running
 * the library (modules/gnutls/gnutls_keys.cpp) and passes the latter as the
 * probe's cookie. The secrets of one session are gathered here and sent as
 * one keys record when gnutls_handshake returns 0.
 */
#include "stream.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("uprobe")
int BPF_KPROBE(gnutls_send_entry)
{
	return cc_stream_entry(CC_SRC_GNUTLS_SEND, PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), 0, -1);
}

SEC("uprobe")
int BPF_KPROBE(gnutls_send_range_entry)
{
	return cc_stream_entry(CC_SRC_GNUTLS_SEND_RANGE, PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), 0, -1);
}

SEC("uprobe")
int BPF_KPROBE(gnutls_recv_entry)
{
	return cc_stream_entry(CC_SRC_GNUTLS_RECV, PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), 0, -1);
}

SEC("uprobe")
int BPF_KPROBE(gnutls_recv_seq_entry)
{
	return cc_stream_entry(CC_SRC_GNUTLS_RECV_SEQ, PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), 0, -1);
}

SEC("uretprobe")
int BPF_KRETPROBE(gnutls_ret)
{
	struct task_struct *task = cc_task();
	struct call_state cs;
	if (!cc_stream_take(task, &cs))
		return 0;
	long rc = (long)PT_REGS_RC(ctx); /* ssize_t */
	if (rc <= 0)
		return 0;
	__u8 dir = (cs.source == CC_SRC_GNUTLS_RECV || cs.source == CC_SRC_GNUTLS_RECV_SEQ) ? CC_DIR_READ
											   : CC_DIR_WRITE;
	cc_stream_emit(ctx, task, &cs, (__u64)rc, dir);
	return 0;
}

/* gnutls_transport_set_int2(session, recv_fd, send_fd) (gnutls_transport_set_int
 * is a macro over it): the socket, once per connection. */
SEC("uprobe")
int BPF_KPROBE(gnutls_set_int2_entry)
{
	cc_stream_set_fd(ctx, PT_REGS_PARM1(ctx), (__s32)PT_REGS_PARM3(ctx));
	return 0;
}

/* gnutls_deinit(session): the connection is over (cc_stream_forget). */
SEC("uprobe")
int BPF_KPROBE(gnutls_deinit_entry)
{
	cc_stream_forget(PT_REGS_PARM1(ctx));
	return 0;
}

/* gnutls_handshake: its socket syscalls name the fd of connections whose
 * transport is set through a pointer and whose first read makes none. */
SEC("uprobe")
int BPF_KPROBE(gnutls_handshake_entry) { return cc_stream_entry(CC_SRC_HANDSHAKE, PT_REGS_PARM1(ctx), 0, 0, -1); }

struct keys_key {
	__u32 tgid;
	__u32 _pad;
	__u64 session;
};

/* Secrets of handshakes in progress; LRU: a handshake that never completes
 * ages out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct keys_key);
	__type(value, struct cc_keys_event);
} pending_keys SEC(".maps");

/* A zeroed record to start a session's entry from (too big for the stack). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cc_keys_event);
} keys_zero SEC(".maps");

/* The item a key log label names; -1 for none clearcap keeps (early data). */
static __always_inline int label_item(const char *l)
{
	if (l[0] == 'C' && l[6] == '_') {
		if (l[7] == 'R')
			return CC_KEY_MASTER; /* CLIENT_RANDOM: the TLS 1.2 master secret */
		if (l[7] == 'H')
			return CC_KEY_CLIENT_HS_TRAFFIC;
		if (l[7] == 'T')
			return CC_KEY_CLIENT_APP_TRAFFIC;
	} else if (l[0] == 'S' && l[6] == '_') {
		if (l[7] == 'H')
			return CC_KEY_SERVER_HS_TRAFFIC;
		if (l[7] == 'T')
			return CC_KEY_SERVER_APP_TRAFFIC;
	} else if (l[0] == 'E' && l[1] == 'X') {
		return CC_KEY_EXPORTER;
	}
	return -1;
}

struct gnutls_datum {
	__u64 data;
	__u32 size;
};

/* The built-in key log callback: (session, label, const gnutls_datum_t *secret). */
SEC("uprobe")
int BPF_KPROBE(gnutls_keylog_entry)
{
	if (cc_filtered_now())
		return 0;
	char label[16] = {};
	if (bpf_probe_read_user_str(label, sizeof(label), (void *)PT_REGS_PARM2(ctx)) < 8)
		return 0;
	int item = label_item(label);
	if (item < 0 || item >= CC_KEY__COUNT)
		return 0;
	struct keys_key key = {.tgid = bpf_get_current_pid_tgid() >> 32, .session = PT_REGS_PARM1(ctx)};
	struct cc_keys_event *k = bpf_map_lookup_elem(&pending_keys, &key);
	if (!k) {
		__u32 zero = 0;
		struct cc_keys_event *z = bpf_map_lookup_elem(&keys_zero, &zero);
		if (!z || bpf_map_update_elem(&pending_keys, &key, z, BPF_NOEXIST))
			return 0;
		k = bpf_map_lookup_elem(&pending_keys, &key);
		if (!k)
			return 0;
	}
	struct gnutls_datum secret = {};
	if (bpf_probe_read_user(&secret, sizeof(secret), (void *)PT_REGS_PARM3(ctx)) || secret.size == 0 ||
	    secret.size > CC_KEY_SECRET_MAX) {
		k->failed |= 1u << item;
		cc_stat_add(CC_STAT_KEYS_READ_FAULT, 1);
		return 0;
	}
	__u64 len = secret.size;
	/* 1..64 on the very register handed to the helper (verifier). */
	asm volatile("%[len] -= 1\n\t%[len] &= 63\n\t%[len] += 1" : [len] "+r"(len));
	if (bpf_probe_read_user(k->items[item & 15], len, (void *)secret.data)) {
		k->failed |= 1u << item;
		cc_stat_add(CC_STAT_KEYS_READ_FAULT, 1);
		return 0;
	}
	k->present |= 1u << item;
	__u64 cr_off = bpf_get_attach_cookie(ctx);
	if (!(k->present & (1u << CC_KEY_CLIENT_RANDOM)) &&
	    !bpf_probe_read_user(k->items[CC_KEY_CLIENT_RANDOM], 32, (void *)(key.session + cr_off)))
		k->present |= 1u << CC_KEY_CLIENT_RANDOM;
	return 0;
}

/* A completed handshake: its gathered secrets go out as one keys record. */
static __always_inline void emit_session_keys(struct pt_regs *ctx, __u64 session, __s32 fd)
{
	struct keys_key key = {.tgid = bpf_get_current_pid_tgid() >> 32, .session = session};
	struct cc_keys_event *k = bpf_map_lookup_elem(&pending_keys, &key);
	if (!k)
		return;
	struct task_struct *task = cc_task();
	k->hdr.type = CC_REC_KEYS;
	k->hdr.hdr_len = sizeof(*k);
	k->hdr.data_len = 0;
	k->pid = key.tgid;
	k->tid = task->pid;
	k->ts_ns = bpf_ktime_get_boot_ns();
	cc_task_comm(task, k->comm);
	/* The version is what the secrets say: a master secret is TLS 1.2. */
	__s32 version = (k->present & (1u << CC_KEY_MASTER)) ? 0x0303 : 0x0304;
	__builtin_memcpy(k->items[CC_KEY_VERSION], &version, sizeof(version));
	k->present |= 1u << CC_KEY_VERSION;
	cc_keys_set_conn(k, conn_for(ctx, key.tgid, session, fd));
	void *ring = cc_current_ring();
	if (!ring) {
		cc_stat_add(CC_STAT_NO_RING, 1);
	} else if (cc_output(ctx, ring, k, sizeof(*k))) {
		cc_stat_add(CC_STAT_KEYS_RINGBUF_FULL, 1);
	} else {
		cc_stat_add(CC_STAT_KEYS, 1);
	}
	bpf_map_delete_elem(&pending_keys, &key);
}

SEC("uretprobe")
int BPF_KRETPROBE(gnutls_handshake_ret)
{
	struct call_state cs;
	if (!cc_stream_take(cc_task(), &cs))
		return 0;
	cc_stream_handshake_ret(ctx, &cs);
	if ((int)PT_REGS_RC(ctx) == 0)
		emit_session_keys(ctx, cs.obj, cs.fd);
	return 0;
}

CC_SYS_FD_PROBES()
