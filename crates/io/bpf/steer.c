// SPDX-License-Identifier: MIT OR Apache-2.0
//
// rvs AF_XDP steering program (rvs-io `xdp` module).
//
// Runs on every frame an interface receives and decides between two verdicts only:
//
// - XDP_REDIRECT into the AF_XDP socket of the receive queue (map `rvs_xsks`) when the
//   frame belongs to the balancer: its destination is a virtual service, or its source is
//   a real server answering through NAT (map `rvs_rules`, filled by user space);
// - XDP_PASS for everything else, so ARP, IPv6 neighbour discovery, SSH, health-check
//   replies and the host's own traffic stay with the kernel. When no socket is bound to
//   the queue, the redirect falls back to XDP_PASS as well.
//
// Each verdict is counted by reason in the per-CPU array `rvs_stats` (indices: enum stat
// below, mirrored by `xdp::rules::stat`).
//
// Before steering, a fast path forwards established flows in the kernel (Katran's model):
// user space fills the hash map `rvs_flows` (key: the received packet's 5-tuple, value:
// the rewrite and the egress), and a matching packet is rewritten (DR, DNAT, SNAT or
// IP-in-IP), counted in `rvs_flow_stats[counter]` and sent with XDP_TX or bpf_redirect.
// IPv4 flows are looked up first in `rvs_ftab`, an array of 32-byte slots pointing into a
// small table of shared rewrites, both written by user space through shared mappings (see
// struct rvs_ftab_slot); the rest, and the
// IPv4 flows that did not find a free slot, are in `rvs_flows`.
// Anything the fast path does not take (no entry, TCP SYN/FIN/RST, TTL <= 1, too big,
// IPv4 options or fragments, bad IPv4 checksum, VLAN tags, extension headers) goes on to
// the steering below unmodified. The rewrites must give the same bytes as rvs-core
// (crates/core/src/xmit.rs): the layouts below are mirrored by `xdp::flows`.
//
// The program is self-contained (no kernel or libbpf headers) so that building it needs
// only clang: `clang -target bpf -O2 -g -c steer.c`. The key layout must match
// `xdp::rules::SteerKey` byte for byte.

#include "rvs_bpf.h"

// Kernel UAPI values (linux/if_ether.h, linux/in.h).
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8

#define IPPROTO_HOPOPTS 0
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_ROUTING 43
#define IPPROTO_FRAGMENT 44
#define IPPROTO_AH 51
#define IPPROTO_ICMPV6 58
#define IPPROTO_NONE 59
#define IPPROTO_DSTOPTS 60
#define IPPROTO_SCTP 132

// Bounds of the parser, to keep the verifier's work finite.
#define MAX_VLAN 2 // 802.1ad + 802.1Q
#define MAX_EXT 6  // IPv6 extension headers walked before giving up

// Helpers by number (linux/bpf.h, enum bpf_func_id).
static long (*bpf_redirect)(__u32 ifindex, __u64 flags) = (void *)23;
static long (*bpf_xdp_adjust_head)(void *ctx, int delta) = (void *)44;
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)51;
static long (*bpf_xdp_adjust_tail)(void *ctx, int delta) = (void *)65;
static __u64 (*bpf_xdp_get_buff_len)(void *ctx) = (void *)188;
static long (*bpf_l4_csum_replace)(void *skb, __u32 offset, __u64 from, __u64 to,
				   __u64 flags) = (void *)11;
static __s64 (*bpf_csum_diff)(void *from, __u32 from_size, void *to, __u32 to_size,
			      __u32 seed) = (void *)28;
static long (*bpf_skb_change_tail)(void *skb, __u32 len, __u64 flags) = (void *)38;
static long (*bpf_skb_pull_data)(void *skb, __u32 len) = (void *)39;
static long (*bpf_skb_adjust_room)(void *skb, int len_diff, __u32 mode, __u64 flags) = (void *)50;

// What a rule matches (`kind`).
enum kind {
	KIND_DST = 0,      // destination address and port: a virtual service
	KIND_SRC = 1,      // source address and port: a real server's NAT reply
	KIND_DST_FRAG = 2, // any fragment to the address (ports are not in every fragment)
	KIND_SRC_FRAG = 3, // any fragment from the address
};

