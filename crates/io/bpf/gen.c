// SPDX-License-Identifier: MIT OR Apache-2.0
//
// rvs XDP packet generator (rvs-io `xdp::gen` module): two programs.
//
// rvs_gen is run by BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES on an Ethernet + IPv4 (no
// options) + UDP template frame built by user space. For each frame it writes a source
// address low byte and a UDP source port derived from a per-CPU counter and the
// parameters in `rvs_gen_params`, recomputes the IPv4 header checksum in full, sets the
// UDP checksum to 0 (none) and returns XDP_TX: the kernel then transmits the frame out of
// the "ingress" device given in the test run's context.
//
// Everything is written absolutely, never incrementally: in live mode the kernel's page
// pool recycles the frames' pages and keeps what the program wrote into them last time.
//
// rvs_gen_loop (below) makes frames without test runs, from seed frames going round a
// veth pair.
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

// Write frame n's source address and port and the IPv4 header checksum; 0, or -1 when the
// frame is too short.
INLINE int stamp(struct xdp_md *ctx, struct gen_params *p, __u32 n)
{
	__u8 *data = (__u8 *)(long)ctx->data;
	__u8 *end = (__u8 *)(long)ctx->data_end;

	if (data + ETH_HLEN + IP_HLEN + UDP_HLEN > end)
		return -1;
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
	return 0;
}

SEC("xdp")
int rvs_gen(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct gen_params *p = bpf_map_lookup_elem(&rvs_gen_params, &zero);
	__u64 *cnt = bpf_map_lookup_elem(&rvs_gen_count, &zero);
	if (!p || !cnt)
		return XDP_ABORTED;
	__u32 n = (__u32)*cnt;
	*cnt += 1;
	if (stamp(ctx, p, n) < 0)
		return XDP_ABORTED;
	return XDP_TX;
}

// ---------------------------------------------------------------------------------------
// The redirect-loop generator (`xdp::gen::run_loop`), for kernels that refuse live-frames
// test runs. A veth pair A-B carries seed frames round and round: the program is attached
// to B. A frame arriving at B is, by the hop count user space put in its IPv4 ID field:
// - hop count 0 (flat out): stamped as frame n and broadcast to both entries of
//   `rvs_loop_out`, A (so that the frame comes round to B again) and the output device
//   (the kernel clones it into a fresh page for one of the two);
// - hop count h > 0 (a paced burst, one seed from user space per burst): stamped with
//   hop count h - 1 and broadcast, or for the last hop sent to the output device only, so
//   that each seed makes h frames back to back and the loop is idle between bursts;
// - dropped when the run is over (`sent` reached `max_sent`, or `duration_ns` passed since
//   the first frame), which ends the loop.
// The loop runs in the NAPI poll of B, on the CPU that sent the seeds. Single CPU: the
// state is a plain array, not per CPU.

#define BPF_MAP_TYPE_DEVMAP 14
#define BPF_F_BROADCAST (1ULL << 3)

static __u64 (*bpf_ktime_get_ns)(void) = (void *)5;
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)51;

struct loop_cfg {
	__u64 max_sent;    // frames to send
	__u64 duration_ns; // then stop, counted from the first frame
};

struct loop_state {
	__u64 start_ns; // first frame seen
	__u64 last_ns;  // last frame sent
	__u64 sent;     // frames sent (stamped and broadcast)
	__u64 ended;    // frames dropped at the end
};

struct devmap_val {
	__u32 ifindex;
	__u32 prog;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct loop_cfg);
} rvs_loop_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct loop_state);
} rvs_loop_state SEC(".maps");

// Entry 0: the loop's other end (A); entry 1: the output device.
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct devmap_val);
} rvs_loop_out SEC(".maps");

SEC("xdp")
int rvs_gen_loop(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct gen_params *p = bpf_map_lookup_elem(&rvs_gen_params, &zero);
	struct loop_cfg *c = bpf_map_lookup_elem(&rvs_loop_cfg, &zero);
	struct loop_state *s = bpf_map_lookup_elem(&rvs_loop_state, &zero);
	if (!p || !c || !s)
		return XDP_ABORTED;

	__u8 *data = (__u8 *)(long)ctx->data;
	__u8 *end = (__u8 *)(long)ctx->data_end;
	if (data + ETH_HLEN + IP_HLEN + UDP_HLEN > end)
		return XDP_ABORTED;
	__u8 *ip = data + ETH_HLEN;
	__u32 hops = ((__u32)ip[4] << 8) | ip[5];

	__u64 now = bpf_ktime_get_ns();
	if (s->start_ns == 0)
		s->start_ns = now;
	__u64 elapsed = now - s->start_ns;
	if (s->sent >= c->max_sent || elapsed >= c->duration_ns) {
		s->ended += 1;
		return XDP_DROP;
	}
	if (hops) {
		hops -= 1;
		ip[4] = (__u8)(hops >> 8);
		ip[5] = (__u8)hops;
		if (stamp(ctx, p, (__u32)s->sent) < 0)
			return XDP_ABORTED;
		s->sent += 1;
		s->last_ns = now;
		return bpf_redirect_map(&rvs_loop_out, hops ? 0 : 1, hops ? BPF_F_BROADCAST : 0);
	}
	if (stamp(ctx, p, (__u32)s->sent) < 0)
		return XDP_ABORTED;
	s->sent += 1;
	s->last_ns = now;
	return bpf_redirect_map(&rvs_loop_out, 0, BPF_F_BROADCAST);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
