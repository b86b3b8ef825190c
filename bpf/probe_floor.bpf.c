// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The floor any uprobe tool pays: an entry uprobe and a uretprobe that only
 * count. Attached to the same functions as clearcap's tls probes, it prices
 * the trap itself, so clearcap's own work is judged as a ratio to it in the
 * same run (bench/probe_cost, tools/perf-harness). Nothing else is read.
 */
/* Not common.bpf.h: its rings and filter maps would be created for nothing. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Hits per CPU: [0] entries, [1] returns. Per-CPU so no atomic is needed,
 * which would add cost the floor must not have. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
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