// A rule key. IPv4 addresses fill the first 4 bytes of `addr`, the rest is zero. Ports
// are in network byte order; 0 matches every port (and is the only port of protocols
// without ports). 24 bytes, no implicit padding.
struct rvs_key {
	__u8 family; // 4 or 6
	__u8 proto;  // IP protocol number
	__u8 kind;   // enum kind
	__u8 pad0;
	__u16 port;
	__u16 pad1;
	__u32 addr[4];
};

enum stat {
	STAT_STEER_DST = 0,   // redirected: destination is a virtual service
	STAT_STEER_SRC = 1,   // redirected: source is a NAT real server
	STAT_STEER_FRAG = 2,  // redirected: fragment to/from a rule's address
	STAT_PASS_NOMATCH = 3, // IP, but no rule matched
	STAT_PASS_NOT_IP = 4, // ARP, LLDP, ... (not IPv4/IPv6)
	STAT_PASS_ND = 5,     // ICMPv6 router/neighbour discovery, always the kernel's
	STAT_PASS_MALFORMED = 6, // truncated headers, or too many VLAN/extension headers
	STAT_PASS_NO_SOCKET = 7, // a rule matched but no AF_XDP socket is on this queue
	// Fast path (a flow entry matched). The PASS ones then go on to the steering above,
	// which counts the frame a second time under its own reason.
	STAT_FAST_FORWARD = 8,    // rewritten and sent (XDP_TX or XDP_REDIRECT)
	STAT_FAST_PASS_FLAGS = 9, // TCP SYN, FIN or RST: user space runs the state machine
	STAT_FAST_PASS_TTL = 10,  // TTL / hop limit <= 1: user space sends time exceeded
	STAT_FAST_PASS_BIG = 11,  // IP length > entry max_len: user space sends frag needed
	STAT_FAST_DROP = 12,      // bpf_xdp_adjust_tail/head failed: XDP_DROP
	STAT_COUNT = 13,
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC); // memory per rule in use
	__uint(max_entries, 65536); // user space may resize before loading
	__type(key, struct rvs_key);
	__type(value, __u32);
} rvs_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64); // indexed by receive queue
	__type(key, __u32);
	__type(value, __u32);
} rvs_xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} rvs_stats SEC(".maps");

INLINE __u16 bswap16(__u16 v) { return __builtin_bswap16(v); }

INLINE int count(__u32 idx, int verdict)
{
	__u64 *c = bpf_map_lookup_elem(&rvs_stats, &idx);
	if (c)
		*c += 1;
	return verdict;
}

INLINE int hit(struct rvs_key *k) { return bpf_map_lookup_elem(&rvs_rules, k) != 0; }

INLINE int steer(struct xdp_md *ctx, __u32 why)
{
	// The low bits of the flags are the action when the queue has no socket.
	long act = bpf_redirect_map(&rvs_xsks, ctx->rx_queue_index, XDP_PASS);
	if (act != XDP_REDIRECT)
		return count(STAT_PASS_NO_SOCKET, XDP_PASS);
	return count(why, XDP_REDIRECT);
}

// Copy an address (4 or 16 bytes) into the key, as 32-bit words. The packet may be
// unaligned; BPF loads do not need alignment and the verifier allows unaligned packet
// access where the CPU does.
INLINE void set_addr(struct rvs_key *k, const void *a, __u32 alen)
{
	const __u32 *w = a;
	k->addr[0] = w[0];
	if (alen == 16) {
		k->addr[1] = w[1];
		k->addr[2] = w[2];
		k->addr[3] = w[3];
	}
}

