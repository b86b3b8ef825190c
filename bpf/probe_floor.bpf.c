// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The floor any uprobe tool pays: an entry uprobe and a uretprobe that only
 * count. Attached to the same functions as clearcap's tls probes, it prices
 * the trap itself, so clearcap's own work is judged as a ratio to it in the
 * same run (bench/probe_cost, tools/perf-harness). Nothing else is read.
 *
 * The copy floor (copy_entry/copy_ret, bench/probe_cost only): the least a
 * tool that captures the bytes must do besides the trap: remember the
 * buffer at entry (task storage), and at return copy the bytes the call
 * returned straight into a ring record (one copy, no header, no connection,
 * no wake-up). clearcap's program time minus this is what its records'
 * identity, offsets, chunking and accounting cost.
 */
/* Not common.bpf.h: its rings and filter maps would be created for nothing. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Hits per CPU: [0] entries, [1] returns, [2] copy-floor records lost to
 * a full ring. Per-CPU so no atomic is needed, which would add cost the
 * floor must not have. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&hits, &idx);
	if (c)
		*c += 1;
}

SEC("uprobe")
int BPF_KPROBE(floor_entry)
{
	count(0);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(floor_ret)
{
	count(1);
	return 0;
}

/* ---------------------------------------------------------- copy floor */

#define COPY_MAX 16384

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64); /* the call's buffer */
} copy_calls SEC(".maps");

/* Sized by userspace before load (a page when the copy floor is not used). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} copy_ring SEC(".maps");

SEC("uprobe")
int BPF_KPROBE(copy_entry)
{
	__u64 *buf = bpf_task_storage_get(&copy_calls, bpf_get_current_task_btf(), 0,
					  BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (buf)
		*buf = PT_REGS_PARM2(ctx);
	count(0);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(copy_ret)
{
	count(1);
	__u64 *buf = bpf_task_storage_get(&copy_calls, bpf_get_current_task_btf(), 0, 0);
	int rc = (int)PT_REGS_RC(ctx);
	if (!buf || rc <= 0)
		return 0;
	/* A reservation must have a constant size: the largest record. Only
	 * the bytes written are touched. */
	__u8 *rec = bpf_ringbuf_reserve(&copy_ring, COPY_MAX, 0);
	if (!rec) {
		count(2);
		return 0;
	}
	__u64 len = rc;
	asm volatile("%[len] &= 0x7fff" : [len] "+r"(len));
	if (len > COPY_MAX || len == 0 || bpf_probe_read_user(rec, len, (void *)*buf)) {
		bpf_ringbuf_discard(rec, BPF_RB_NO_WAKEUP);
		return 0;
	}
	bpf_ringbuf_submit(rec, BPF_RB_NO_WAKEUP);
	return 0;
}
