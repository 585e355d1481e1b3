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
// IPv4 flows are looked up first in `rvs_ftab`, an array of one-cache-line slots user
// space writes through a shared mapping (see struct rvs_ftab_slot); the rest, and the
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

// The IPv4 flow table in front of `rvs_flows`: one 64-byte slot (a cache line) per flow,
// open addressing over a window of FTAB_WINDOW consecutive slots from the key's hash.
// Written by user space through a shared mapping (`xdp::flows::FlowTab`) under a
// sequence lock: `seq` is odd while a slot is being written. A key lives either here or
// in `rvs_flows`, never in both. Mirrored by `xdp::flows` (layout and `ftab_hash`).
struct rvs_ftab_slot {
	__u32 seq;          // even: stable; odd: being written
	__u32 saddr, daddr; // network order, as received
	__u16 sport, dport; // network order, as received
	__u8 proto;
	__u8 used;   // 1: the slot holds a flow
	__u8 action; // enum action (ACT_IPIP: IPv4 outer only)
	__u8 flags;  // FLOW_COPY_DF
	__u32 ifindex;
	__u32 counter;
	__u16 max_len;
	__u16 port; // network order
	__u8 dmac[6], smac[6];
	__u32 addr; // DNAT: new daddr; SNAT: new saddr; IPIP: outer daddr
	__u32 tsrc; // IPIP: outer saddr
	__u8 outer_family; // 4 for IPIP, else 0
	__u8 pad[11];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 131072); // user space sets it (a power of two) before loading
	__type(key, __u32);
	__type(value, struct rvs_ftab_slot);
} rvs_ftab SEC(".maps");

// Slots of rvs_ftab minus one; set by user space before loading (frozen: the verifier
// sees a constant).
volatile const __u32 rvs_ftab_mask = 131071;

#define FTAB_WINDOW 4
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

