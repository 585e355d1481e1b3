// SPDX-License-Identifier: MIT OR Apache-2.0
//
// rvs XDP packet generator (rvs-io `xdp::gen` module).
//
// Run by BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES on an Ethernet + IPv4 (no
// options) + UDP template frame built by user space. For each frame it writes a source
// address low byte and a UDP source port derived from a per-CPU counter and the
// parameters in `rvs_gen_params`, recomputes the IPv4 header checksum in full, sets the
// UDP checksum to 0 (none) and returns XDP_TX: the kernel then transmits the frame out of
// the "ingress" device given in the test run's context.
//
// Everything is written absolutely, never incrementally: in live mode the kernel's page
// pool recycles the frames' pages and keeps what the program wrote into them last time.
//
// Frame n of a CPU (its counter) gets source address index n % src_count and source port
// index (n / src_count) % sport_count, so every (address, port) pair comes up.
//
// Self-contained (no kernel or libbpf headers), as steer.c: `clang -target bpf -O2 -g -c`.
// The parameter layout must match `xdp::gen::GenParams` byte for byte.

#include "rvs_bpf.h"

// Filled by user space before the run. Ports in host byte order.
struct gen_params {
	__u32 src_count;   // number of source addresses, >= 1
	__u32 src_first;   // low byte of the first source address
	__u32 sport_count; // number of source ports, >= 1
	__u32 sport_first; // first source port
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_params);
} rvs_gen_params SEC(".maps");

// Frames generated, per CPU (index 0).
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} rvs_gen_count SEC(".maps");

#define ETH_HLEN 14
#define IP_HLEN 20
#define UDP_HLEN 8

SEC("xdp")
int rvs_gen(struct xdp_md *ctx)
{
	__u8 *data = (__u8 *)(long)ctx->data;
	__u8 *end = (__u8 *)(long)ctx->data_end;
	__u32 zero = 0;

	if (data + ETH_HLEN + IP_HLEN + UDP_HLEN > end)
		return XDP_ABORTED;
	struct gen_params *p = bpf_map_lookup_elem(&rvs_gen_params, &zero);
	__u64 *cnt = bpf_map_lookup_elem(&rvs_gen_count, &zero);
	if (!p || !cnt)
		return XDP_ABORTED;

	__u32 n = (__u32)*cnt;
	*cnt += 1;
	__u32 sc = p->src_count ? p->src_count : 1;
	__u32 pc = p->sport_count ? p->sport_count : 1;
	__u32 a = (p->src_first + n % sc) & 0xff;
	__u32 port = (p->sport_first + (n / sc) % pc) & 0xffff;

	__u8 *ip = data + ETH_HLEN;
	__u8 *udp = ip + IP_HLEN;
	ip[15] = (__u8)a;          // source address, last byte
	udp[0] = (__u8)(port >> 8); // source port, network order
	udp[1] = (__u8)port;
	udp[6] = 0; // no UDP checksum
	udp[7] = 0;

	// IPv4 header checksum over the 20 bytes with the checksum field as zero.
	ip[10] = 0;
	ip[11] = 0;
	__u32 sum = 0;
#pragma unroll
	for (int i = 0; i < IP_HLEN; i += 2)
		sum += ((__u32)ip[i] << 8) | ip[i + 1];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = ~sum & 0xffff;
	ip[10] = (__u8)(sum >> 8);
	ip[11] = (__u8)sum;
	return XDP_TX;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