// Look the packet up: destination first (a virtual service, exact port then any port),
// then source (a real server). `sport`/`dport` are 0 for protocols without ports. A
// fragment is looked up by address only (kinds *_FRAG, port 0).
INLINE int classify(struct xdp_md *ctx, struct rvs_key *k, const void *saddr,
		    const void *daddr, __u32 alen, __u16 sport, __u16 dport, int frag)
{
	k->kind = frag ? KIND_DST_FRAG : KIND_DST;
	set_addr(k, daddr, alen);
	k->port = dport;
	if (hit(k))
		return steer(ctx, frag ? STAT_STEER_FRAG : STAT_STEER_DST);
	if (dport) {
		k->port = 0;
		if (hit(k))
			return steer(ctx, STAT_STEER_DST);
	}
	k->kind = frag ? KIND_SRC_FRAG : KIND_SRC;
	set_addr(k, saddr, alen);
	k->port = sport;
	if (hit(k))
		return steer(ctx, frag ? STAT_STEER_FRAG : STAT_STEER_SRC);
	if (sport) {
		k->port = 0;
		if (hit(k))
			return steer(ctx, STAT_STEER_SRC);
	}
	return count(STAT_PASS_NOMATCH, XDP_PASS);
}

INLINE int has_ports(__u8 proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP;
}

// The steering decision for the whole (unmodified) frame.
INLINE int steer_frame(struct xdp_md *ctx)
{
	const __u8 *data = (const __u8 *)(long)ctx->data;
	const __u8 *end = (const __u8 *)(long)ctx->data_end;
	struct rvs_key k = {};
	const __u8 *saddr, *daddr, *l4;
	__u32 alen, off = 14;
	__u16 sport = 0, dport = 0;
	int frag = 0;

	if (data + 14 > end)
		return count(STAT_PASS_MALFORMED, XDP_PASS);
	__u16 eth_type = bswap16(*(const __u16 *)(data + 12));

#pragma unroll
	for (int i = 0; i < MAX_VLAN; i++) {
		if (eth_type != ETH_P_8021Q && eth_type != ETH_P_8021AD)
			break;
		if (data + off + 4 > end)
			return count(STAT_PASS_MALFORMED, XDP_PASS);
		eth_type = bswap16(*(const __u16 *)(data + off + 2));
		off += 4;
	}

	if (eth_type == ETH_P_IP) {
		const __u8 *ip = data + off;
		if (ip + 20 > end)
			return count(STAT_PASS_MALFORMED, XDP_PASS);
		__u32 ihl = (ip[0] & 0x0f) * 4;
		if ((ip[0] >> 4) != 4 || ihl < 20)
			return count(STAT_PASS_MALFORMED, XDP_PASS);
		// More-fragments flag or a fragment offset: ports are not in every piece.
		frag = (bswap16(*(const __u16 *)(ip + 6)) & 0x3fff) != 0;
		k.family = 4;
		k.proto = ip[9];
		saddr = ip + 12;
		daddr = ip + 16;
		alen = 4;
		l4 = ip + ihl;
	} else if (eth_type == ETH_P_IPV6) {
		const __u8 *ip6 = data + off;
		if (ip6 + 40 > end)
			return count(STAT_PASS_MALFORMED, XDP_PASS);
		if ((ip6[0] >> 4) != 6)
			return count(STAT_PASS_MALFORMED, XDP_PASS);
		__u8 nh = ip6[6];
		__u32 l4off = 40; // from the start of the IPv6 header
#pragma unroll
		for (int i = 0; i < MAX_EXT; i++) {
			const __u8 *h = ip6 + l4off;
			if (nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS) {
				if (h + 2 > end)
					return count(STAT_PASS_MALFORMED, XDP_PASS);
				nh = h[0];
				l4off += ((__u32)h[1] + 1) * 8;
			} else if (nh == IPPROTO_AH) {
				if (h + 2 > end)
					return count(STAT_PASS_MALFORMED, XDP_PASS);
				nh = h[0];
				l4off += ((__u32)h[1] + 2) * 4;
			} else if (nh == IPPROTO_FRAGMENT) {
				if (h + 8 > end)
					return count(STAT_PASS_MALFORMED, XDP_PASS);
				nh = h[0];
				// Offset or more-fragments set: a real fragment. (An atomic fragment,
				// both zero, carries the whole datagram and is looked up normally.)
				if (bswap16(*(const __u16 *)(h + 2)) & 0xfff9)
					frag = 1;
				l4off += 8;
			} else {
				break;
			}
		}
		if (nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS ||
		    nh == IPPROTO_AH || nh == IPPROTO_FRAGMENT)
			return count(STAT_PASS_MALFORMED, XDP_PASS); // chain longer than MAX_EXT
		l4 = ip6 + l4off;
		if (nh == IPPROTO_ICMPV6) {
			if (l4 + 1 > end)
				return count(STAT_PASS_MALFORMED, XDP_PASS);
			// Router solicitation/advertisement, neighbour solicitation/advertisement,
			// redirect: the host's business whatever the rules say.
			if (l4[0] >= 133 && l4[0] <= 137)
				return count(STAT_PASS_ND, XDP_PASS);
		}
		k.family = 6;
		k.proto = nh;
		saddr = ip6 + 8;
		daddr = ip6 + 24;
		alen = 16;
	} else {
		return count(STAT_PASS_NOT_IP, XDP_PASS);
	}

	if (!frag && has_ports(k.proto)) {
		if (l4 + 4 > end)
			return count(STAT_PASS_MALFORMED, XDP_PASS);
		sport = *(const __u16 *)l4;
		dport = *(const __u16 *)(l4 + 2);
	}
	return classify(ctx, &k, saddr, daddr, alen, sport, dport, frag);
}