// Look an IPv4 flow up in rvs_ftab; on a hit, copy it into `out` and return 1.
INLINE int ftab_lookup(__u32 saddr, __u32 daddr, __u16 sport, __u16 dport, __u8 proto,
		       struct rvs_flow *out)
{
	__u32 h = ftab_hash(saddr, daddr, sport, dport, proto);
	__u32 mask = rvs_ftab_mask;
#pragma unroll
	for (int i = 0; i < FTAB_WINDOW; i++) {
		__u32 idx = (h + i) & mask;
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
		out->action = s->action;
		out->outer_family = s->outer_family;
		out->flags = s->flags;
		out->ifindex = s->ifindex;
		out->counter = s->counter;
		out->max_len = s->max_len;
		out->port = s->port;
		__builtin_memcpy(out->dmac, s->dmac, 6);
		__builtin_memcpy(out->smac, s->smac, 6);
		out->addr[0] = s->addr;
		out->tsrc[0] = s->tsrc;
		barrier();
		if (*(volatile __u32 *)&s->seq != seq)
			continue;
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

// Prepend the IP-in-IP outer header (rvs-core `encapsulate`, TunnelType::Ipip). `ttl` is
// the inner TTL after the decrement. Returns 0, or -1 when the head could not grow.
INLINE int encap(struct xdp_md *ctx, const struct rvs_flow *f, int inner_v6, __u32 ip_len,
		 __u8 tos, __u8 ttl, int inner_df)
{
	__u8 proto = inner_v6 ? 41 : 4;
	tos = outer_tos(tos);
	if (f->outer_family == 6) {
		if (bpf_xdp_adjust_head(ctx, -40))
			return -1;
		__u8 *data = (__u8 *)(long)ctx->data;
		__u8 *end = (__u8 *)(long)ctx->data_end;
		if (data + ETH_HLEN + 40 > end)
			return -1;
		__builtin_memcpy(data, data + 40, 12);
		*(__u16 *)(data + 12) = bswap16(ETH_P_IPV6);
		__u8 *o = data + ETH_HLEN;
		o[0] = 0x60 | (tos >> 4);
		o[1] = (__u8)(tos << 4);
		o[2] = 0;
		o[3] = 0;
		*(__u16 *)(o + 4) = bswap16((__u16)ip_len);
		o[6] = proto;
		o[7] = ttl;
		__u32 *s = (__u32 *)(o + 8), *d = (__u32 *)(o + 24);
		s[0] = f->tsrc[0];
		s[1] = f->tsrc[1];
		s[2] = f->tsrc[2];
		s[3] = f->tsrc[3];
		d[0] = f->addr[0];
		d[1] = f->addr[1];
		d[2] = f->addr[2];
		d[3] = f->addr[3];
		return 0;
	}
	__u32 zero = 0, ident = 0;
	__u32 *id = bpf_map_lookup_elem(&rvs_ip_ident, &zero);
	if (id) {
		ident = *id + 1;
		*id = ident;
	}
	if (bpf_xdp_adjust_head(ctx, -20))
		return -1;
	__u8 *data = (__u8 *)(long)ctx->data;
	__u8 *end = (__u8 *)(long)ctx->data_end;
	if (data + ETH_HLEN + 20 > end)
		return -1;
	__builtin_memcpy(data, data + 20, 12);
	*(__u16 *)(data + 12) = bswap16(ETH_P_IP);
	__u8 *o = data + ETH_HLEN;
	o[0] = 0x45;
	o[1] = tos;
	*(__u16 *)(o + 2) = bswap16((__u16)(20 + ip_len));
	*(__u16 *)(o + 4) = bswap16((__u16)ident);
	*(__u16 *)(o + 6) = ((f->flags & FLOW_COPY_DF) && inner_df) ? bswap16(0x4000) : 0;
	o[8] = ttl;
	o[9] = proto;
	*(__u16 *)(o + 10) = 0;
	__u32 *w = (__u32 *)o;
	w[3] = f->tsrc[0];
	w[4] = f->addr[0];
	__u64 s = (__u64)w[0] + w[1] + w[2] + w[3] + w[4];
	*(__u16 *)(o + 10) = not16(fold64(s));
	return 0;
}

// Look the packet up in `rvs_ftab` (IPv4), then `rvs_flows`, and forward it when it is an established flow's.
// Returns the verdict, or FP_CONTINUE (frame unmodified) to go on to the steering.
INLINE int fast_path(struct xdp_md *ctx)
{
	__u8 *data = (__u8 *)(long)ctx->data;
	__u8 *end = (__u8 *)(long)ctx->data_end;
	struct rvs_flow_key k = {};
	__u32 ip_len, l3hdr, l4min;
	__u8 ttl, tos, proto, inner_df;
	int v6;

	if (data + ETH_HLEN > end)
		return FP_CONTINUE;
	// Untagged only: a VLAN tag goes to user space.
	__u16 et = *(__u16 *)(data + 12);
	__u8 *ip = data + ETH_HLEN;
	if (et == bswap16(ETH_P_IP)) {
		if (ip + 20 > end)
			return FP_CONTINUE;
		if (ip[0] != 0x45) // version 4, no options
			return FP_CONTINUE;
		if (*(__u16 *)(ip + 6) & bswap16(0x3fff)) // MF or an offset: a fragment
			return FP_CONTINUE;
		const __u32 *w = (const __u32 *)ip;
		if (fold64((__u64)w[0] + w[1] + w[2] + w[3] + w[4]) != 0xffff)
			return FP_CONTINUE; // bad header checksum: user space counts the drop
		proto = ip[9];
		ip_len = bswap16(*(__u16 *)(ip + 2));
		l3hdr = 20;
		ttl = ip[8];
		tos = ip[1];
		inner_df = (ip[6] & 0x40) != 0;
		v6 = 0;
		k.family = 4;
		k.saddr[0] = w[3];
		k.daddr[0] = w[4];
	} else if (et == bswap16(ETH_P_IPV6)) {
		if (ip + 40 > end)
			return FP_CONTINUE;
		if ((ip[0] >> 4) != 6)
			return FP_CONTINUE;
		__u32 plen = bswap16(*(__u16 *)(ip + 4));
		if (plen == 0) // jumbogram
			return FP_CONTINUE;
		proto = ip[6]; // extension headers are not taken
		ip_len = 40 + plen;
		l3hdr = 40;
		ttl = ip[7];
		tos = ((ip[0] & 0x0f) << 4) | (ip[1] >> 4);
		inner_df = 1;
		v6 = 1;
		const __u32 *w = (const __u32 *)ip;
		k.family = 6;
		k.saddr[0] = w[2];
		k.saddr[1] = w[3];
		k.saddr[2] = w[4];
		k.saddr[3] = w[5];
		k.daddr[0] = w[6];
		k.daddr[1] = w[7];
		k.daddr[2] = w[8];
		k.daddr[3] = w[9];
	} else {
		return FP_CONTINUE;
	}
	if (proto == IPPROTO_TCP)
		l4min = 20;
	else if (proto == IPPROTO_UDP)
		l4min = 8;
	else
		return FP_CONTINUE;
	if (ip_len < l3hdr + l4min || ip_len > 0xffff)
		return FP_CONTINUE;
	if (ip + ip_len > end) // truncated
		return FP_CONTINUE;
	__u8 *l4 = ip + l3hdr;
	__u8 tcp_flags = 0;
	if (proto == IPPROTO_TCP) {
		if (l4 + 20 > end)
			return FP_CONTINUE;
		__u32 doff = (__u32)(l4[12] >> 4) * 4;
		if (doff < 20 || doff > ip_len - l3hdr)
			return FP_CONTINUE;
		tcp_flags = l4[13];
	} else {
		if (l4 + 8 > end)
			return FP_CONTINUE;
	}
	k.proto = proto;
	k.sport = *(__u16 *)l4;
	k.dport = *(__u16 *)(l4 + 2);

	struct rvs_flow fv = {};
	struct rvs_flow *f;
	if (!v6 && ftab_lookup(k.saddr[0], k.daddr[0], k.sport, k.dport, proto, &fv))
		f = &fv;
	else
		f = bpf_map_lookup_elem(&rvs_flows, &k);
	if (!f)
		return FP_CONTINUE;
	if (tcp_flags & 0x07) // FIN, SYN, RST
		return count(STAT_FAST_PASS_FLAGS, FP_CONTINUE);
	if (ttl <= 1)
		return count(STAT_FAST_PASS_TTL, FP_CONTINUE);
	if (ip_len > f->max_len)
		return count(STAT_FAST_PASS_BIG, FP_CONTINUE);

	// Trim Ethernet padding: the frame ends with the IP packet.
	__u64 blen = bpf_xdp_get_buff_len(ctx);
	__u64 want = ETH_HLEN + ip_len;
	if (blen > want) {
		if (bpf_xdp_adjust_tail(ctx, -(int)(blen - want)))
			return count(STAT_FAST_DROP, XDP_DROP);
	}

	// From here the headers are at fixed offsets: 14, then 14 + 20 or 14 + 40.
	data = (__u8 *)(long)ctx->data;
	end = (__u8 *)(long)ctx->data_end;
	__u8 act = f->action;
	int udp = proto == IPPROTO_UDP;
	if (v6) {
		ip = data + ETH_HLEN;
		if (ip + 40 + 8 > end) // checked before the trim; again for the verifier
			return count(STAT_FAST_DROP, XDP_DROP);
		l4 = ip + 40;
		ip[7] = ttl - 1;
		if (act == ACT_DNAT || act == ACT_SNAT) {
			int snat = act == ACT_SNAT;
			__u32 *a = (__u32 *)(ip + (snat ? 8 : 24));
			__u16 *p = (__u16 *)(l4 + (snat ? 0 : 2));
			if (udp) {
				nat_rewrite(a, p, (__u16 *)(l4 + 6), 0, 1, 1, f);
			} else {
				if (l4 + 20 > end)
					return count(STAT_FAST_DROP, XDP_DROP);
				nat_rewrite(a, p, (__u16 *)(l4 + 16), 0, 1, 0, f);
			}
		}
	} else {
		ip = data + ETH_HLEN;
		if (ip + 20 + 8 > end)
			return count(STAT_FAST_DROP, XDP_DROP);
		l4 = ip + 20;
		__u16 *ttlw = (__u16 *)(ip + 8);
		__u16 old = *ttlw;
		ip[8] = ttl - 1;
		__u16 *ipc = (__u16 *)(ip + 10);
		*ipc = csum_upd16(*ipc, old, *ttlw);
		if (act == ACT_DNAT || act == ACT_SNAT) {
			int snat = act == ACT_SNAT;
			__u32 *a = (__u32 *)(ip + (snat ? 12 : 16));
			__u16 *p = (__u16 *)(l4 + (snat ? 0 : 2));
			if (udp) {
				nat_rewrite(a, p, (__u16 *)(l4 + 6), ipc, 0, 1, f);
			} else {
				if (l4 + 20 > end)
					return count(STAT_FAST_DROP, XDP_DROP);
				nat_rewrite(a, p, (__u16 *)(l4 + 16), ipc, 0, 0, f);
			}
		}
	}
	if (act == ACT_IPIP) {
		if (encap(ctx, f, v6, ip_len, tos, ttl - 1, inner_df))
			return count(STAT_FAST_DROP, XDP_DROP);
		data = (__u8 *)(long)ctx->data;
		end = (__u8 *)(long)ctx->data_end;
		if (data + ETH_HLEN > end)
			return count(STAT_FAST_DROP, XDP_DROP);
	}
	__builtin_memcpy(data, f->dmac, 6);
	__builtin_memcpy(data + 6, f->smac, 6);

	__u32 ci = f->counter;
	struct rvs_flow_stat *st = bpf_map_lookup_elem(&rvs_flow_stats, &ci);
	if (st) {
		// Result unused: a plain atomic add, which -mcpu=v2 has too.
		__sync_fetch_and_add(&st->packets, 1);
		__sync_fetch_and_add(&st->bytes, ip_len);
	}
	if (f->ifindex == ctx->ingress_ifindex)
		return count(STAT_FAST_FORWARD, XDP_TX);
	return count(STAT_FAST_FORWARD, (int)bpf_redirect(f->ifindex, 0));
}

SEC("xdp")
int rvs_steer(struct xdp_md *ctx)
{
	int r = fast_path(ctx);
	if (r >= 0)
		return r;
	return steer_frame(ctx);
}

// Only helpers open to every license are used (map lookup, redirect, redirect_map,
// adjust_head/tail, get_buff_len).
char _license[] SEC("license") = "MIT OR Apache-2.0";
