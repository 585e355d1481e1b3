// SPDX-License-Identifier: MIT OR Apache-2.0
//
// The fast path's body, included by steer.c once per hook (XDP and TC) with these macros:
//
//   FP_NAME(n)             the instance's name for function n
//   FP_CTX                 the context type (struct xdp_md or struct __sk_buff)
//   FP_PREPARE(ctx)        nonzero: do not look at this packet (makes the headers readable)
//   FP_TRUNCATED(ctx, ip, ip_len, end)
//                          the packet holds fewer than ip_len bytes from ip
//   FP_BUFLEN(ctx)         the frame's length
//   FP_TRIM(ctx, blen, want)  shorten the frame from blen to want bytes (0: done)
//   FP_PUSH(ctx, n)        make n bytes of room between the Ethernet and IP headers, the
//                          Ethernet header (but for its type) in front of them (0: done)
//   FP_NAT(ctx, a, p, c, ipc, v6, udp, f)
//                          nat_rewrite's rewrite of address a, port p, L4 checksum c and
//                          IPv4 header checksum ipc (0: IPv6); nonzero: failed. The packet
//                          pointers are stale afterwards.
//   FP_MIXED_IPIP          1 when an outer header of the other family can be added
//   FP_FORWARD(ctx, ifindex)  the verdict that sends the frame out of ifindex
//   FP_DROP                the verdict that drops the frame
//
// Everything it uses that is not one of these is defined in steer.c before the include.

// Prepend the IP-in-IP outer header (rvs-core `encapsulate`, TunnelType::Ipip). `ttl` is
// the inner TTL after the decrement. Returns 0, or -1 when the head could not grow.
INLINE int FP_NAME(encap)(FP_CTX *ctx, const struct rvs_flow *f, int inner_v6, __u32 ip_len,
			  __u8 tos, __u8 ttl, int inner_df)
{
	__u8 proto = inner_v6 ? 41 : 4;
	tos = outer_tos(tos);
	if (f->outer_family == 6) {
		if (FP_PUSH(ctx, 40))
			return -1;
		__u8 *data = (__u8 *)(long)ctx->data;
		__u8 *end = (__u8 *)(long)ctx->data_end;
		if (data + ETH_HLEN + 40 > end)
			return -1;
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
	if (FP_PUSH(ctx, 20))
		return -1;
	__u8 *data = (__u8 *)(long)ctx->data;
	__u8 *end = (__u8 *)(long)ctx->data_end;
	if (data + ETH_HLEN + 20 > end)
		return -1;
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
INLINE int FP_NAME(fast_path)(FP_CTX *ctx)
{
	if (FP_PREPARE(ctx))
		return FP_CONTINUE;
	__u8 *data = (__u8 *)(long)ctx->data;
	__u8 *end = (__u8 *)(long)ctx->data_end;
	struct rvs_flow_key k = {};
	// Initialized although every path sets them before use: clang at -O1 otherwise
	// hoists a copy of an unset register above the bad-checksum exit, which the verifier
	// refuses ("!read_ok").
	__u32 ip_len = 0, l3hdr = 0, l4min = 0;
	__u8 ttl = 0, tos = 0, proto = 0, inner_df = 0;
	int v6 = 0;

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
	if (FP_TRUNCATED(ctx, ip, ip_len, end))
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
	__u64 *sctr = 0;
	if (!v6 && ftab_lookup(k.saddr[0], k.daddr[0], k.sport, k.dport, proto, &fv, &sctr))
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
	if (!FP_MIXED_IPIP && f->action == ACT_IPIP && f->outer_family != (v6 ? 6 : 4))
		return FP_CONTINUE; // this hook cannot change the packet's protocol

	// Trim Ethernet padding: the frame ends with the IP packet.
	__u64 blen = FP_BUFLEN(ctx);
	__u64 want = ETH_HLEN + ip_len;
	if (blen > want) {
		if (FP_TRIM(ctx, blen, want))
			return count(STAT_FAST_DROP, FP_DROP);
	}

	// From here the headers are at fixed offsets: 14, then 14 + 20 or 14 + 40.
	data = (__u8 *)(long)ctx->data;
	end = (__u8 *)(long)ctx->data_end;
	__u8 act = f->action;
	int udp = proto == IPPROTO_UDP;
	if (v6) {
		ip = data + ETH_HLEN;
		if (ip + 40 + 8 > end) // checked before the trim; again for the verifier
			return count(STAT_FAST_DROP, FP_DROP);
		l4 = ip + 40;
		ip[7] = ttl - 1;
		if (act == ACT_DNAT || act == ACT_SNAT) {
			int snat = act == ACT_SNAT;
			__u32 *a = (__u32 *)(ip + (snat ? 8 : 24));
			__u16 *p = (__u16 *)(l4 + (snat ? 0 : 2));
			if (udp) {
				if (FP_NAT(ctx, a, p, (__u16 *)(l4 + 6), 0, 1, 1, f))
					return count(STAT_FAST_DROP, FP_DROP);
			} else {
				if (l4 + 20 > end)
					return count(STAT_FAST_DROP, FP_DROP);
				if (FP_NAT(ctx, a, p, (__u16 *)(l4 + 16), 0, 1, 0, f))
					return count(STAT_FAST_DROP, FP_DROP);
			}
		}
	} else {
		ip = data + ETH_HLEN;
		if (ip + 20 + 8 > end)
			return count(STAT_FAST_DROP, FP_DROP);
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
				if (FP_NAT(ctx, a, p, (__u16 *)(l4 + 6), ipc, 0, 1, f))
					return count(STAT_FAST_DROP, FP_DROP);
			} else {
				if (l4 + 20 > end)
					return count(STAT_FAST_DROP, FP_DROP);
				if (FP_NAT(ctx, a, p, (__u16 *)(l4 + 16), ipc, 0, 0, f))
					return count(STAT_FAST_DROP, FP_DROP);
			}
		}
	}
	// FP_NAT may have moved the packet (TC helpers)
	data = (__u8 *)(long)ctx->data;
	end = (__u8 *)(long)ctx->data_end;
	if (data + ETH_HLEN > end)
		return count(STAT_FAST_DROP, FP_DROP);
	if (act == ACT_IPIP) {
		if (FP_NAME(encap)(ctx, f, v6, ip_len, tos, ttl - 1, inner_df))
			return count(STAT_FAST_DROP, FP_DROP);
		data = (__u8 *)(long)ctx->data;
		end = (__u8 *)(long)ctx->data_end;
		if (data + ETH_HLEN > end)
			return count(STAT_FAST_DROP, FP_DROP);
	}
	__builtin_memcpy(data, f->dmac, 6);
	__builtin_memcpy(data + 6, f->smac, 6);

	// Results unused: plain atomic adds, which -mcpu=v2 has too.
	if (sctr) {
		__sync_fetch_and_add(sctr, ((__u64)1 << FTAB_CTR_SHIFT) + ip_len);
	} else {
		__u32 ci = f->counter;
		struct rvs_flow_stat *st = bpf_map_lookup_elem(&rvs_flow_stats, &ci);
		if (st) {
			__sync_fetch_and_add(&st->packets, 1);
			__sync_fetch_and_add(&st->bytes, ip_len);
		}
	}
	return count(STAT_FAST_FORWARD, FP_FORWARD(ctx, f->ifindex));
}