// ---------------------------------------------------------------------------------------
// Fast path: established flows forwarded in the kernel.

// The received packet's 5-tuple. 40 bytes, no implicit padding; IPv4 addresses in the
// first 4 bytes, the rest zero. Mirrored by `xdp::flows::FlowKeyRaw`.
struct rvs_flow_key {
	__u8 family; // 4 or 6
	__u8 proto;  // 6 or 17
	__u16 pad;   // 0
	__u16 sport, dport; // network byte order, as received
	__u32 saddr[4];
	__u32 daddr[4];
};

enum action {
	ACT_ROUTE = 1, // direct routing: TTL and MACs only
	ACT_DNAT = 2,  // destination address and port := addr, port
	ACT_SNAT = 3,  // source address and port := addr, port
	ACT_IPIP = 4,  // IP-in-IP to addr from tsrc, outer family outer_family
};

#define FLOW_COPY_DF 1 // flags: IPIP IPv4 outer copies the inner DF bit

// What to do with a flow. 60 bytes, 4-byte aligned, no implicit padding. Mirrored by
// `xdp::flows::FlowValueRaw`.
struct rvs_flow {
	__u8 action;       // enum action
	__u8 outer_family; // IPIP: 4 or 6
	__u8 flags;        // FLOW_COPY_DF
	__u8 pad;
	__u32 ifindex; // egress interface (XDP_TX when it is the ingress one)
	__u32 counter; // index into rvs_flow_stats
	__u16 max_len; // largest IP length (inner, before encapsulation) forwarded here
	__u16 port;    // DNAT: new destination port; SNAT: new source port (network order)
	__u8 dmac[6], smac[6];
	__u32 addr[4]; // DNAT: new daddr; SNAT: new saddr; IPIP: outer daddr
	__u32 tsrc[4]; // IPIP: outer saddr
};

// Per-flow-slot counters, shared by all CPUs (atomic adds), mmap'd by user space.
struct rvs_flow_stat {
	__u64 packets;
	__u64 bytes; // IP length as received (before any encapsulation)
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 131072); // user space sets it before loading
	__type(key, struct rvs_flow_key);
	__type(value, struct rvs_flow);
} rvs_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 131072); // as rvs_flows
	__type(key, __u32);
	__type(value, struct rvs_flow_stat);
} rvs_flow_stats SEC(".maps");

