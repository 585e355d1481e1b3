// SPDX-License-Identifier: MIT OR Apache-2.0
//
// What rvs's XDP programs (steer.c, gen.c) share: basic types, the map-definition macros,
// kernel UAPI numbers and the XDP context. Self-contained (no kernel or libbpf headers),
// so that building the programs needs only clang.

#ifndef RVS_BPF_H
#define RVS_BPF_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
#define INLINE static inline __attribute__((always_inline))

// Kernel UAPI values (linux/bpf.h).
#define BPF_MAP_TYPE_HASH 1
#define BPF_MAP_TYPE_ARRAY 2
#define BPF_MAP_TYPE_PERCPU_ARRAY 6
#define BPF_MAP_TYPE_XSKMAP 17
#define BPF_F_NO_PREALLOC 1
#define BPF_F_MMAPABLE (1U << 10)
#define XDP_ABORTED 0
#define XDP_DROP 1
#define XDP_PASS 2
#define XDP_TX 3
#define XDP_REDIRECT 4

// Helpers by number (linux/bpf.h, enum bpf_func_id); each program declares the others it
// uses.
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;

struct xdp_md {
	__u32 data;
	__u32 data_end;
	__u32 data_meta;
	__u32 ingress_ifindex;
	__u32 rx_queue_index;
	__u32 egress_ifindex;
};

#endif
