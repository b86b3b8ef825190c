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

/* gnutls_handshake: its socket syscalls name the fd of connections whose
 * transport is set through a pointer and whose first read makes none. */
SEC("uprobe")
int BPF_KPROBE(gnutls_handshake_entry) { return cc_stream_entry(CC_SRC_HANDSHAKE, PT_REGS_PARM1(ctx), 0, 0, -1); }

SEC("uretprobe")
int BPF_KRETPROBE(gnutls_handshake_ret)
{
	struct call_state cs;
	if (cc_stream_take(cc_task(), &cs))
		cc_stream_handshake_ret(ctx, &cs);
	return 0;
}

CC_SYS_FD_PROBES()
