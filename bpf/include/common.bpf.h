/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Helpers shared by clearcap's BPF programs: rings, counters, filters. */
#ifndef CLEARCAP_COMMON_BPF_H
#define CLEARCAP_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "clearcap_abi.h"

/* Not in vmlinux.h: these are macros in the kernel headers. */
#ifndef S_IFMT
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#endif
#ifndef AF_INET
#define AF_INET 2
#define AF_INET6 10
#endif

/* Size of one inner ring; userspace creates each inner ring with its own size
 * (--mapsize) and installs it before attaching. */
#define CC_RING_TEMPLATE_SIZE (256 * 1024)

/* Ring of the current CPU: one BPF ring buffer per CPU, so producers on
 * different CPUs never contend on a ring's spinlock. */
struct cc_ring_inner {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, CC_RING_TEMPLATE_SIZE);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1); /* set to the number of possible CPUs before load */
	__type(key, __u32);
	__array(values, struct cc_ring_inner);
} rings SEC(".maps");

/* Loss and activity counters, index = enum cc_stat. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CC_STAT__COUNT);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* Run-time filters (one entry); userspace may rewrite it at any time. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cc_filter_cfg);
} filter_cfg SEC(".maps");

/* tgids to capture when CC_FILTER_PID is set. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} pid_filter SEC(".maps");

/* Ring wake-up policy (load-time): wake the reader only once this many bytes
 * wait in the ring; below that the reader finds records on its timer. A
 * wake-up per record costs ~10 us per call on a VM. 0 = wake on every record. */
const volatile __u64 wakeup_bytes = 0;

static __always_inline void cc_stat_add(__u32 idx, __u64 v)
{
	__u64 *c = bpf_map_lookup_elem(&stats, &idx);
	if (c)
		*c += v; /* per-CPU slot: no atomics needed */
}

static __always_inline bool cc_filtered(__u32 tgid)
{
	__u32 zero = 0;
	struct cc_filter_cfg *cfg = bpf_map_lookup_elem(&filter_cfg, &zero);
	if (!cfg || !cfg->flags)
		return false;
	if ((cfg->flags & CC_FILTER_PID) && !bpf_map_lookup_elem(&pid_filter, &tgid))
		return true;
	if ((cfg->flags & CC_FILTER_UID) && (__u32)bpf_get_current_uid_gid() != cfg->uid)
		return true;
	if ((cfg->flags & CC_FILTER_CGROUP) && bpf_get_current_cgroup_id() != cfg->cgroup_id)
		return true;
	return false;
}

static __always_inline void *cc_current_ring(void)
{
	__u32 cpu = bpf_get_smp_processor_id();
	return bpf_map_lookup_elem(&rings, &cpu);
}

static __always_inline __u64 cc_wake_flags(void *ring)
{
	if (wakeup_bytes == 0)
		return BPF_RB_FORCE_WAKEUP;
	return bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA) >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP
									    : BPF_RB_NO_WAKEUP;
}

#endif /* CLEARCAP_COMMON_BPF_H */
