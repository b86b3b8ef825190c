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

/*
 * The current task's identity, read straight from its task_struct through
 * the BTF-typed pointer (plain loads, CO-RE relocated). Same values as the
 * bpf_get_current_{uid_gid,cgroup_id,comm} helpers, without a helper call
 * each (the program time of bench/probe_cost dropped when they went).
 */
static __always_inline struct task_struct *cc_task(void)
{
	return bpf_get_current_task_btf();
}

/* Real uid in the initial user namespace, as bpf_get_current_uid_gid(). */
static __always_inline __u32 cc_task_uid(struct task_struct *t)
{
	return t->cred->uid.val;
}

/* cgroup v2 id, as bpf_get_current_cgroup_id(): the default hierarchy's
 * cgroup of the task, its kernfs node id. */
static __always_inline __u64 cc_task_cgroup_id(struct task_struct *t)
{
	return t->cgroups->dfl_cgrp->kn->id;
}

/* Whether the task's cgroup v2 is `id` (at depth `level`) or below it: its
 * ancestor at that depth is the one. Runs only with a cgroup filter. */
static __always_inline bool cc_task_in_cgroup(struct task_struct *t, __u64 id, __u32 level)
{
	struct cgroup *cg = t->cgroups->dfl_cgrp;
	if ((__u32)cg->level < level)
		return false;
	struct cgroup *anc = NULL;
	if (bpf_probe_read_kernel(&anc, sizeof(anc), &cg->ancestors[level & 255]) || !anc)
		return false;
	return BPF_CORE_READ(anc, kn, id) == id;
}

static __always_inline void cc_task_comm(struct task_struct *t, char *dst)
{
	__builtin_memcpy(dst, t->comm, CC_COMM_LEN);
}

static __always_inline void cc_stat_add(__u32 idx, __u64 v)
{
	__u64 *c = bpf_map_lookup_elem(&stats, &idx);
	if (c)
		*c += v; /* per-CPU slot: no atomics needed */
}

/* Filter verdict for the current task. With `cache` (per-thread storage of
 * the caller), the pid verdict - a hash lookup - is kept until the filter
 * changes (cc_filter_cfg.generation); uid and cgroup are plain loads and
 * always checked, since a thread may change them. */
struct cc_filter_cache {
	__u32 generation; /* of the cached verdict; 0 = none */
	__u32 pid_out;    /* 1: the pid filter excludes this thread's process */
};

static __always_inline bool cc_filtered_task(struct task_struct *t, struct cc_filter_cache *cache)
{
	__u32 zero = 0;
	struct cc_filter_cfg *cfg = bpf_map_lookup_elem(&filter_cfg, &zero);
	if (!cfg || !cfg->flags)
		return false;
	if (cfg->flags & CC_FILTER_PID) {
		bool out;
		if (cache && cache->generation == cfg->generation) {
			out = cache->pid_out;
		} else {
			__u32 tgid = t->tgid;
			out = !bpf_map_lookup_elem(&pid_filter, &tgid);
			if (cache) {
				cache->pid_out = out;
				cache->generation = cfg->generation;
			}
		}
		if (out)
			return true;
	}
	if ((cfg->flags & CC_FILTER_UID) && cc_task_uid(t) != cfg->uid)
		return true;
	if ((cfg->flags & CC_FILTER_CGROUP) && !cc_task_in_cgroup(t, cfg->cgroup_id, cfg->cgroup_level))
		return true;
	return false;
}

/* Filter verdict for the current task, without a cache. */
static __always_inline bool cc_filtered_now(void)
{
	return cc_filtered_task(cc_task(), NULL);
}

/* Takes a per-CPU scratch owner count (scratch_busy, pkt_scratch_busy: why
 * they exist is said there). False: in use, the caller drops and counts;
 * true: give it back with cc_release(). */
static __always_inline bool cc_claim(__u32 *busy)
{
	if (__sync_fetch_and_add(busy, 1) == 0)
		return true;
	__sync_fetch_and_add(busy, -1);
	return false;
}

static __always_inline void cc_release(__u32 *busy)
{
	__sync_fetch_and_add(busy, -1);
}

static __always_inline void *cc_current_ring(void)
{
	__u32 cpu = bpf_get_smp_processor_id();
	return bpf_map_lookup_elem(&rings, &cpu);
}

/*
 * --buffer perf: records go to a perf event array (one perf ring per CPU,
 * opened by userspace) instead of the BPF ring buffers, the transport of
 * kernels before 5.8. Load-time; the ring code is then dead and dropped by
 * the verifier.
 */
const volatile __u32 use_perf = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} perf_events SEC(".maps");

/* Bytes this CPU wrote to its ring since the wake-up policy last asked the
 * ring how much waits (see cc_wake_flags). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} wake_pending SEC(".maps");

/* Flags for a record of `bytes` about to be written: wake the reader only
 * once wakeup_bytes wait. Asking the ring is a helper call, so it is asked
 * only after every wakeup_bytes/8 written on this CPU: the reader then wakes
 * at most that much past the threshold. */
static __always_inline __u64 cc_wake_flags(void *ring, __u64 bytes)
{
	if (wakeup_bytes == 0)
		return BPF_RB_FORCE_WAKEUP;
	__u32 zero = 0;
	__u64 *pending = bpf_map_lookup_elem(&wake_pending, &zero);
	if (pending) {
		*pending += bytes;
		if (*pending < wakeup_bytes / 8)
			return BPF_RB_NO_WAKEUP;
		*pending = 0;
	}
	return bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA) >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP
									    : BPF_RB_NO_WAKEUP;
}

/* One record out, from memory the program owns: to this CPU's perf ring
 * (--buffer perf) or its BPF ring. 0 or a negative error (full: the caller
 * counts the loss). */
static __always_inline long cc_output(void *ctx, void *ring, void *data, __u64 size)
{
	if (use_perf)
		return bpf_perf_event_output(ctx, &perf_events, BPF_F_CURRENT_CPU, data, size);
	return bpf_ringbuf_output(ring, data, size, cc_wake_flags(ring, size));
}

#endif /* CLEARCAP_COMMON_BPF_H */
