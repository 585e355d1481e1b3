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
// Nothing is ever dropped or rewritten here. Each verdict is counted by reason in the
// per-CPU array `rvs_stats` (indices: enum stat below, mirrored by `xdp::rules::stat`).
//
// The program is self-contained (no kernel or libbpf headers) so that building it needs
// only clang: `clang -target bpf -O2 -g -c steer.c`. The key layout must match
// `xdp::rules::SteerKey` byte for byte.

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
#define INLINE static inline __attribute__((always_inline))

// Kernel UAPI values (linux/bpf.h, linux/if_ether.h, linux/in.h).
#define BPF_MAP_TYPE_HASH 1
#define BPF_MAP_TYPE_PERCPU_ARRAY 6
#define BPF_MAP_TYPE_XSKMAP 17
#define XDP_PASS 2
#define XDP_REDIRECT 4

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
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)51;

struct xdp_md {
	__u32 data;
	__u32 data_end;
	__u32 data_meta;
	__u32 ingress_ifindex;
	__u32 rx_queue_index;
	__u32 egress_ifindex;
};

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
	STAT_COUNT = 8,
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096); // user space may resize before loading
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

SEC("xdp")
int rvs_steer(struct xdp_md *ctx)
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

// Only helpers open to every license are used (map lookup, redirect_map).
char _license[] SEC("license") = "MIT OR Apache-2.0";
