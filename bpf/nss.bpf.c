// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * NSS plaintext capture, at NSPR's PR_Write/PR_Read/PR_Send/PR_Recv.
 *
 * Those functions serve every NSPR file descriptor (files, pipes, plain
 * sockets, SSL sockets); only calls on a descriptor with an SSL layer are
 * captured. NSS's SSL layer calls the layer below through its method table,
 * never through these exported functions, so a call is seen once, above
 * the encryption.
 *
 * NSPR's public ABI (prio.h, unchanged since NSPR 4.0), x86_64:
 *   PRFileDesc  { methods @0; secret @8; lower @16; higher @24; dtor @32; identity @40 }
 *   PRIOMethods { file_type @0 (PR_DESC_FILE 1, SOCKET_TCP 2, LAYERED 4); ... }
 * and of its unix build (primpl.h, private but unchanged for decades):
 *   the bottom layer's PRFilePrivate keeps the OS fd at @28 (md.osfd).
 * The SSL layer: file_type LAYERED, identity > 0, a lower layer, and a
 * secret (NSS's sslSocket) whose first field points back to the layer. The
 * identity number itself is handed out at run time (PR_GetUniqueIdentity),
 * so it cannot be compared.
 */
#include "stream.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define PR_FD_METHODS 0
#define PR_FD_SECRET 8
#define PR_FD_LOWER 16
#define PR_FD_IDENTITY 40
#define PR_DESC_SOCKET_TCP 2
#define PR_DESC_LAYERED 4
#define PR_SECRET_OSFD 28
#define PR_MAX_LAYERS 6 /* layers walked at most (SSL, a few app layers, the socket) */

static __always_inline __u64 read_ptr(__u64 addr)
{
	__u64 v = 0;
	if (bpf_probe_read_user(&v, sizeof(v), (void *)addr))
		return 0;
	return v;
}

static __always_inline __s32 read_s32(__u64 addr, __s32 dflt)
{
	__s32 v = dflt;
	if (bpf_probe_read_user(&v, sizeof(v), (void *)addr))
		return dflt;
	return v;
}

/* The socket fd under an NSPR descriptor with an SSL layer; -1 when it has
 * none (a file, a pipe, a plain socket). */
static __always_inline __s32 ssl_socket_fd(__u64 fd)
{
	bool ssl = false;
	__u64 layer = fd;
#pragma unroll
	for (int i = 0; i < PR_MAX_LAYERS; i++) {
		if (!layer)
			return -1;
		__u64 methods = read_ptr(layer + PR_FD_METHODS);
		if (!methods)
			return -1;
		__s32 type = read_s32(methods, 0);
		__u64 lower = read_ptr(layer + PR_FD_LOWER);
		if (!lower) {
			/* The bottom: the OS descriptor, if it is a TCP socket under an SSL layer. */
			if (!ssl || type != PR_DESC_SOCKET_TCP)
				return -1;
			__u64 secret = read_ptr(layer + PR_FD_SECRET);
			return secret ? read_s32(secret + PR_SECRET_OSFD, -1) : -1;
		}
		if (!ssl && type == PR_DESC_LAYERED && read_s32(layer + PR_FD_IDENTITY, 0) > 0) {
			__u64 secret = read_ptr(layer + PR_FD_SECRET);
			ssl = secret && read_ptr(secret) == layer;
		}
		layer = lower;
	}
	return -1;
}

static __always_inline int pr_entry(struct pt_regs *ctx, __u8 source)
{
	__u64 fd = PT_REGS_PARM1(ctx);
	__s32 sock = ssl_socket_fd(fd);
	if (sock < 0)
		return cc_stream_skip(CC_STAT_NOT_TLS);
	return cc_stream_entry(source, fd, PT_REGS_PARM2(ctx), 0, sock);
}

SEC("uprobe")
int BPF_KPROBE(pr_write_entry) { return pr_entry(ctx, CC_SRC_PR_WRITE); }

SEC("uprobe")
int BPF_KPROBE(pr_read_entry) { return pr_entry(ctx, CC_SRC_PR_READ); }

SEC("uprobe")
int BPF_KPROBE(pr_send_entry) { return pr_entry(ctx, CC_SRC_PR_SEND); }

SEC("uprobe")
int BPF_KPROBE(pr_recv_entry) { return pr_entry(ctx, CC_SRC_PR_RECV); }

SEC("uretprobe")
int BPF_KRETPROBE(pr_ret)
{
	struct task_struct *task = cc_task();
	struct call_state cs;
	if (!cc_stream_take(task, &cs))
		return 0;
	int rc = (int)PT_REGS_RC(ctx); /* PRInt32 */
	if (rc <= 0)
		return 0;
	__u8 dir = (cs.source == CC_SRC_PR_READ || cs.source == CC_SRC_PR_RECV) ? CC_DIR_READ : CC_DIR_WRITE;
	cc_stream_emit(ctx, task, &cs, (__u64)rc, dir);
	return 0;
}