// The IPv4 flow table in front of `rvs_flows`, Katran's compact layout: a 32-byte slot
// per flow (two per cache line) holding the key, the flow's packet and byte counts and
// the index of its rewrite in `rvs_ftab_targets`, a small table that all flows to the same real server
// (or from the same service, for NAT replies) share. The table of 61,696 flows the
// benchmark drives fills 4 MiB instead of the 8 MiB of whole-entry slots, which kept
// spilling out of this CPU's share of the last-level cache. A key lives in one bucket of
// FTAB_WINDOW slots (128 bytes, aligned), chosen by its hash.
// Written by user space through shared mappings (`xdp::flows::FlowTab`) under a sequence
// lock on the slot: `seq` is odd while the slot is being written. A target is rewritten
// only once no slot refers to it any more, and the program reads the target between its
// two reads of the slot's `seq`, so a reader that raced with the change sees the slot's
// `seq` move and skips it. A key lives either here or in `rvs_flows`, never in both.
// Mirrored by `xdp::flows` (layouts and `ftab_hash`).
struct rvs_ftab_slot {
	__u32 seq;          // even: stable; odd: being written
	__u32 saddr, daddr; // network order, as received
	__u16 sport, dport; // network order, as received
	__u8 proto;
	__u8 used; // 1: the slot holds a flow
	__u16 pad;
	__u32 target; // index into rvs_ftab_targets
	// The flow's packets and bytes since user space last folded them into its counter
	// slot of rvs_flow_stats: packets << FTAB_CTR_SHIFT | bytes, one atomic add per
	// packet, on the cache line the lookup already brought in.
	__u64 ctr;
};
_Static_assert(sizeof(struct rvs_ftab_slot) == 32, "rvs_ftab_slot");

// A rewrite and egress that IPv4 slots share.
struct rvs_ftab_target {
	__u8 action; // enum action (ACT_IPIP: IPv4 outer only)
	__u8 flags;  // FLOW_COPY_DF
	__u8 outer_family; // 4 for IPIP, else 0
	__u8 pad;
	__u32 ifindex;
	__u16 max_len;
	__u16 port; // network order
	__u8 dmac[6], smac[6];
	__u32 addr; // DNAT: new daddr; SNAT: new saddr; IPIP: outer daddr
	__u32 tsrc; // IPIP: outer saddr
};
_Static_assert(sizeof(struct rvs_ftab_target) == 32, "rvs_ftab_target");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 131072); // user space sets it (a power of two) before loading
	__type(key, __u32);
	__type(value, struct rvs_ftab_slot);
} rvs_ftab SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 65536); // user space sets it before loading
	__type(key, __u32);
	__type(value, struct rvs_ftab_target);
} rvs_ftab_targets SEC(".maps");

// Slots of rvs_ftab minus one; set by user space before loading (frozen: the verifier
// sees a constant).
volatile const __u32 rvs_ftab_mask = 131071;

#define FTAB_WINDOW 4
#define FTAB_CTR_SHIFT 36 // bytes below, packets above (`xdp::flows::FTAB_CTR_SHIFT`)
#define barrier() asm volatile("" ::: "memory")

// The slot hash of an IPv4 4-tuple and protocol (`xdp::flows::ftab_hash`). Addresses and
// ports as loaded from the packet (native loads of network-order bytes).
INLINE __u32 ftab_hash(__u32 saddr, __u32 daddr, __u16 sport, __u16 dport, __u8 proto)
{
	__u32 h = saddr * 0x9e3779b1u;
	h = (h ^ daddr) * 0x85ebca6bu;
	h = (h ^ ((__u32)sport | ((__u32)dport << 16)) ^ proto) * 0xc2b2ae35u;
	return h ^ (h >> 16);
}

// Look an IPv4 flow up in rvs_ftab; on a hit, copy it into `out`, point `ctr` at the
// slot's counts and return 1.
INLINE int ftab_lookup(__u32 saddr, __u32 daddr, __u16 sport, __u16 dport, __u8 proto,
		       struct rvs_flow *out, __u64 **ctr)
{
	__u32 h = ftab_hash(saddr, daddr, sport, dport, proto);
	__u32 base = h & rvs_ftab_mask & ~(__u32)(FTAB_WINDOW - 1);
#pragma unroll
	for (int i = 0; i < FTAB_WINDOW; i++) {
		__u32 idx = base + i;
		struct rvs_ftab_slot *s = bpf_map_lookup_elem(&rvs_ftab, &idx);
		if (!s)
			return 0;
		__u32 seq = *(volatile __u32 *)&s->seq;
		if (seq & 1)
			continue;
		barrier();
		if (!s->used || s->saddr != saddr || s->daddr != daddr || s->sport != sport ||
		    s->dport != dport || s->proto != proto)
			continue;
		__u32 ti = s->target;
		struct rvs_ftab_target *t = bpf_map_lookup_elem(&rvs_ftab_targets, &ti);
		if (!t)
			continue;
		out->action = t->action;
		out->outer_family = t->outer_family;
		out->flags = t->flags;
		out->ifindex = t->ifindex;
		out->max_len = t->max_len;
		out->port = t->port;
		__builtin_memcpy(out->dmac, t->dmac, 6);
		__builtin_memcpy(out->smac, t->smac, 6);
		out->addr[0] = t->addr;
		out->tsrc[0] = t->tsrc;
		barrier();
		if (*(volatile __u32 *)&s->seq != seq)
			continue;
		*ctr = &s->ctr;
		return 1;
	}
	return 0;
}

