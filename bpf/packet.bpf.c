// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Packets (-m pcap): a tc program on the interface copies each packet (up to
 * the snap length) into the same per-CPU rings as the modules' keys records
 * (the RingSet is shared), so the processor sees packets and handshake keys
 * in one time order.
 */
#include "common.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";
#ifndef TC_ACT_OK
#define TC_ACT_OK 0 /* a macro of linux/pkt_cls.h, not in vmlinux.h */
#endif

/* Bytes copied per packet at most (load-time, --snaplen), <= CC_PACKET_MAX. */
const volatile __u32 snap_len = CC_PACKET_MAX;

/* Packet record under construction. 256 KiB is above the per-CPU map value
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
	 * for len <= CC_PACKET_MAX (snap_len is one). */
	asm volatile("if %[len] <= %[max] goto +1; %[len] = %[max]" : [len] "+r"(len) : [max] "i"(CC_PACKET_MAX));
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
