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
typedef long long __s64;

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
// linux/pkt_cls.h, linux/bpf.h
#define TC_ACT_UNSPEC (-1)
#define TC_ACT_OK 0
#define TC_ACT_SHOT 2
#define TC_ACT_REDIRECT 7
#define BPF_ADJ_ROOM_MAC 1

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

// The socket buffer as TC programs see it (linux/bpf.h, struct __sk_buff), up to the
// last field used; pointer fields are 8-byte slots.
struct __sk_buff {
	__u32 len;
	__u32 pkt_type;
	__u32 mark;
	__u32 queue_mapping;
	__u32 protocol;
	__u32 vlan_present;
	__u32 vlan_tci;
	__u32 vlan_proto;
	__u32 priority;
	__u32 ingress_ifindex;
	__u32 ifindex;
	__u32 tc_index;
	__u32 cb[5];
	__u32 hash;
	__u32 tc_classid;
	__u32 data;
	__u32 data_end;
	__u32 napi_id;
	__u32 family;
	__u32 remote_ip4;
	__u32 local_ip4;
	__u32 remote_ip6[4];
	__u32 local_ip6[4];
	__u32 remote_port;
	__u32 local_port;
	__u32 data_meta;
	__u64 flow_keys;
	__u64 tstamp;
	__u32 wire_len;
	__u32 gso_segs;
	__u64 sk;
	__u32 gso_size;
};
_Static_assert(__builtin_offsetof(struct __sk_buff, ingress_ifindex) == 36, "__sk_buff");
_Static_assert(__builtin_offsetof(struct __sk_buff, data) == 76, "__sk_buff");
_Static_assert(__builtin_offsetof(struct __sk_buff, flow_keys) == 144, "__sk_buff");
_Static_assert(__builtin_offsetof(struct __sk_buff, gso_size) == 176, "__sk_buff");

#endif