// IPv4 identification of the outer headers this program creates, per CPU.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} rvs_ip_ident SEC(".maps");

#define FP_CONTINUE (-1) // not taken: go on to the steering, frame unmodified
#define ETH_HLEN 14

// Checksum arithmetic on raw (network order) 16-bit words: one's complement addition
// commutes with byte swapping, so this gives the same bytes as rvs-wire's `checksum`
// functions, which work on big-endian values.
INLINE __u16 fold64(__u64 s)
{
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

INLINE __u16 not16(__u16 v) { return (__u16)~v; }

// rvs-wire `update16` (RFC 1624 eq. 3).
INLINE __u16 csum_upd16(__u16 c, __u16 old, __u16 new)
{
	return not16(fold64((__u64)not16(c) + not16(old) + new));
}

// rvs-wire `update32` (`update_bytes` on 4 bytes): word by word.
INLINE __u16 csum_upd32(__u16 c, __u32 old, __u32 new)
{
	return not16(fold64((__u64)not16(c) + not16((__u16)old) + not16((__u16)(old >> 16)) +
			    (new & 0xffff) + (new >> 16)));
}

// rvs-wire `data` of 16 bytes: the folded sum of its words.
INLINE __u16 sum128(const __u32 *w)
{
	return fold64((__u64)w[0] + w[1] + w[2] + w[3]);
}

// rvs-wire `update_bytes` on 16 bytes: sums of the old and new spans.
INLINE __u16 csum_upd128(__u16 c, __u16 old_sum, __u16 new_sum)
{
	return not16(fold64((__u64)not16(c) + not16(old_sum) + new_sum));
}

// rvs-wire `udp_rule`: a field of 0 (no checksum) stays 0, a computed 0 is 0xffff.
INLINE __u16 udp_rule(__u16 c, __u16 updated)
{
	if (c == 0)
		return 0;
	return updated == 0 ? 0xffff : updated;
}

// RFC 6040 normal mode (rvs-core `outer_tos`): CE becomes ECT(0), the rest is copied.
INLINE __u8 outer_tos(__u8 inner)
{
	if ((inner & 3) == 3)
		return (inner & ~3) | 2;
	return inner;
}

// Rewrite an address (`a`, 1 or 4 words) and the port at `p` of a TCP (l4 checksum at
// `c`) or UDP packet, as rvs-core's `rewrite`. `ipc` is the IPv4 header checksum (NULL
// for IPv6).
INLINE void nat_rewrite(__u32 *a, __u16 *p, __u16 *c, __u16 *ipc, int v6, int udp,
			const struct rvs_flow *f)
{
	__u16 old_port = *p, new_port = f->port;
	__u16 l4c = *c;
	if (v6) {
		__u16 old_sum = sum128(a);
		__u16 new_sum = sum128(f->addr);
		a[0] = f->addr[0];
		a[1] = f->addr[1];
		a[2] = f->addr[2];
		a[3] = f->addr[3];
		*p = new_port;
		l4c = csum_upd128(l4c, old_sum, new_sum);
		l4c = csum_upd16(l4c, old_port, new_port);
		if (udp && l4c == 0)
			l4c = 0xffff;
	} else {
		__u32 old = a[0], new = f->addr[0];
		a[0] = new;
		if (ipc)
			*ipc = csum_upd32(*ipc, old, new);
		*p = new_port;
		if (udp) {
			l4c = udp_rule(l4c, csum_upd32(l4c, old, new));
			l4c = udp_rule(l4c, csum_upd16(l4c, old_port, new_port));
		} else {
			l4c = csum_upd32(l4c, old, new);
			l4c = csum_upd16(l4c, old_port, new_port);
		}
	}
	*c = l4c;
}

// The XDP instance: the frame may be a multi-buffer one (the headers are in the first
// buffer, which `end` bounds); room is made in front of the frame and the Ethernet header
// moved there; a frame leaving where it came in takes XDP_TX.
INLINE int xdp_push(struct xdp_md *ctx, int n)
{
	if (bpf_xdp_adjust_head(ctx, -n))
		return -1;
	__u8 *data = (__u8 *)(long)ctx->data;
	__u8 *end = (__u8 *)(long)ctx->data_end;
	if (data + n + 12 > end)
		return -1;
	__builtin_memcpy(data, data + n, 12);
	return 0;
}
#define FP_NAME(n) n##_xdp
#define FP_CTX struct xdp_md
#define FP_PREPARE(ctx) 0
#define FP_TRUNCATED(ctx, ip, ip_len, end) ((ip) + (ip_len) > (end))
#define FP_BUFLEN(ctx) bpf_xdp_get_buff_len(ctx)
#define FP_TRIM(ctx, blen, want) bpf_xdp_adjust_tail(ctx, -(int)((blen) - (want)))
#define FP_PUSH(ctx, n) xdp_push(ctx, n)
#define FP_NAT(ctx, a, p, c, ipc, v6, udp, f) (nat_rewrite(a, p, c, ipc, v6, udp, f), 0)
#define FP_MIXED_IPIP 1
#define FP_FORWARD(ctx, ifindex) \
	((ifindex) == (ctx)->ingress_ifindex ? XDP_TX : (int)bpf_redirect(ifindex, 0))
#define FP_DROP XDP_DROP
#include "fast.h"
#undef FP_NAME
#undef FP_CTX
#undef FP_PREPARE
#undef FP_TRUNCATED
#undef FP_BUFLEN
#undef FP_TRIM
#undef FP_PUSH
#undef FP_NAT
#undef FP_MIXED_IPIP
#undef FP_FORWARD
#undef FP_DROP

// The TC instance, for a socket buffer at the ingress hook (tcx): the same table and
// rewrites without the copy into a page that XDP on an skb costs (veth, generic XDP).
// The headers are pulled into the linear part first; GSO (GRO-merged) and VLAN-tagged
// (tag in the metadata) buffers are not taken; room for an outer header is made with
// bpf_skb_adjust_room, which keeps the buffer's protocol, so an outer header of the other
// family is not added here (rvsd does not install such flows on this hook).
// Only the headers the fast path reads are pulled (pulling a small frame whole, out of a
// packet-ring page, measured 15% slower): Ethernet, IPv4 (no options) or IPv6, then the
// fixed TCP or UDP header.
#define TC_PULL_MIN (ETH_HLEN + 20 + 8)
INLINE int tc_prepare(struct __sk_buff *skb)
{
	if (skb->gso_size || skb->vlan_present)
		return 1;
	__u32 len = skb->len;
	if (bpf_skb_pull_data(skb, len < TC_PULL_MIN ? len : TC_PULL_MIN))
		return 1;
	__u8 *data = (__u8 *)(long)skb->data;
	__u8 *end = (__u8 *)(long)skb->data_end;
	if (data + TC_PULL_MIN > end)
		return 0; // shorter than any packet it takes: fast_path says no
	__u32 want;
	if (data[12] == 0x08 && data[13] == 0x00)
		want = ETH_HLEN + 20 + (data[ETH_HLEN + 9] == IPPROTO_TCP ? 20 : 8);
	else if (data[12] == 0x86 && data[13] == 0xdd)
		want = ETH_HLEN + 40 + 20; // next header not pulled yet: room for TCP
	else
		return 0;
	if (want <= TC_PULL_MIN)
		return 0;
	return bpf_skb_pull_data(skb, len < want ? len : want) != 0;
}
// NAT on a socket buffer: the address and port are written directly, the IPv4 header
// checksum too, but the TCP/UDP checksum through bpf_l4_csum_replace, which knows the
// buffer's checksum state: a CHECKSUM_PARTIAL buffer (from a local sender, the
// transmit checksum not filled in yet) holds the pseudo-header sum there, which only
// the address change touches. For other buffers the arithmetic is nat_rewrite's (RFC
// 1624), with the same UDP rules.
#define BPF_F_PSEUDO_HDR (1ULL << 4)
#define BPF_F_MARK_MANGLED_0 (1ULL << 5)
INLINE int tc_nat(struct __sk_buff *skb, __u32 *a, __u16 *p, __u16 *ipc, int v6, int udp,
		  const struct rvs_flow *f)
{
	__u32 c_off = ETH_HLEN + (v6 ? 40 : 20) + (udp ? 6 : 16);
	__u16 old_port = *p, new_port = f->port;
	__u64 mangled = (udp && !v6) ? BPF_F_MARK_MANGLED_0 : 0;
	*p = new_port;
	if (v6) {
		__u32 old[4], new[4];
		old[0] = a[0];
		old[1] = a[1];
		old[2] = a[2];
		old[3] = a[3];
		new[0] = f->addr[0];
		new[1] = f->addr[1];
		new[2] = f->addr[2];
		new[3] = f->addr[3];
		a[0] = new[0];
		a[1] = new[1];
		a[2] = new[2];
		a[3] = new[3];
		__s64 diff = bpf_csum_diff(old, 16, new, 16, 0);
		if (diff < 0)
			return -1;
		if (bpf_l4_csum_replace(skb, c_off, 0, (__u64)diff, BPF_F_PSEUDO_HDR))
			return -1;
	} else {
		__u32 old = a[0], new = f->addr[0];
		a[0] = new;
		*ipc = csum_upd32(*ipc, old, new);
		if (bpf_l4_csum_replace(skb, c_off, old, new, BPF_F_PSEUDO_HDR | mangled | 4))
			return -1;
	}
	if (bpf_l4_csum_replace(skb, c_off, old_port, new_port, mangled | 2))
		return -1;
	if (v6 && udp) {
		// rvs-wire: an IPv6 UDP checksum is never 0 (0 means none, not allowed there)
		__u8 *data = (__u8 *)(long)skb->data;
		__u8 *end = (__u8 *)(long)skb->data_end;
		if (data + c_off + 2 > end)
			return -1;
		if (*(__u16 *)(data + c_off) == 0)
			*(__u16 *)(data + c_off) = 0xffff;
	}
	return 0;
}
#define FP_NAME(n) n##_tc
#define FP_CTX struct __sk_buff
#define FP_PREPARE(ctx) tc_prepare(ctx)
#define FP_TRUNCATED(ctx, ip, ip_len, end) (ETH_HLEN + (ip_len) > (ctx)->len)
#define FP_BUFLEN(ctx) ((ctx)->len)
#define FP_TRIM(ctx, blen, want) bpf_skb_change_tail(ctx, (__u32)(want), 0)
#define FP_PUSH(ctx, n) bpf_skb_adjust_room(ctx, n, BPF_ADJ_ROOM_MAC, 0)
#define FP_NAT(ctx, a, p, c, ipc, v6, udp, f) tc_nat(ctx, a, p, ipc, v6, udp, f)
#define FP_MIXED_IPIP 0
#define FP_FORWARD(ctx, ifindex) ((int)bpf_redirect(ifindex, 0))
#define FP_DROP TC_ACT_SHOT
#include "fast.h"

SEC("xdp")
int rvs_steer(struct xdp_md *ctx)
{
	int r = fast_path_xdp(ctx);
	if (r >= 0)
		return r;
	return steer_frame(ctx);
}

// The fast path alone at the TC ingress hook (the AF_PACKET backend's choice): a packet
// without a flow entry goes on unmodified (TC_ACT_UNSPEC: the next program, then the
// stack, where rvsd's packet socket receives it).
SEC("classifier")
int rvs_tc(struct __sk_buff *skb)
{
	int r = fast_path_tc(skb);
	if (r >= 0)
		return r;
	return count(STAT_PASS_NOMATCH, TC_ACT_UNSPEC);
}

// Only helpers open to every license are used (map lookup, redirect, redirect_map,
// adjust_head/tail, get_buff_len, skb pull_data/change_tail/adjust_room).
char _license[] SEC("license") = "MIT OR Apache-2.0";
