#!/usr/bin/env bash
# Side-by-side benchmark of the rvs director against the kernel and HAProxy.
#
#   scripts/bench.sh [--quick] [--modes LIST] [--workloads LIST] [--out DIR] [--no-build]
#   scripts/bench.sh --report-only [--out DIR]     (rewrite results.md and the plots)
#
# As root. Installs what it needs from Debian (netsniff-ng for trafgen, wrk, iperf3,
# haproxy, nftables, ethtool, clang) and builds rvs in release mode. It then builds a lab
# of network namespaces: a generator/client, a director pinned to one core, three real
# servers, and runs the same workloads through each director:
#
#   fwd            plain kernel IP forwarding (the client addresses the real servers)
#   nft            nftables DNAT, `numgen inc mod 3 map {...}` (conntrack)
#   haproxy        HAProxy 2.6, TCP mode, one thread
#   rvs-M-B        rvsd, method M in dr tun nat, backend B in afp (AF_PACKET), xdp (AF_XDP)
#   ceiling        packet-rate reference: the director drops at ingress (nft netdev)
#   tcbare         only when named in --modes, udp workloads only: a bare TC ingress
#                  program on the director (MAC rewrite and bpf_redirect to the real servers
#                  by source port, no flow table): the floor of rvs's fast path at that hook
#
# Workloads (each bounded in time, RUNS runs, median and min-max reported):
#   udp    64-byte UDP packets from trafgen, 61,696 flows: forwarded packets/s, offered
#          packets/s, director CPU time per forwarded packet
#   udpx   the same from `rvs-lab xdpgen`, which makes XDP frames as a NIC driver would hand
#          them over (live-frames BPF_PROG_TEST_RUN, or `--loop` where the kernel refuses
#          that, as 6.18 build v1300 does): no socket buffer reaches the director (for fwd:
#          one real server address). A paced rate sweep (BENCH_XSWEEP, Mpps; BENCH_XLOSS,
#          the loss limit in %, default 1; BENCH_XPORTS, source ports per address, default
#          256: 61,696 flows), then the partial load of udp_fixed. The ceiling is an XDP
#          drop at the director's ingress. Only when named in --workloads
#   conn   new TCP connections/s: wrk, `Connection: close`, HTTP servers on the real servers
#   lat    request/response round trips over one kept-alive connection: p50/p99
#   bulk   one TCP stream, iperf3, NAT-like paths (fwd, nft, haproxy, rvs-nat-*)
#   scale  rvsd holding 1,000,000 connections (VmRSS), 10,000 services via `rvsadm -R`
#
# Results: DIR/results.md (with the plots DIR/*.svg) and the raw numbers DIR/raw.tsv
# (default DIR: docs/bench). Default run ~16 min, --quick ~3-4 min. Not part of the tests.
# Environment: BENCH_DIRECTOR_CPU (1), BENCH_GENERATOR_CPU (0), BENCH_NICE (-20: the nice
# level of every measured task, so that other jobs on a shared machine disturb less),
# RVSD_EXTRA (more rvsd options for the rvs modes), BENCH_SINK_DEFER (DEFER:NS, e.g. 2:50000:
# interrupt moderation for the real servers' sinks during the UDP workloads, NAPI deferral
# through napi_defer_hard_irqs and gro_flush_timeout; default none), BENCH_INTERLEAVE (1: the
# runs go round the directors, round 1: run 1 of each, then round 2...; 0: back to back), CARGO_TARGET_DIR.
#
# Network rule: traffic only inside the namespaces made here, addresses from
# 198.18.0.0/15, every load under `timeout`, namespaces deleted on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

quick=0
only_modes=""
only_workloads=""
out="docs/bench"
build=1
report_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; shift ;;
    --modes) only_modes="${2:-}"; shift 2 ;;
    --workloads) only_workloads="${2:-}"; shift 2 ;;
    --out) out="${2:-}"; shift 2 ;;
    --no-build) build=0; shift ;;
    --report-only) report_only=1; shift ;;
    -h|--help) sed -n '2,45p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
out="$(cd "$out" && pwd)"
RAW="$out/raw.tsv"
META="$out/meta.txt"

# ------------------------------------------------------------------ report (Python, stdlib)
report() {
  python3 - "$RAW" "$META" "$out" <<'PY'
import math, os, statistics, sys, html
raw, metaf, out = sys.argv[1:4]
meta = {}
for line in open(metaf):
    if "=" in line:
        k, v = line.rstrip("\n").split("=", 1)
        meta[k] = v
vals, skips = {}, {}
for line in open(raw):
    f = line.rstrip("\n").split("\t")
    if not f or f[0] == "workload":
        continue
    if f[1] == "skip":
        skips[(f[0], f[2])] = f[3]
        continue
    w, mode, run, metric, value = f[:5]
    try:
        vals.setdefault((w, mode, metric), []).append(float(value))
    except ValueError:
        pass

def med(w, mode, metric):
    v = vals.get((w, mode, metric))
    return statistics.median(v) if v else None

def rng(w, mode, metric):
    v = vals.get((w, mode, metric))
    return (min(v), max(v)) if v else None

RVS = ["rvs-dr-afp", "rvs-tun-afp", "rvs-nat-afp", "rvs-dr-xdp", "rvs-tun-xdp", "rvs-nat-xdp"]
LABEL = {
    "ceiling": "generator ceiling (director drops at ingress)",
    "direct": "direct: client to real server, no director",
    "fwd": "kernel IP forwarding",
    "nft": "nftables DNAT (numgen, conntrack)",
    "haproxy": "HAProxy 2.6, TCP mode, 1 thread",
    "rvs-dr-afp": "rvs DR, AF_PACKET", "rvs-tun-afp": "rvs TUN (IPIP), AF_PACKET",
    "rvs-nat-afp": "rvs NAT, AF_PACKET", "rvs-dr-xdp": "rvs DR, AF_XDP",
    "rvs-tun-xdp": "rvs TUN (IPIP), AF_XDP", "rvs-nat-xdp": "rvs NAT, AF_XDP",
}

def fmt(x, unit="", nd=None):
    if x is None:
        return "n/a"
    if nd is None:
        nd = 0 if abs(x) >= 100 else (1 if abs(x) >= 10 else 2)
    return f"{x:,.{nd}f}{unit}"

def cell(w, mode, metric, scale=1.0, nd=None):
    m = med(w, mode, metric)
    if m is None:
        why = skips.get((w, mode)) or skips.get(("all", mode))
        return "skipped: " + why if why else "n/a"
    lo, hi = rng(w, mode, metric)
    if len(vals[(w, mode, metric)]) == 1:
        return fmt(m * scale, nd=nd)
    return f"{fmt(m*scale, nd=nd)} ({fmt(lo*scale, nd=nd)}-{fmt(hi*scale, nd=nd)})"

def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b

def rfmt(r):
    return "n/a" if r is None else f"{r:.2f}x"

def added(mode, q="p99_us"):
    v, d = med("lat", mode, q), med("lat", "direct", q)
    return None if v is None or d is None else v - d

L = []
L.append("# rvs side-by-side benchmark: results")
L.append("")
L.append(f"Measured {meta.get('date','?')} by `scripts/bench.sh{' --quick' if meta.get('quick')=='1' else ''}` "
         f"(rvs `{meta.get('commit','?')}`). How to run it, the lab, and what each number means: "
         "[README.md](README.md). Raw numbers: [raw.tsv](raw.tsv).")
L.append("")
L.append("| Machine | |")
L.append("|---|---|")
for k, name in [("kernel", "Kernel"), ("cpu", "CPU model"), ("cpus", "CPUs"), ("cores", "Cores"),
                ("load_start", "Load average at start / end"), ("tools", "Tools"),
                ("runs", "Runs")]:
    v = meta.get(k, "?")
    if k == "load_start":
        v = f"{v} / {meta.get('load_end','?')} (a shared 2-CPU VM: other engineers' jobs ran during the measurements, see *other CPU* below)"
    if k == "runs":
        if meta.get("interleave") == "1":
            v += "; interleaved: run 1 of every director, then run 2, then run 3, each after a fresh start"
        elif meta.get("interleave") == "0":
            v += "; back to back per director"
        if meta.get("sink_defer", "none") != "none":
            v += f"; real servers' sinks with NAPI deferral {meta['sink_defer']} (defer count:timeout ns)"
    L.append(f"| {name} | {v} |")
L.append("")

fwd = med("udp", "fwd", "pps")
ceil = med("udp", "ceiling", "pps")
cpu_fwd = med("udp", "fwd", "cpu_ns_per_pkt")
cpu_fwd_fix = med("udp_fixed", "fwd", "cpu_ns_per_pkt")
L.append("## Headline ratios (medians)")
L.append("")
L.append("| Ratio | AF_PACKET | AF_XDP |")
L.append("|---|---|---|")
for m in ["dr", "tun"]:
    a, x = med("udp", f"rvs-{m}-afp", "pps"), med("udp", f"rvs-{m}-xdp", "pps")
    L.append(f"| rvs {m.upper()} 64-byte packet rate / kernel forwarding | {rfmt(ratio(a, fwd))} | {rfmt(ratio(x, fwd))} |")
    L.append(f"| rvs {m.upper()} 64-byte packet rate / generator ceiling | {rfmt(ratio(a, ceil))} | {rfmt(ratio(x, ceil))} |")
for m in ["dr", "tun", "nat"]:
    a, x = med("udp", f"rvs-{m}-afp", "cpu_ns_per_pkt"), med("udp", f"rvs-{m}-xdp", "cpu_ns_per_pkt")
    L.append(f"| rvs {m.upper()} director CPU per forwarded packet / kernel forwarding, full load | {rfmt(ratio(a, cpu_fwd))} | {rfmt(ratio(x, cpu_fwd))} |")
for m in ["dr", "nat"]:
    a, x = med("udp_fixed", f"rvs-{m}-afp", "cpu_ns_per_pkt"), med("udp_fixed", f"rvs-{m}-xdp", "cpu_ns_per_pkt")
    L.append(f"| rvs {m.upper()} director CPU per forwarded packet / kernel forwarding, {meta.get('fixed_rate','fixed rate')} | {rfmt(ratio(a, cpu_fwd_fix))} | {rfmt(ratio(x, cpu_fwd_fix))} |")
na, nx = med("conn", "rvs-nat-afp", "cps"), med("conn", "rvs-nat-xdp", "cps")
L.append(f"| rvs NAT new connections/s / nftables DNAT | {rfmt(ratio(na, med('conn','nft','cps')))} | {rfmt(ratio(nx, med('conn','nft','cps')))} |")
L.append(f"| rvs NAT new connections/s / kernel forwarding | {rfmt(ratio(na, med('conn','fwd','cps')))} | {rfmt(ratio(nx, med('conn','fwd','cps')))} |")
ca, cx = med("conn", "rvs-nat-afp", "cpu_us_per_conn"), med("conn", "rvs-nat-xdp", "cpu_us_per_conn")
L.append(f"| rvs NAT director CPU per connection / nftables DNAT | {rfmt(ratio(ca, med('conn','nft','cpu_us_per_conn')))} | {rfmt(ratio(cx, med('conn','nft','cpu_us_per_conn')))} |")
af = added("fwd")
for m in ["dr", "tun", "nat"]:
    a, x = added(f"rvs-{m}-afp"), added(f"rvs-{m}-xdp")
    L.append(f"| rvs {m.upper()} added p99 latency vs kernel forwarding's ({fmt(af, ' µs', 0)}) | "
             f"{fmt(a, ' µs', 0)} = {rfmt(ratio(a, af))} | {fmt(x, ' µs', 0)} = {rfmt(ratio(x, af))} |")
fwdx, ceilx, cpux = med("udpx", "fwd", "pps"), med("udpx", "ceiling", "pps"), med("udpx", "fwd", "cpu_ns_per_pkt")
HAVE_UDPX = any(med("udpx", m, "pps") is not None for m in ["ceiling", "fwd", "nft"] + RVS)
cpuxf = med("udpx_fixed", "fwd", "cpu_ns_per_pkt")
# the highest rate of the sweep that kernel forwarding still forwarded (95% of the rate
# asked of the generator): CPU per packet there, the same load for every director
common = None
for x in sorted({w.split("@", 1)[1] for (w, _m, _k) in vals if w.startswith("udpx@")}, key=float):
    f = med(f"udpx@{x}", "fwd", "pps")
    if f and f >= 0.95 * float(x) * 1e6:
        common = x
for m in (["dr", "tun", "nat"] if HAVE_UDPX else []):
    a, x = med("udpx", f"rvs-{m}-afp", "pps"), med("udpx", f"rvs-{m}-xdp", "pps")
    L.append(f"| XDP-frame generator: rvs {m.upper()} 64-byte packet rate / kernel forwarding | {rfmt(ratio(a, fwdx))} | {rfmt(ratio(x, fwdx))} |")
    L.append(f"| XDP-frame generator: rvs {m.upper()} 64-byte packet rate / generator ceiling | {rfmt(ratio(a, ceilx))} | {rfmt(ratio(x, ceilx))} |")
    a, x = med("udpx_fixed", f"rvs-{m}-afp", "cpu_ns_per_pkt"), med("udpx_fixed", f"rvs-{m}-xdp", "cpu_ns_per_pkt")
    L.append(f"| XDP-frame generator: rvs {m.upper()} director CPU per forwarded packet / kernel forwarding, {meta.get('fixed_rate','fixed rate')} | {rfmt(ratio(a, cpuxf))} | {rfmt(ratio(x, cpuxf))} |")
    if common:
        a, x, c = (med(f"udpx@{common}", k, "cpu_ns_per_pkt") for k in (f"rvs-{m}-afp", f"rvs-{m}-xdp", "fwd"))
        L.append(f"| XDP-frame generator: rvs {m.upper()} director CPU per forwarded packet / kernel forwarding, {common} Mpps offered | {rfmt(ratio(a, c))} | {rfmt(ratio(x, c))} |")
ent = med("scale", "rvs-dr-afp", "entries")
L.append(f"| rvsd memory holding {fmt(ent, nd=0)} connections (VmRSS growth) | "
         f"{fmt(med('scale','rvs-dr-afp','rss_delta_mib'), ' MiB', 0)} = {fmt(med('scale','rvs-dr-afp','rss_per_conn_bytes'), ' bytes/connection', 0)} | |")
L.append("")
L.append("Rates: above 1.00x rvs is faster. CPU and latency: above 1.00x rvs costs more. "
         "*Generator ceiling*: what the director absorbed while dropping every packet in an nft "
         "netdev ingress rule, measured in the same run.")
L.append("")
if os.path.exists(os.path.join(out, "analysis.md")):
    L.append(open(os.path.join(out, "analysis.md")).read().strip())
    L.append("")

L.append("## 64-byte UDP packets, full load (trafgen flat out, 61,696 flows)")
L.append("")
L.append("Median (min-max) of the runs. *Forwarded*: packets/s the director delivered to the "
         "real servers' links. *Offered*: packets/s trafgen pushed; what the director's 256-frame "
         "receive ring could not take was dropped there. *CPU/packet*: CPU time of the director's "
         "tasks (its NAPI threads and the balancer process) per forwarded packet. *Director CPU*: "
         "the same tasks in % of one core. *Other CPU*: the rest of the director core's busy "
         "time (/proc/stat): other users' jobs and interrupts.")
L.append("")
L.append("| Director | Forwarded (Mpps) | Offered (Mpps) | CPU/packet (ns) | Director CPU (%) | Other CPU (%) |")
L.append("|---|---|---|---|---|---|")
for mode in ["ceiling", "fwd", "nft"] + RVS:
    L.append(f"| {LABEL[mode]} | {cell('udp', mode, 'pps', 1e-6, 3)} | {cell('udp', mode, 'offered_pps', 1e-6, 3)} "
             f"| {cell('udp', mode, 'cpu_ns_per_pkt', nd=0)} | {cell('udp', mode, 'dir_cpu_pct', nd=0)} | {cell('udp', mode, 'foreign_pct', nd=0)} |")
L.append(f"| {LABEL['haproxy']} | n/a: a TCP proxy | | | | |")
L.append("")
rows = []
for mode in RVS:
    rx, err, fw = med("udp", mode, "rvsd_rx_pps"), med("udp", mode, "rvsd_tx_err_pps"), med("udp", mode, "delivered_pps")
    if rx is not None and fw:
        rows.append(f"{mode}: rvsd read {fmt(rx/1e3, nd=0)}k of the {fmt(fw/1e3, nd=0)}k frames/s that reached the director ({100*rx/fw:.0f}%), "
                    f"send errors {fmt(err, nd=0)}/s")
if rows:
    L.append("rvsd's own counters (median): " + "; ".join(rows) + ".")
    L.append("")
L.append("![64-byte UDP packet rate](udp_rate.svg)")
L.append("")
if HAVE_UDPX:
  looped = meta.get("xdpgen", "") == "--loop"
  L.append("## 64-byte UDP packets from an XDP-frame generator (`rvs-lab xdpgen`)")
  L.append("")
  how = ("seed frames going round a veth pair in the generator's namespace, where an XDP "
         "program sends a copy of each frame that comes round out of the generator's link "
         "(`xdpgen --loop`: this kernel refuses live-frames test runs)") if looped else \
        ("BPF_PROG_TEST_RUN with live frames, XDP_TX into the generator's veth")
  L.append("The same measurement with frames made as XDP frames (" + how + "), so that they reach "
           "the director the way a NIC driver hands frames over: in pages with headroom, no socket "
           "buffer. With trafgen, every frame reaches the director as a socket buffer that native "
           "XDP must first copy, and freeing trafgen's buffer then runs on the director's core. "
           "For kernel forwarding the generator addresses one real server. The generator's "
           "ceiling here is a native XDP program dropping every frame at the director's ingress.")
  L.append("")
  L.append("A rate sweep: " + meta.get("xsweep", "?") + ". The generator is paced (bursts of 64 "
           "frames) because flat out it overfills the director's 256-frame veth ring, which "
           "then collapses. *Forwarded*: the most any step forwarded, with that step's offered "
           "rate, loss (of the offered frames, ring drops included) and CPU. *Within the loss "
           "limit*: the most forwarded in a step that lost no more than the limit.")
  L.append("")
  L.append("| Director | Forwarded (Mpps) | Offered (Mpps) | Loss (%) | Within the loss limit (Mpps) | CPU/packet (ns) | Director CPU (%) |")
  L.append("|---|---|---|---|---|---|---|")
  for mode in ["ceiling", "fwd", "nft"] + RVS:
      L.append(f"| {LABEL[mode]} | {cell('udpx', mode, 'pps', 1e-6, 3)} | {cell('udpx', mode, 'offered_pps', 1e-6, 3)} "
               f"| {cell('udpx', mode, 'offered_loss_pct', nd=1)} | {cell('udpx', mode, 'pass_pps', 1e-6, 3)} "
               f"| {cell('udpx', mode, 'cpu_ns_per_pkt', nd=0)} | {cell('udpx', mode, 'dir_cpu_pct', nd=0)} |")
  L.append("")
  steps = sorted({w.split("@", 1)[1] for (w, _m, _k) in vals if w.startswith("udpx@")}, key=float)
  if steps:
    L.append("### Director CPU per forwarded packet at each offered rate of the sweep")
    L.append("")
    L.append("Median ns of director CPU per forwarded packet, and the median forwarded rate (Mpps) "
             "in brackets, at each offered rate of the sweep: the same load for every director, "
             "up to where it saturates. A dash: the sweep had ended.")
    L.append("")
    L.append("| Director | " + " | ".join(f"{x} Mpps" for x in steps) + " |")
    L.append("|---|" + "---|" * len(steps))
    for mode in ["fwd", "nft"] + RVS:
        cells = []
        for x in steps:
            c, f = med(f"udpx@{x}", mode, "cpu_ns_per_pkt"), med(f"udpx@{x}", mode, "pps")
            cells.append("-" if c is None or f is None else f"{c:.0f} ({f/1e6:.2f})")
        L.append(f"| {LABEL[mode]} | " + " | ".join(cells) + " |")
    L.append("")
  if any(med("udpx_fixed", m, "pps") is not None for m in ["fwd"] + RVS):
    L.append(f"### The same generator at a partial load ({meta.get('fixed_rate','fixed rate')}, bursts of 64 arriving 16 frames at a time)")
    L.append("")
    L.append("| Director | Delivered (kpps) | Forwarded (kpps) | Loss (%) | CPU/packet (ns) | Director CPU (%) |")
    L.append("|---|---|---|---|---|---|")
    for mode in ["fwd", "nft"] + RVS:
        L.append(f"| {LABEL[mode]} | {cell('udpx_fixed', mode, 'delivered_pps', 1e-3, 0)} | {cell('udpx_fixed', mode, 'pps', 1e-3, 0)} "
                 f"| {cell('udpx_fixed', mode, 'loss_pct', nd=1)} | {cell('udpx_fixed', mode, 'cpu_ns_per_pkt', nd=0)} | {cell('udpx_fixed', mode, 'dir_cpu_pct', nd=0)} |")
    L.append("")
L.append(f"## 64-byte UDP packets at a partial load ({meta.get('fixed_rate','fixed rate')} asked of trafgen)")
L.append("")
L.append("trafgen's rate limit sends in bursts; bursts larger than the director's receive ring are "
         "dropped before the director sees them, for every director alike, so loss is counted "
         "from what reached the director (*delivered*).")
L.append("")
L.append("| Director | Delivered (kpps) | Forwarded (kpps) | Loss (%) | CPU/packet (ns) | Director CPU (%) |")
L.append("|---|---|---|---|---|---|")
for mode in ["fwd", "nft"] + RVS:
    L.append(f"| {LABEL[mode]} | {cell('udp_fixed', mode, 'delivered_pps', 1e-3, 0)} | {cell('udp_fixed', mode, 'pps', 1e-3, 0)} "
             f"| {cell('udp_fixed', mode, 'loss_pct', nd=1)} | {cell('udp_fixed', mode, 'cpu_ns_per_pkt', nd=0)} | {cell('udp_fixed', mode, 'dir_cpu_pct', nd=0)} |")
L.append("")
L.append("## New TCP connections per second (wrk, `Connection: close`)")
L.append("")
L.append("wrk: 3 threads, 48 connections, a new connection per request, HAProxy answering `200 OK` "
         "on the real servers. *CPU/connection*: director task CPU time per request (SYN, request, "
         "answer and both FINs; in DR and TUN the answers bypass the director). wrk, the three "
         "servers and their TCP stacks share the generator core, which is the limit for the "
         "fastest directors: compare CPU/connection too.")
L.append("")
L.append("| Director | Connections/s | CPU/connection (µs) | Director CPU (%) | Errors |")
L.append("|---|---|---|---|---|")
for mode in ["fwd", "nft", "haproxy"] + RVS:
    L.append(f"| {LABEL[mode]} | {cell('conn', mode, 'cps', nd=0)} | {cell('conn', mode, 'cpu_us_per_conn', nd=1)} "
             f"| {cell('conn', mode, 'dir_cpu_pct', nd=0)} | {cell('conn', mode, 'errors', nd=0)} |")
L.append("")
L.append("![New connections per second](conn_rate.svg)")
L.append("")
L.append("## Request/response latency (one kept-alive connection, paced requests)")
L.append("")
L.append("A Python client sends `GET /` over one TCP connection, reads the whole answer, sleeps "
         "0.3 ms, repeats. *Added*: the path's median p50/p99 minus the direct path's (client "
         "to a real server over its own link, no director).")
L.append("")
L.append("| Path | p50 (µs) | p99 (µs) | added p50 (µs) | added p99 (µs) |")
L.append("|---|---|---|---|---|")
for mode in ["direct", "fwd", "nft", "haproxy"] + RVS:
    L.append(f"| {LABEL[mode]} | {cell('lat', mode, 'p50_us', nd=0)} | {cell('lat', mode, 'p99_us', nd=0)} "
             f"| {fmt(added(mode, 'p50_us'), nd=0) if mode != 'direct' else '-'} | {fmt(added(mode, 'p99_us'), nd=0) if mode != 'direct' else '-'} |")
L.append("")
L.append("![Latency](latency.svg)")
L.append("")
L.append("## Bulk TCP throughput (iperf3, one stream, client to real server)")
L.append("")
L.append("| Path | Gbit/s | Director CPU (%) |")
L.append("|---|---|---|")
for mode in ["direct", "fwd", "nft", "haproxy", "rvs-nat-afp", "rvs-nat-xdp"]:
    L.append(f"| {LABEL[mode]} | {cell('bulk', mode, 'gbps', nd=2)} | {cell('bulk', mode, 'dir_cpu_pct', nd=0) if mode != 'direct' else '-'} |")
L.append("")
L.append("## Scale")
L.append("")
L.append("| Measurement | Value |")
L.append("|---|---|")
def srow(name, w, mode, metric, unit="", nd=0, sc=1.0):
    v = med(w, mode, metric)
    L.append(f"| {name} | {fmt(v*sc, unit, nd) if v is not None else (skips.get((w, mode)) or 'n/a')} |")
s = "rvs-dr-afp"
srow("connections held by rvsd (TCP SYNs from 17 addresses x 62,500 ports, DR, AF_PACKET)", "scale", s, "entries")
srow("rvsd VmRSS before (MiB)", "scale", s, "rss_before_mib", nd=1)
srow("rvsd VmRSS holding them (MiB)", "scale", s, "rss_after_mib", nd=1)
srow("VmRSS growth per connection (bytes)", "scale", s, "rss_per_conn_bytes")
srow("connection table bytes per connection (`rvs_connection_table_bytes`)", "scale", s, "table_bytes_per_conn")
srow("new connections/s while filling (first pass, SYNs sent one by one, trafgen -t)", "scale", s, "syn_rate")
srow("64-byte UDP forwarded with those connections in the table (Mpps)", "scale", s, "pps_1m", nd=3, sc=1e-6)
s = "rvs-services"
srow("`rvsadm -R` of 10,000 services x 10 real servers (110,000 lines) into a forwarding rvsd (s)", "scale", s, "restore_s", nd=2)
srow("one more `rvsadm -A` with those loaded (s)", "scale", s, "change_s", nd=2)
srow("`rvsadm -L -n` of that table (s)", "scale", s, "list_s", nd=2)
srow("the same `-R` into a control-plane-only rvsd with the state file on (s)", "scale", s, "restore_state_s", nd=2)
srow("rvsd VmRSS with 10,000 services (MiB)", "scale", s, "rss_mib", nd=1)
srow("64-byte UDP forwarded with 10,000 services loaded (Mpps)", "scale", s, "pps", nd=3, sc=1e-6)
srow("... while one service is being added (Mpps)", "scale", s, "pps_during_change", nd=3, sc=1e-6)
srow("`rvsadm -R` of the same into an AF_XDP rvsd (s)", "scale", s, "restore_xdp_s", nd=2)
srow("64-byte UDP forwarded with 10,000 services loaded, AF_XDP (Mpps)", "scale", s, "pps_xdp", nd=3, sc=1e-6)
L.append("")
if skips:
    L.append("## Skipped")
    L.append("")
    for (w, mode), why in sorted(skips.items()):
        L.append(f"* {w} / {mode}: {why}")
    L.append("")
open(os.path.join(out, "results.md"), "w").write("\n".join(L).rstrip() + "\n")

# ------------------------------------------------------------ SVG bar charts
def bars(fname, title, unit, rows):
    rows = [r for r in rows if r[1] is not None]
    if not rows:
        return
    W, left, right, bh, gap, top = 860, 250, 90, 20, 8, 48
    H = top + len(rows) * (bh + gap) + 44
    vmax = max(r[3] for r in rows) * 1.05 or 1
    sx = lambda v: left + (W - left - right) * v / vmax
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{W/2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">{html.escape(title)}</text>']
    for i in range(6):
        v = vmax * i / 5
        x = sx(v)
        o.append(f'<line x1="{x:.1f}" y1="{top-6}" x2="{x:.1f}" y2="{H-38}" stroke="#ddd"/>')
        o.append(f'<text x="{x:.1f}" y="{H-24}" text-anchor="middle" fill="#555">{v:,.{0 if vmax >= 50 else 2}f}</text>')
    o.append(f'<text x="{left + (W-left-right)/2}" y="{H-6}" text-anchor="middle" fill="#333">{html.escape(unit)} (bar: median of the runs, whisker: min-max)</text>')
    for i, (label, m, lo, hi) in enumerate(rows):
        y = top + i * (bh + gap)
        color = "#c0504d" if label.startswith("rvs") else ("#9e9e9e" if label.startswith(("ceiling", "direct")) else "#4f81bd")
        o.append(f'<text x="{left-8}" y="{y+bh*0.72:.1f}" text-anchor="end">{html.escape(label)}</text>')
        o.append(f'<rect x="{left}" y="{y}" width="{max(sx(m)-left, 1):.1f}" height="{bh}" fill="{color}"/>')
        o.append(f'<line x1="{sx(lo):.1f}" y1="{y+bh/2}" x2="{sx(hi):.1f}" y2="{y+bh/2}" stroke="black"/>')
        for v in (lo, hi):
            o.append(f'<line x1="{sx(v):.1f}" y1="{y+4}" x2="{sx(v):.1f}" y2="{y+bh-4}" stroke="black"/>')
        o.append(f'<text x="{sx(hi)+6:.1f}" y="{y+bh*0.72:.1f}">{m:,.{0 if m >= 100 else 2}f}</text>')
    o.append("</svg>")
    open(os.path.join(out, fname), "w").write("\n".join(o) + "\n")

def series(w, metric, modes, scale=1.0):
    r = []
    for mode in modes:
        m = med(w, mode, metric)
        if m is not None:
            lo, hi = rng(w, mode, metric)
            r.append((mode, m * scale, lo * scale, hi * scale))
    return r

bars("udp_rate.svg", "64-byte UDP packets forwarded by the director, full load", "Mpps",
     series("udp", "pps", ["ceiling", "fwd", "nft"] + RVS, 1e-6))
bars("conn_rate.svg", "New TCP connections per second through the director", "connections/s",
     series("conn", "cps", ["fwd", "nft", "haproxy"] + RVS))
lat_rows = []
for mode in ["direct", "fwd", "nft", "haproxy"] + RVS:
    for q in ("p50_us", "p99_us"):
        m = med("lat", mode, q)
        if m is not None:
            lo, hi = rng("lat", mode, q)
            lat_rows.append((f"{mode} {q[:3]}", m, lo, hi))
bars("latency.svg", "Request/response round trip over one TCP connection", "µs", lat_rows)
print(os.path.join(out, "results.md"))
PY
}

if [ "$report_only" = 1 ]; then
  report
  exit 0
fi

# ------------------------------------------------------------------ preconditions
[ "$(id -u)" = 0 ] || { echo "run as root (network namespaces, XDP, taskset)" >&2; exit 1; }
NCPU="$(nproc)"
DCPU="${BENCH_DIRECTOR_CPU:-1}"
GCPU="${BENCH_GENERATOR_CPU:-0}"
if [ "$NCPU" -lt 2 ] || [ "$DCPU" = "$GCPU" ] || [ "$DCPU" -ge "$NCPU" ] || [ "$GCPU" -ge "$NCPU" ]; then
  echo "needs two distinct CPUs for director ($DCPU) and generator ($GCPU); this machine has $NCPU" >&2
  exit 1
fi
if [ "$quick" = 1 ]; then
  RUNS=3; T=1; WARM=0.3; BULK_T=1; LAT_N=500; WRK_T=1; XSTEP_T=1
else
  RUNS=3; T=4; WARM=0.7; BULK_T=3; LAT_N=2000; WRK_T=3; XSTEP_T=2
fi
LAT_GAP=0.0003
FIXED_RATE="${BENCH_FIXED_RATE:-100000pps}"   # the partial-load packet rate
SINK_DEFER="${BENCH_SINK_DEFER:-}"             # DEFER:TIMEOUT_NS, the sinks' NAPI deferral
# Other users of a shared machine: the measured tasks (director, generator, servers) run at
# this nice level so that a CPU-bound job elsewhere takes little of the pinned cores.
NICE="${BENCH_NICE:--20}"
# the script itself runs at the same priority: an orchestrator (and its samplers) at nice 0
# would get about 1% of a core while the measured tasks saturate both
renice -n "$NICE" -p $$ >/dev/null
want_mode() { [ -z "$only_modes" ] || [[ ",$only_modes," == *",$1,"* ]]; }
want_wl() { [ -z "$only_workloads" ] || [[ ",$only_workloads," == *",$1,"* ]]; }

# ------------------------------------------------------------------ tools from Debian
declare -A TOOL_PKG=([ip]=iproute2 [nft]=nftables [ethtool]=ethtool [clang]=clang
  [trafgen]=netsniff-ng [wrk]=wrk [iperf3]=iperf3 [haproxy]=haproxy [taskset]=util-linux
  [python3]=python3 [chrt]=util-linux)
missing=()
for t in "${!TOOL_PKG[@]}"; do command -v "$t" >/dev/null 2>&1 || missing+=("${TOOL_PKG[$t]}"); done
if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "== installing from Debian: ${missing[*]}"
  apt-get update -qq || true
  for pkg in "${missing[@]}"; do
    if apt-cache policy "$pkg" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null 2>&1 \
        || echo "   could not install $pkg"
    else
      echo "   $pkg: no installation candidate"
    fi
  done
fi
for t in ip nft ethtool clang taskset python3; do
  command -v "$t" >/dev/null 2>&1 || { echo "$t is required" >&2; exit 1; }
done
have() { command -v "$1" >/dev/null 2>&1; }

if [ "$build" = 1 ]; then
  echo "== building rvs (release)"
  cargo build --release --locked -q -p rvsd -p rvsadm -p rvs-realserver -p rvs-lab
fi
bin="${CARGO_TARGET_DIR:-$ROOT/target}/release"
for b in rvsd rvsadm rvs-rs rvs-lab; do
  [ -x "$bin/$b" ] || { echo "$bin/$b missing (build first)" >&2; exit 1; }
done

# ------------------------------------------------------------------ lab state and cleanup
T0=$(date +%s)
P="$(printf 'b%03d' $(( $$ % 1000 )))"   # short: NAPI thread names are napi/<dev>-<id>, 15 chars
NG="$P-gen"; ND="$P-dir"
tmp="$(mktemp -d /tmp/rvs-bench.XXXXXX)"
nss=(); pids=(); DEVS=()
RVS_SOCK="@rvs-bench-$P"
export RVS_SOCKET="$RVS_SOCK"
cleanup() {
  set +e
  trap '' INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for n in "${nss[@]}"; do
    for pid in $(ip netns pids "$n" 2>/dev/null); do kill "$pid" 2>/dev/null; done
  done
  sleep 0.3
  for n in "${nss[@]}"; do
    for pid in $(ip netns pids "$n" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
  done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  for n in "${nss[@]}"; do ip netns del "$n" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "bench.sh: line $LINENO: failed: $BASH_COMMAND" >&2' ERR
trap 'exit 130' INT TERM

mkns() { ip netns add "$1"; nss+=("$1"); ip -n "$1" link set lo up; }
nsx() { local n="$1"; shift; ip netns exec "$n" "$@"; }
log() { printf '[%4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }

# raw results: workload mode run metric value   |   workload skip mode reason
if [ -z "$only_modes$only_workloads" ] || [ ! -f "$RAW" ]; then
  printf 'workload\tmode\trun\tmetric\tvalue\n' >"$RAW"
else
  # a partial re-run replaces only what it measures
  python3 - "$RAW" "$only_modes" "$only_workloads" <<'PY'
import sys
raw, modes, wls = sys.argv[1], [m for m in sys.argv[2].split(",") if m], [w for w in sys.argv[3].split(",") if w]
keep = []
for line in open(raw):
    f = line.rstrip("\n").split("\t")
    if f[0] == "workload":
        keep.append(line); continue
    mode = f[2] if f[1] == "skip" else f[1]
    if (not modes or mode in modes or (f[0] == "scale" and "scale" in wls)) and (not wls or f[0] in wls):
        continue
    keep.append(line)
open(raw, "w").writelines(keep)
PY
fi
rec() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RAW"; }
skip() { printf '%s\tskip\t%s\t%s\n' "$1" "$2" "$3" >>"$RAW"; log "skip $1/$2: $3"; }

# ------------------------------------------------------------------ helpers compiled here
cat >"$tmp/xdp.c" <<'EOF'
/* sink: drop every IPv4 frame at the real servers' ingress (packet-rate and SYN-flood
 * tests), let ARP through. No headers needed. */
typedef unsigned int u32; typedef unsigned char u8;
struct xdp_md { u32 data; u32 data_end; u32 data_meta; u32 ingress_ifindex; u32 rx_queue_index; };
__attribute__((section("xdp"), used)) int sink_prog(struct xdp_md *ctx) {
  u8 *d = (u8 *)(long)ctx->data, *e = (u8 *)(long)ctx->data_end;
  if (d + 14 > e) return 2;
  return (d[12] == 0x08 && d[13] == 0x00) ? 1 : 2; /* XDP_DROP : XDP_PASS */
}
char _license[] __attribute__((section("license"), used)) = "GPL";
EOF
clang -O2 -target bpf -c "$tmp/xdp.c" -o "$tmp/xdp.o"
cat >"$tmp/tcbare.c" <<'EOF'
/* tcbare: the UDP benchmark flow (to port 9) rewritten for one of the three real servers,
 * chosen by source port, and redirected to its link: what a TC fast path costs without a
 * flow table. OIFk, DMk, SMk come from -D. */
typedef unsigned char u8; typedef unsigned int u32; typedef unsigned long long u64;
struct __sk_buff { u32 len, pkt_type, mark, queue_mapping, protocol, vlan_present, vlan_tci,
  vlan_proto, priority, ingress_ifindex, ifindex, tc_index, cb[5], hash, tc_classid, data, data_end; };
static long (*bpf_redirect)(u32 ifindex, u64 flags) = (void *)23;
static long (*bpf_skb_pull_data)(void *skb, u32 len) = (void *)39;
#define SET(a, b) do { u8 m[6] = {a}, n[6] = {b}; \
  for (int i = 0; i < 6; i++) { d[i] = m[i]; d[6 + i] = n[i]; } } while (0)
__attribute__((section("tc"), used)) int bare(struct __sk_buff *skb) {
  if (bpf_skb_pull_data(skb, 42)) return -1;
  u8 *d = (u8 *)(long)skb->data, *e = (u8 *)(long)skb->data_end;
  if (d + 42 > e || d[12] != 8 || d[13] != 0 || d[23] != 17 || d[36] != 0 || d[37] != 9) return -1;
  u32 k = ((d[34] << 8) | d[35]) % 3;
  d[22] -= 1; /* TTL (the checksum is not fixed: the real servers drop the frame anyway) */
  if (k == 0) { SET(DM1, SM1); return bpf_redirect(OIF1, 0); }
  if (k == 1) { SET(DM2, SM2); return bpf_redirect(OIF2, 0); }
  SET(DM3, SM3); return bpf_redirect(OIF3, 0);
}
char _license[] __attribute__((section("license"), used)) = "GPL";
EOF
cat >"$tmp/sndbuf.c" <<'EOF'
/* LD_PRELOAD for trafgen: a large send buffer on its packet socket. trafgen raises it through
 * net.core.wmem_default, which is read-only inside a network namespace; with the default
 * the socket runs out of buffer as soon as the receiver's ring is full and trafgen quits. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/socket.h>
int socket(int domain, int type, int protocol) {
  static int (*real)(int, int, int);
  if (!real) real = (int (*)(int, int, int))dlsym(RTLD_NEXT, "socket");
  int fd = real(domain, type, protocol);
  if (fd >= 0 && domain == AF_PACKET) {
    int v = 64 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof v);
  }
  return fd;
}
EOF
clang -O2 -shared -fPIC -o "$tmp/sndbuf.so" "$tmp/sndbuf.c" -ldl

cat >"$tmp/lat.py" <<'EOF'
# request/response round trips over one kept-alive TCP connection: prints p50 p99 in µs
import socket, sys, time
host, port, n, gap = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
s = socket.create_connection((host, port), timeout=3)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
req = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
def rt():
    t0 = time.perf_counter_ns()
    s.sendall(req)
    buf = b""
    while True:
        c = s.recv(65536)
        if not c:
            raise SystemExit("connection closed")
        buf += c
        h = buf.find(b"\r\n\r\n")
        if h >= 0:
            cl = 0
            for line in buf[:h].split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    cl = int(v)
            if len(buf) >= h + 4 + cl:
                break
    return time.perf_counter_ns() - t0
for _ in range(50):
    rt(); time.sleep(gap)
lat = []
for _ in range(n):
    lat.append(rt()); time.sleep(gap)
lat.sort()
print(f"{lat[len(lat)//2]/1000:.1f} {lat[int(len(lat)*0.99)]/1000:.1f}")
EOF

# ------------------------------------------------------------------ the lab
#   gen  ${P}c0 198.18.0.2/24  ---  ${P}d0 198.18.0.1/24  dir (VIP 198.18.100.100 on lo)
#   dir  ${P}dK 198.19.K.1/24  ---  ${P}sK 198.19.K.2/24  rsK   (K = 1..3; the RIPs)
#   rsK  ${P}tK 198.18.K.2/24  ---  ${P}gK 198.18.K.1/24  gen   (DR/TUN answers, direct path)
# Every veth end: NAPI on (GRO feature on, but gro_max_size 0 so nothing is ever merged),
# NAPI in a kernel thread pinned to its side's core (director ends: DCPU, the others: GCPU,
# the latter at SCHED_FIFO 1 like softirq), no TSO/GSO super-frames (gso_max_segs 1),
# transmit checksums in software (tx off: XDP sees complete checksums). Without NAPI a veth
# receiver does its work on the *sender's* CPU and the director core would look idle.
VIP=198.18.100.100
log "lab $P: director on CPU $DCPU, generator and real servers on CPU $GCPU"
mkns "$NG"; mkns "$ND"
for k in 1 2 3; do mkns "$P-rs$k"; done
veth() { ip -n "$1" link add "$2" type veth peer name "$4" netns "$3"; }
prep_dev() { # NS DEV CPU
  local n="$1" d="$2" c="$3"
  ip -n "$n" link set "$d" up
  nsx "$n" ethtool -K "$d" gro on tx off >/dev/null 2>&1 || true
  ip -n "$n" link set "$d" gso_max_segs 1 gro_max_size 0
  nsx "$n" sh -c "echo 1 > /sys/class/net/$d/threaded"
  DEVS+=("$n $d $c")
}
napi_of() { pgrep "^napi/$1-" || true; }
pin_napi() {
  local e n d c p
  for e in "${DEVS[@]}"; do
    read -r n d c <<<"$e"
    nsx "$n" sh -c "echo 1 > /sys/class/net/$d/threaded" 2>/dev/null || true
    for p in $(napi_of "$d"); do
      taskset -p -c "$c" "$p" >/dev/null
      if [ "$c" = "$GCPU" ]; then chrt -f -p 1 "$p" >/dev/null 2>&1 || true
      else renice -n "$NICE" -p "$p" >/dev/null 2>&1 || true; fi
    done
  done
}
dir_napi() { local e n d c; for e in "${DEVS[@]}"; do read -r n d c <<<"$e"; [ "$n" = "$ND" ] && napi_of "$d"; done; }

veth "$NG" "${P}c0" "$ND" "${P}d0"
ip -n "$NG" addr add 198.18.0.2/24 dev "${P}c0"
ip -n "$ND" addr add 198.18.0.1/24 dev "${P}d0"
ip -n "$ND" addr add "$VIP/32" dev lo
prep_dev "$NG" "${P}c0" "$GCPU"; prep_dev "$ND" "${P}d0" "$DCPU"
for k in 1 2 3; do
  R="$P-rs$k"
  veth "$ND" "${P}d$k" "$R" "${P}s$k"
  ip -n "$ND" addr add "198.19.$k.1/24" dev "${P}d$k"
  ip -n "$R" addr add "198.19.$k.2/24" dev "${P}s$k"
  veth "$R" "${P}t$k" "$NG" "${P}g$k"
  ip -n "$R" addr add "198.18.$k.2/24" dev "${P}t$k"
  ip -n "$NG" addr add "198.18.$k.1/24" dev "${P}g$k"
  prep_dev "$ND" "${P}d$k" "$DCPU"; prep_dev "$R" "${P}s$k" "$GCPU"
  prep_dev "$R" "${P}t$k" "$GCPU"; prep_dev "$NG" "${P}g$k" "$GCPU"
  ip -n "$R" route add 198.18.0.0/24 via "198.19.$k.1"
  for s in all.rp_filter default.rp_filter; do nsx "$R" sysctl -qw "net.ipv4.conf.$s=0"; done
  nsx "$R" sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
done
ip -n "$NG" route add "$VIP/32" via 198.18.0.1
ip -n "$NG" route add 198.19.0.0/16 via 198.18.0.1
for n in "$NG" "$ND"; do
  for s in all.rp_filter default.rp_filter; do nsx "$n" sysctl -qw "net.ipv4.conf.$s=0"; done
  nsx "$n" sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
done
for d in "${P}c0" "${P}g1" "${P}g2" "${P}g3"; do nsx "$NG" sysctl -qw "net.ipv4.conf.$d.rp_filter=0"; done
nsx "$ND" sysctl -qw net.ipv4.ip_forward=1
# a transmit queue on the director's links as a NIC driver has one (veth defaults to
# noqueue: a burst larger than the 256-frame ring of the receiving end would be dropped)
for d in "${P}d0" "${P}d1" "${P}d2" "${P}d3"; do tc -n "$ND" qdisc replace dev "$d" root pfifo limit 1000; done
pin_napi
DMAC="$(nsx "$ND" cat "/sys/class/net/${P}d0/address")"

# real servers: an HTTP server (HAProxy answering 200, or rvs-lab) and iperf3 on rs1
BUDGET=$(( quick ? 900 : 2400 ))
# HAProxy raises its descriptor limit to about 2 x maxconn and fails above the hard limit
NOFILE="$(ulimit -Hn)"; [ "$NOFILE" = unlimited ] && NOFILE=1048576
RS_MAXCONN=$(( NOFILE / 2 - 100 < 50000 ? NOFILE / 2 - 100 : 50000 ))
LB_MAXCONN=$(( NOFILE / 4 - 100 < 50000 ? NOFILE / 4 - 100 : 50000 ))
for k in 1 2 3; do
  R="$P-rs$k"
  if have haproxy; then
    cat >"$tmp/rs$k.cfg" <<EOF
global
  nbthread 1
  maxconn $RS_MAXCONN
defaults
  mode http
  timeout client 10s
  timeout server 10s
  timeout connect 2s
  timeout http-keep-alive 30s
frontend web
  bind :80
  http-request return status 200 content-type text/plain string "rs$k"
EOF
    ip netns exec "$R" timeout "$BUDGET" taskset -c "$GCPU" nice -n "$NICE" haproxy -db -f "$tmp/rs$k.cfg" >"$tmp/rs$k.log" 2>&1 &
  else
    ip netns exec "$R" timeout "$BUDGET" taskset -c "$GCPU" nice -n "$NICE" "$bin/rvs-lab" serve --name "rs$k" --port 80 --seconds "$BUDGET" >"$tmp/rs$k.log" 2>&1 &
  fi
  pids+=($!)
done
if have iperf3; then
  ip netns exec "$P-rs1" timeout "$BUDGET" taskset -c "$GCPU" nice -n "$NICE" iperf3 -s -p 5201 >"$tmp/iperf3-s.log" 2>&1 &
  pids+=($!)
fi
# idle anchors: their /proc/PID/net/dev shows each namespace's interface counters
ip netns exec "$ND" timeout "$BUDGET" sleep "$BUDGET" & ANCHOR_D=$!; pids+=("$ANCHOR_D")
ip netns exec "$NG" timeout "$BUDGET" sleep "$BUDGET" & ANCHOR_G=$!; pids+=("$ANCHOR_G")
sleep 0.5

# ------------------------------------------------------------------ measurement primitives
# sample: time_ns forwarded_to_rs delivered_to_dir dropped_at_gen dir_task_ns busy total steal
# One short-lived process at high priority reads everything with its own timestamp (a
# sampler starved behind the measured tasks would skew the windows): interface counters
# through /proc/PID/net/dev of an idle anchor process in each namespace, the director's
# task CPU time from schedstat, the director core's line of /proc/stat.
cat >"$tmp/sample.py" <<'EOF'
import glob, sys, time
anchor_d, anchor_g, p, cpu = sys.argv[1:5]
pids = sys.argv[5:]
t = time.time_ns()
def netdev(pid):
    d = {}
    for line in open(f"/proc/{pid}/net/dev").readlines()[2:]:
        name, rest = line.split(":", 1)
        f = rest.split()
        d[name.strip()] = (int(f[1]), int(f[9]), int(f[11]))  # rx_packets tx_packets tx_drop
    return d
dd, gd = netdev(anchor_d), netdev(anchor_g)
fwd = sum(dd[f"{p}d{k}"][1] for k in (1, 2, 3))
gen_tx, gen_drop = gd[f"{p}c0"][1], gd[f"{p}c0"][2]
ns = 0
for pid in pids:
    for f in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            ns += int(open(f).read().split()[0])
        except (OSError, ValueError):
            pass
for line in open("/proc/stat"):
    f = line.split()
    if f[0] == "cpu" + cpu:
        v = [int(x) for x in f[1:9]]
        busy, total, steal = v[0] + v[1] + v[2] + v[5] + v[6], sum(v), v[7]
        break
print(t, fwd, gen_tx, gen_drop, ns, busy, total, steal)
EOF
DUT_PIDS=""
sample() {
  # shellcheck disable=SC2046
  nice -n -15 python3 "$tmp/sample.py" "$ANCHOR_D" "$ANCHOR_G" "$P" "$DCPU" $DUT_PIDS $(dir_napi)
}
# delta NAME: fields of two samples -> rates
delta() { # s0 s1 -> secs fwd_pps gen_delivered_pps gen_dropped_pps dir_ns busy_pct steal_pct
  awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ");
    s = (y[1]-x[1])/1e9; bt = y[7]-x[7]; busy = 0; steal = 0;
    if (bt > 0) { busy = 100*(y[6]-x[6])/bt; steal = 100*(y[8]-x[8])/bt }
    printf "%.3f %.0f %.0f %.0f %.0f %.1f %.1f\n", s, (y[2]-x[2])/s, (y[3]-x[3])/s, (y[4]-x[4])/s, y[5]-x[5], busy, steal }'
}
set_dut() { DUT_PIDS="$(ip netns pids "$ND" | paste -sd' ')"; }
sink() { # on|off: XDP drop of IPv4 at the real servers' ingress
  local k defer=0 timeout=0
  if [ "$1" = on ] && [ -n "$SINK_DEFER" ]; then defer="${SINK_DEFER%%:*}"; timeout="${SINK_DEFER#*:}"; fi
  for k in 1 2 3; do
    if [ "$1" = on ]; then
      ip -force -n "$P-rs$k" link set dev "${P}s$k" xdpdrv obj "$tmp/xdp.o" sec xdp
    else
      ip -n "$P-rs$k" link set dev "${P}s$k" xdpdrv off 2>/dev/null || true
    fi
    # interrupt moderation for the sinks (BENCH_SINK_DEFER), off again after the UDP runs
    nsx "$P-rs$k" sh -c "echo $defer > /sys/class/net/${P}s$k/napi_defer_hard_irqs; \
      echo $timeout > /sys/class/net/${P}s$k/gro_flush_timeout" 2>/dev/null || true
  done
  pin_napi
}
rs_route() { # dir|client: where the real servers send answers for the client LAN
  local k
  for k in 1 2 3; do
    if [ "$1" = dir ]; then
      ip -n "$P-rs$k" route replace 198.18.0.0/24 via "198.19.$k.1"
    else
      ip -n "$P-rs$k" route replace 198.18.0.0/24 via "198.18.$k.1" dev "${P}t$k"
    fi
  done
}
trafgen_cfg() { # FILE DST-SPEC: 60-byte frames (64 on the wire), 241 sources x 256 ports
  cat >"$1" <<EOF
{ eth(da=$DMAC), ipv4(sa=198.18.0.10, sa[3]=dinc(10, 250), $2, ttl=64),
  udp(sp=dinc(1024, 1279), dp=9, csum=0), fill(0x41, 18) }
EOF
}
trafgen_cfg "$tmp/udp-vip.cfg" "da=$VIP"
trafgen_cfg "$tmp/udp-rip.cfg" "da=198.19.1.2, da[2]=dinc(1, 3)"
start_trafgen() { # CFG [extra args]: runs bounded, pinned to the generator core
  local cfg="$1"; shift
  ip netns exec "$NG" env LD_PRELOAD="$tmp/sndbuf.so" timeout "$((T + 45))" taskset -c "$GCPU" nice -n "$NICE" \
    trafgen -i "$cfg" -o "${P}c0" -P 1 -Q -C "$@" >>"$tmp/trafgen.log" 2>&1 &
  TG=$!
  sleep 0.1
  # trafgen pins its worker to CPU 0 itself; keep it on the generator core
  for p in $(ip netns pids "$NG"); do taskset -a -p -c "$GCPU" "$p" >/dev/null 2>&1 || true; done
}
start_xdpgen() { # MODE [ARGS]: rvs-lab xdpgen (flat out, or ARGS such as --rate), bounded,
  # pinned to the generator core; XDPGEN_ARGS=--loop where the kernel refuses live frames
  local dst="$VIP" mode="$1" a args=()
  shift
  [ "$mode" = fwd ] && dst=198.19.1.2
  # --seeds N is the loop generator's: dropped for live frames
  while [ $# -gt 0 ]; do
    a="$1"; shift
    if [ "$a" = --seeds ]; then [ "$XDPGEN_ARGS" = --loop ] && args+=(--seeds "$1"); shift; else args+=("$a"); fi
  done
  # shellcheck disable=SC2086
  ip netns exec "$NG" nice -n "$NICE" "$bin/rvs-lab" xdpgen -i "${P}c0" --dst-mac "$DMAC" \
    --dst "$dst" --dport 9 --src 198.18.0.10 --src-count 241 --sport 1024 --sport-count "$XPORTS" \
    --seconds "$((T + 45))" --cpu "$GCPU" $XDPGEN_ARGS "${args[@]}" >>"$tmp/xdpgen.log" 2>&1 &
  TG=$!
  sleep 0.1
}
stop_bg() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
fast_warm() { # MODE [FLOWS]: rvs only: wait (bounded, 20 s) until the kernel fast path holds
  # (98.9% of) the FLOWS flows (default 61,696)
  [[ "$1" == rvs-* ]] || return 0
  local i n=0 t0
  t0=$(date +%s.%N)
  for i in $(seq 40); do
    n=$(metric rvs_fastpath_flows); n=${n%.*}
    [ "${n:-0}" -ge $(( ${2:-61696} * 989 / 1000 )) ] && break
    sleep 0.5
  done
  log "$1: kernel fast path holds ${n:-0} flows after $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b-a}') s"
}

udp_runs() { # WORKLOAD MODE CFG [generator args]: udp = flat out, udp_fixed = -b RATE,
  # udpx = xdpgen flat out, udpx_fixed = xdpgen --rate RATE
  local wl="$1" mode="$2" cfg="$3" r
  shift 3
  # ONLY_RUN=N: just run N (interleaved runs, each after a fresh mode_up)
  for r in ${ONLY_RUN:-$(seq "$RUNS")}; do
    if [ -z "${ONLY_RUN:-}" ] && [[ "$mode" == rvs-* ]] && { [ "$wl" = udp ] || [ "$wl" = udpx ]; } && [ "$r" -gt 1 ]; then
      rvs_restart
    fi
    if [[ "$wl" == udpx* ]]; then
      start_xdpgen "$mode" "$@"; fast_warm "$mode" $(( 241 * XPORTS ))
    else
      start_trafgen "$cfg" "$@"; fast_warm "$mode"
    fi
    sleep "$WARM"
    udp_measure "$wl" "$mode" "$r" "$T"
    sleep 0.3
  done
}

udp_measure() { # WL MODE RUN SECONDS: sample the running load for SECONDS, record, stop it
  local wl="$1" mode="$2" r="$3" t="$4" s0 s1 secs fwd gdel gdrop dns busy steal c0 c1 rx tx txe
  c0=$(rvs_counters); s0=$(sample); sleep "$t"; s1=$(sample); c1=$(rvs_counters)
  stop_bg "$TG"
  read -r secs fwd gdel gdrop dns busy steal <<<"$(delta "$s0" "$s1")"
  if [ "$mode" = ceiling ]; then fwd="$gdel"; fi
  rec "$wl" "$mode" "$r" pps "$fwd"
  rec "$wl" "$mode" "$r" offered_pps "$(( gdel + gdrop ))"
  rec "$wl" "$mode" "$r" delivered_pps "$gdel"
  rec "$wl" "$mode" "$r" core_busy_pct "$busy"
  rec "$wl" "$mode" "$r" steal_pct "$steal"
  rec "$wl" "$mode" "$r" dir_cpu_pct "$(awk -v n="$dns" -v s="$secs" 'BEGIN {printf "%.1f", n/(s*1e7)}')"
  # what ran on the director core besides the director (other users of a shared machine)
  rec "$wl" "$mode" "$r" foreign_pct "$(awk -v b="$busy" -v n="$dns" -v s="$secs" 'BEGIN {f = b - n/(s*1e7); printf "%.1f", f < 0 ? 0 : f}')"
  if [ "$gdel" -gt 0 ]; then
    rec "$wl" "$mode" "$r" loss_pct "$(awk -v f="$fwd" -v d="$gdel" 'BEGIN {l = 100*(1-f/d); printf "%.1f", l < 0 ? 0 : l}')"
  fi
  if [ $(( gdel + gdrop )) -gt 0 ]; then
    rec "$wl" "$mode" "$r" offered_loss_pct "$(awk -v f="$fwd" -v d="$(( gdel + gdrop ))" 'BEGIN {l = 100*(1-f/d); printf "%.2f", l < 0 ? 0 : l}')"
  fi
  if [ "$fwd" -gt 0 ]; then
    rec "$wl" "$mode" "$r" cpu_ns_per_pkt "$(awk -v n="$dns" -v p="$fwd" -v s="$secs" 'BEGIN {printf "%.1f", n/(p*s)}')"
  fi
  local extra=""
  if [[ "$mode" == rvs-* ]]; then
    read -r rx tx txe <<<"$(awk -v a="$c0" -v b="$c1" 'BEGIN {split(a,x," "); split(b,y," "); s = (y[1]-x[1])/1e9; if (s <= 0) s = 1;
      printf "%.0f %.0f %.0f", (y[2]-x[2])/s, (y[3]-x[3])/s, (y[4]-x[4])/s}')"
    rec "$wl" "$mode" "$r" rvsd_rx_pps "$rx"
    rec "$wl" "$mode" "$r" rvsd_tx_err_pps "$txe"
    extra=", rvsd received $rx/s, send errors $txe/s"
  fi
  log "$wl $mode run $r: forwarded $fwd pps of $gdel delivered ($(( gdel + gdrop )) offered), director tasks $(awk -v n="$dns" -v s="$secs" 'BEGIN {printf "%.0f", n/(s*1e7)}')% of a core, core busy $busy%$extra"
}

# The XDP-frame generator (paced by `--rate`, bursts of 64) outruns every director here,
# and a veth ring kept full by a producer on another CPU collapses (most frames lost, the
# receiving CPU busy), so udpx is a rate sweep: offered rates XSWEEP (Mpps), XSTEP_T
# seconds each, ending after two steps in a row where the director forwarded less than 90%
# of what was offered (saturated). Recorded as `udpx`: the step that forwarded the most
# (its rates, loss, CPU per packet...), plus `pass_pps`, the most forwarded in a step that
# lost at most XLOSS % of the offered frames (RFC 2544's throughput, with a tolerance: on
# this VM even a director that drops everything at its XDP hook loses 0.3-2.5% of frames at
# its receive ring at 1 Mpps, while its NAPI thread is being woken up). Every step is also
# recorded as `udpx@RATE`. Each burst is one seed going round 64 times (`--seeds 1`): the
# generator's fastest form (1.6 Mpps here), one frame per turn of its loop.
XSWEEP="${BENCH_XSWEEP:-0.5 0.75 1.0 1.25 1.5 1.75 2.0 2.5}"
# source ports per source address of the xdpgen workloads (241 addresses): 256 = the
# 61,696 flows of trafgen's; fewer show what the flow table's size costs
XPORTS="${BENCH_XPORTS:-256}"
XLOSS="${BENCH_XLOSS:-1}"
udpx_sweep() { # MODE
  local mode="$1" r rate pps step_raw best bestpps fails passpps first keep_raw="$RAW" fw off
  for r in ${ONLY_RUN:-$(seq "$RUNS")}; do
    if [ -z "${ONLY_RUN:-}" ] && [[ "$mode" == rvs-* ]] && [ "$r" -gt 1 ]; then rvs_restart; fi
    best=""; bestpps=0; fails=0; passpps=0; first=1
    for rate in $XSWEEP; do
      pps=$(awk -v m="$rate" 'BEGIN {printf "%.0f", m*1e6}')
      start_xdpgen "$mode" --rate "$pps" --burst 64 --seeds 1
      if [ "$first" = 1 ]; then fast_warm "$mode" $(( 241 * XPORTS )); first=0; fi
      sleep "$WARM"
      step_raw="$tmp/udpx-step-$rate.tsv"; : >"$step_raw"
      RAW="$step_raw"; udp_measure udpx "$mode" "$r" "$XSTEP_T"; RAW="$keep_raw"
      # every step, for the CPU-at-equal-load table
      sed "s/^udpx\t/udpx@$rate\t/" "$step_raw" >>"$RAW"
      fw=$(awk -F'\t' '$4 == "pps" {print $5}' "$step_raw")
      off=$(awk -F'\t' '$4 == "offered_pps" {print $5}' "$step_raw")
      if awk -v f="${fw:-0}" -v o="${off:-0}" -v lim="$XLOSS" 'BEGIN {exit !(o > 0 && 100*(1-f/o) <= lim)}'; then
        [ "${fw:-0}" -gt "$passpps" ] && passpps="$fw"
      fi
      if [ "${fw:-0}" -gt "$bestpps" ]; then best="$step_raw"; bestpps="$fw"; fi
      if awk -v f="${fw:-0}" -v o="${off:-0}" 'BEGIN {exit !(f < 0.9*o)}'; then fails=$((fails + 1)); else fails=0; fi
      [ "$fails" -ge 2 ] && break
      sleep 0.3
    done
    if [ -n "$best" ]; then
      cat "$best" >>"$RAW"
      rec udpx "$mode" "$r" step_mpps "$(basename "$best" .tsv | sed 's/^udpx-step-//')"
    fi
    rec udpx "$mode" "$r" pass_pps "$passpps"
    log "udpx $mode run $r: most forwarded $bestpps pps; within ${XLOSS}% loss: $passpps pps"
  done
}

cat >"$tmp/rips.lua" <<'EOF'
-- plain forwarding: each wrk thread talks to one real server directly
local n = 0
function setup(thread)
  local rips = {"198.19.1.2", "198.19.2.2", "198.19.3.2"}
  n = n + 1
  thread.addr = wrk.lookup(rips[(n - 1) % 3 + 1], "80")[1]
end
EOF
conn_runs() { # MODE URL [LUA]
  local mode="$1" url="$2" lua="${3:-}" r s0 s1 o reqs secs cps errs dns busy steal x
  if ! have wrk; then skip conn "$mode" "wrk not installed"; return; fi
  for r in ${ONLY_RUN:-$(seq "$RUNS")}; do
    s0=$(sample)
    o=$(nsx "$NG" timeout "$((WRK_T + 15))" taskset -c "$GCPU" nice -n "$NICE" wrk -t3 -c48 -d"${WRK_T}s" --timeout 2s \
          -H 'Connection: close' ${lua:+-s "$lua"} "$url" 2>&1) || true
    s1=$(sample)
    reqs=$(awk '/requests in/ {print $1}' <<<"$o")
    cps=$(awk '/^Requests\/sec/ {printf "%.0f", $2}' <<<"$o")
    errs=$(awk '/Socket errors/ {gsub(",", ""); print $4+$6+$8+$10} /Non-2xx/ {print $NF}' <<<"$o" | awk '{s+=$1} END {print s+0}')
    if [ -z "$cps" ] || [ -z "$reqs" ]; then
      log "conn $mode run $r: wrk failed: $(tail -2 <<<"$o" | tr '\n' ' ')"
      continue
    fi
    read -r secs x x x dns busy steal <<<"$(delta "$s0" "$s1")"
    rec conn "$mode" "$r" cps "$cps"
    rec conn "$mode" "$r" dir_cpu_pct "$(awk -v n="$dns" -v s="$secs" 'BEGIN {printf "%.1f", n/(s*1e7)}')"
    rec conn "$mode" "$r" errors "$errs"
    rec conn "$mode" "$r" core_busy_pct "$busy"
    [ "$reqs" -gt 0 ] && rec conn "$mode" "$r" cpu_us_per_conn "$(awk -v n="$dns" -v c="$reqs" 'BEGIN {printf "%.2f", n/c/1000}')"
    log "conn $mode run $r: $cps conn/s, $errs errors, core busy $busy%"
    sleep 0.3
  done
}
lat_runs() { # MODE HOST
  local mode="$1" host="$2" r o
  if ! have haproxy; then skip lat "$mode" "needs HAProxy as the real servers' keep-alive HTTP server"; return; fi
  for r in ${ONLY_RUN:-$(seq "$RUNS")}; do
    o=$(nsx "$NG" timeout 60 taskset -c "$GCPU" nice -n "$NICE" python3 "$tmp/lat.py" "$host" 80 "$LAT_N" "$LAT_GAP" 2>&1) || true
    if [[ "$o" =~ ^[0-9.]+\ [0-9.]+$ ]]; then
      rec lat "$mode" "$r" p50_us "${o% *}"; rec lat "$mode" "$r" p99_us "${o#* }"
      log "lat $mode run $r: p50 ${o% *} µs, p99 ${o#* } µs"
    else
      log "lat $mode run $r failed: $o"
    fi
  done
}
bulk_runs() { # MODE HOST
  local mode="$1" host="$2" r o s0 s1 bps x busy steal secs dns
  if ! have iperf3; then skip bulk "$mode" "iperf3 not installed"; return; fi
  for r in ${ONLY_RUN:-$(seq "$RUNS")}; do
    s0=$(sample)
    o=$(nsx "$NG" timeout "$((BULK_T + 15))" taskset -c "$GCPU" nice -n "$NICE" iperf3 -c "$host" -p 5201 -t "$BULK_T" -J 2>&1) || true
    s1=$(sample)
    bps=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"])' <<<"$o" 2>/dev/null) || bps=""
    if [ -z "$bps" ]; then log "bulk $mode run $r failed: $(tail -c 300 <<<"$o")"; continue; fi
    read -r secs x x x dns busy steal <<<"$(delta "$s0" "$s1")"
    rec bulk "$mode" "$r" gbps "$(awk -v b="$bps" 'BEGIN {printf "%.3f", b/1e9}')"
    rec bulk "$mode" "$r" dir_cpu_pct "$(awk -v n="$dns" -v s="$secs" 'BEGIN {printf "%.1f", n/(s*1e7)}')"
    rec bulk "$mode" "$r" core_busy_pct "$busy"
    log "bulk $mode run $r: $(awk -v b="$bps" 'BEGIN {printf "%.2f", b/1e9}') Gbit/s, core busy $busy%"
    sleep 0.5
  done
}

# ------------------------------------------------------------------ the directors
adm() { nsx "$ND" "$bin/rvsadm" "$@"; }
RVSD=""
start_rvsd() { # BACKEND [extra rvsd args]
  local backend="$1"; shift
  ip netns exec "$ND" timeout "$BUDGET" taskset -c "$DCPU" nice -n "$NICE" "$bin/rvsd" -i "${P}d0" -i "${P}d1" -i "${P}d2" -i "${P}d3" \
    --backend "$backend" --no-state --socket "$RVS_SOCK" --metrics 127.0.0.1:9105 "$@" ${RVSD_EXTRA:-} >"$tmp/rvsd.log" 2>&1 &
  RVSD=$!; pids+=("$RVSD")
  local i
  for i in $(seq 200); do adm -L -n >/dev/null 2>&1 && break; sleep 0.05; done
  adm -L -n >/dev/null 2>&1 || { cat "$tmp/rvsd.log" >&2; return 1; }
  pin_napi; set_dut
}
stop_rvsd() { [ -n "$RVSD" ] && stop_bg "$RVSD"; RVSD=""; sleep 0.2; pin_napi; }
metric() { # NAME: a value from rvsd's /metrics (0 if it cannot be read)
  local i
  for i in 1 2 3; do metric_once "$1" && return 0; sleep 0.5; done
  echo 0
}
metric_once() {
  nsx "$ND" python3 -c '
import sys, urllib.request
for l in urllib.request.urlopen("http://127.0.0.1:9105/metrics", timeout=5).read().decode().splitlines():
    if l.startswith(sys.argv[1] + " ") or l.startswith(sys.argv[1] + "{"):
        print(l.split()[-1]); break' "$1"
}
rvs_counters() { # time_ns rx tx tx_errors of rvsd's data plane
  [ -n "$RVSD" ] || { echo "1 0 0 0"; return; }
  nsx "$ND" python3 -c '
import time, urllib.request
t = time.time_ns()
d = {}
for l in urllib.request.urlopen("http://127.0.0.1:9105/metrics", timeout=5).read().decode().splitlines():
    if l.startswith("rvs_dataplane_"):
        d[l.split()[0]] = int(float(l.split()[1]))
print(t, d.get("rvs_dataplane_frames_total{direction=\"rx\"}", 0), d.get("rvs_dataplane_frames_total{direction=\"tx\"}", 0),
      d.get("rvs_dataplane_errors_total{kind=\"tx\"}", 0))' 2>/dev/null || echo "1 0 0 0"
}
rvs_diag() { # rvsd's own view: frames in/out, errors and drops that are not zero
  nsx "$ND" python3 -c '
import urllib.request
out = []
for l in urllib.request.urlopen("http://127.0.0.1:9105/metrics", timeout=5).read().decode().splitlines():
    if l.startswith(("rvs_dataplane_frames_total", "rvs_dataplane_errors_total", "rvs_drops_total", "rvs_connection_table_entries")) and not l.endswith(" 0"):
        out.append(l.replace("rvs_", "").replace("_total", ""))
print(" ".join(out))' 2>/dev/null || true
}
vmrss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
rvsd_pid() { # (an `if`, not `&&`: under pipefail a last non-matching pid must not fail it)
  ip netns pids "$ND" | while read -r p; do
    if [ "$(cat /proc/"$p"/comm 2>/dev/null)" = rvsd ]; then echo "$p"; fi
  done | head -1
}

RS_DECAP=()
rs_setup() { # dr|tun|none
  local k
  RS_DECAP=()
  for k in 1 2 3; do
    case "$1" in
      dr) nsx "$P-rs$k" "$bin/rvs-rs" --state "$tmp/rs$k.json" setup --vip "$VIP" >/dev/null ;;
      tun)
        ip netns exec "$P-rs$k" timeout "$BUDGET" taskset -c "$GCPU" nice -n "$NICE" "$bin/rvs-rs" --state "$tmp/rs$k.json" setup --vip "$VIP" \
          --tunnel ipip --foreground >"$tmp/rs$k-decap.log" 2>&1 &
        RS_DECAP+=($!); pids+=($!) ;;
    esac
  done
  if [ "$1" = tun ]; then
    for k in 1 2 3; do
      for _ in $(seq 100); do ip -n "$P-rs$k" link show rvs-tun0 >/dev/null 2>&1 && break; sleep 0.05; done
    done
  fi
}
rs_undo() {
  local p k
  for p in "${RS_DECAP[@]}"; do stop_bg "$p"; done
  RS_DECAP=()
  for k in 1 2 3; do
    [ -f "$tmp/rs$k.json" ] && nsx "$P-rs$k" "$bin/rvs-rs" --state "$tmp/rs$k.json" undo >/dev/null 2>&1 || true
    rm -f "$tmp/rs$k.json"
  done
}

HAP=""
mode_up() {
  local mode="$1" m b flag k
  DUT_PIDS=""
  case "$mode" in
    ceiling)
      rs_route dir
      nsx "$ND" nft -f - <<EOF
table netdev bench_ceiling {
  chain in { type filter hook ingress device "${P}d0" priority -500; policy accept; udp dport 9 counter drop; }
}
EOF
      ;;
    fwd) rs_route dir ;;
    tcbare)
      rs_route dir
      local k args=()
      for k in 1 2 3; do
        args+=("-DOIF$k=$(nsx "$ND" cat "/sys/class/net/${P}d$k/ifindex")")
        args+=("-DDM$k=$(nsx "$P-rs$k" cat "/sys/class/net/${P}s$k/address" | sed 's/^/0x/; s/:/,0x/g')")
        args+=("-DSM$k=$(nsx "$ND" cat "/sys/class/net/${P}d$k/address" | sed 's/^/0x/; s/:/,0x/g')")
      done
      clang -O2 -target bpf "${args[@]}" -c "$tmp/tcbare.c" -o "$tmp/tcbare.o" 2>"$tmp/rvsd.log" || return 1
      tc -n "$ND" qdisc add dev "${P}d0" clsact
      tc -n "$ND" filter add dev "${P}d0" ingress bpf da obj "$tmp/tcbare.o" sec tc 2>"$tmp/rvsd.log" || return 1
      ;;
    nft)
      rs_route dir
      nsx "$ND" nft -f - <<EOF
table ip bench_lb {
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr $VIP udp dport 9 dnat to numgen inc mod 3 map { 0 : 198.19.1.2, 1 : 198.19.2.2, 2 : 198.19.3.2 }
    ip daddr $VIP tcp dport 80 dnat to numgen inc mod 3 map { 0 : 198.19.1.2, 1 : 198.19.2.2, 2 : 198.19.3.2 }
    ip daddr $VIP tcp dport 5201 dnat to 198.19.1.2
  }
}
EOF
      ;;
    haproxy)
      have haproxy || return 1
      rs_route dir
      cat >"$tmp/lb.cfg" <<EOF
global
  nbthread 1
  maxconn $LB_MAXCONN
defaults
  mode tcp
  timeout connect 2s
  timeout client 30s
  timeout server 30s
frontend web
  bind $VIP:80
  default_backend web
backend web
  balance roundrobin
  server rs1 198.19.1.2:80
  server rs2 198.19.2.2:80
  server rs3 198.19.3.2:80
frontend perf
  bind $VIP:5201
  default_backend perf
backend perf
  server rs1 198.19.1.2:5201
EOF
      ip netns exec "$ND" timeout "$BUDGET" taskset -c "$DCPU" nice -n "$NICE" haproxy -db -f "$tmp/lb.cfg" >"$tmp/lb.log" 2>&1 &
      HAP=$!; pids+=("$HAP")
      sleep 0.5; set_dut ;;
    rvs-*)
      m="${mode#rvs-}"; b="${m#*-}"; m="${m%-*}"
      case "$m" in dr) flag=-g ;; tun) flag=-i ;; nat) flag=-m ;; esac
      case "$m" in dr) rs_setup dr; rs_route client ;; tun) rs_setup tun; rs_route client ;; nat) rs_route dir ;; esac
      RVS_BACKEND="$([ "$b" = xdp ] && echo af-xdp || echo af-packet)"; RVS_METHOD="$m"
      start_rvsd "$RVS_BACKEND" || return 1
      rvs_services ;;
  esac
}
RVS_BACKEND=""; RVS_METHOD=""
rvs_services() { # the benchmark's services on the running rvsd
  local flag k
  case "$RVS_METHOD" in dr) flag=-g ;; tun) flag=-i ;; nat) flag=-m ;; esac
  adm -A -u "$VIP:9" -s rr; adm -A -t "$VIP:80" -s rr
  for k in 1 2 3; do
    adm -a -u "$VIP:9" -r "198.19.$k.2:9" "$flag"
    adm -a -t "$VIP:80" -r "198.19.$k.2:80" "$flag"
  done
  if [ "$RVS_METHOD" = nat ]; then adm -A -t "$VIP:5201" -s rr; adm -a -t "$VIP:5201" -r 198.19.1.2:5201 -m; fi
}
rvs_restart() { # a fresh rvsd: runs at full load are independent samples (see README)
  stop_rvsd; start_rvsd "$RVS_BACKEND" && rvs_services
}
mode_down() {
  case "$1" in
    ceiling) nsx "$ND" nft delete table netdev bench_ceiling ;;
    tcbare) tc -n "$ND" qdisc del dev "${P}d0" clsact ;;
    nft) nsx "$ND" nft delete table ip bench_lb ;;
    haproxy) stop_bg "$HAP"; HAP="" ;;
    rvs-*) stop_rvsd; rs_undo ;;
  esac
  rs_route dir
  DUT_PIDS=""
}

# ------------------------------------------------------------------ metadata
{
  echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "kernel=$(uname -r)"
  echo "cpu=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
  echo "cpus=$NCPU"
  echo "cores=director on CPU $DCPU (taskset; its NAPI threads pinned there), generator, client and real servers on CPU $GCPU; measured tasks at nice $NICE"
  echo "load_start=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- crates 2>/dev/null || echo '+local changes')"
  echo "quick=$quick"
  echo "fixed_rate=$FIXED_RATE"
  echo "sink_defer=${SINK_DEFER:-none}"
  echo "interleave=${BENCH_INTERLEAVE:-1}"
  echo "xsweep=$XSWEEP Mpps, $XSTEP_T s per step, loss limit $XLOSS%, $(( 241 * XPORTS )) flows"
  echo "runs=$RUNS runs; $T s per packet-rate window, $WRK_T s wrk, $BULK_T s iperf3, $LAT_N round trips"
  echo "tools=$( { trafgen -v 2>/dev/null | head -1 | awk '{print $1, $2}'; wrk -v 2>&1 | head -1 | awk '{print "wrk", $2}'; iperf3 -v 2>/dev/null | head -1 | awk '{print $1, $2}'; haproxy -v 2>/dev/null | head -1 | awk '{print "HAProxy", $3}'; nft -v | awk '{print "nft", $2}'; } | paste -sd, | sed 's/,/, /g')"
} >"$META.new"
if [ -n "$only_modes$only_workloads" ] && [ -f "$META" ]; then
  # partial re-run: keep the original date and load, note the re-run
  grep -E '^(date|load_start|load_end)=' "$META" >"$META.keep" || true
  grep -vE '^(date|load_start|load_end)=' "$META.new" >>"$META.keep"
  mv "$META.keep" "$META"; rm -f "$META.new"
else
  mv "$META.new" "$META"
fi

# ------------------------------------------------------------------ run
MODES=(ceiling fwd nft haproxy rvs-dr-afp rvs-tun-afp rvs-nat-afp rvs-dr-xdp rvs-tun-xdp rvs-nat-xdp)
if [[ ",$only_modes," == *",tcbare,"* ]]; then MODES+=(tcbare); fi
if ! have trafgen; then skip udp all "trafgen (netsniff-ng) not installed"; fi
XDP_OK=1
XDPGEN_NO=""
XDPGEN_ARGS=""
per_mode=0
for w in udp udpx conn lat bulk; do want_wl "$w" && per_mode=1; done
[ -z "$only_workloads" ] || [[ ",$only_workloads," != *",udpx,"* ]] || per_mode=1
# The runs go round the directors RUNS times (round 1: run 1 of each director, round 2:
# run 2 of each, ...), each round after a fresh start of the director, so that the host's
# drift over the minutes of a benchmark (this VM's is large) spreads over every director
# alike instead of tilting the ratios against the ones measured during a slow spell.
# BENCH_INTERLEAVE=0: all runs of a director back to back, as before 2026-12-07.
ROUNDS=""; [ "${BENCH_INTERLEAVE:-1}" = 1 ] && ROUNDS=$(seq "$RUNS")
declare -A MODE_FAILED=()
for ONLY_RUN in ${ROUNDS:-all}; do
[ "$ONLY_RUN" = all ] && ONLY_RUN=""
for mode in "${MODES[@]}"; do
  [ "$per_mode" = 1 ] || break
  want_mode "$mode" || continue
  [ -z "${MODE_FAILED[$mode]:-}" ] || continue
  if [ "$mode" = haproxy ] && ! have haproxy; then
    skip conn haproxy "haproxy not installed"; skip lat haproxy "haproxy not installed"
    MODE_FAILED[$mode]=1; continue
  fi
  if [[ "$mode" == *-xdp ]] && [ "$XDP_OK" = 0 ]; then
    skip udp "$mode" "AF_XDP unavailable (see rvsd log)"; MODE_FAILED[$mode]=1; continue
  fi
  log "== $mode${ONLY_RUN:+, round $ONLY_RUN of $RUNS}"
  if ! mode_up "$mode"; then
    [[ "$mode" == *-xdp ]] && XDP_OK=0
    skip all "$mode" "could not start: $(tail -1 "$tmp/rvsd.log" 2>/dev/null)"
    MODE_FAILED[$mode]=1
    mode_down "$mode" 2>/dev/null || true
    continue
  fi
  if [ -n "${BENCH_PAUSE:-}" ]; then log "pausing ${BENCH_PAUSE}s (lab $P)"; sleep "$BENCH_PAUSE"; fi
  # 1. packet rate (the real servers drop at their ingress)
  if want_wl udp && have trafgen && [ "$mode" != haproxy ]; then
    sink on
    cfg="$tmp/udp-vip.cfg"; [ "$mode" = fwd ] && cfg="$tmp/udp-rip.cfg"
    udp_runs udp "$mode" "$cfg"
    if [ "$mode" != ceiling ] && [ "$quick" = 0 ]; then udp_runs udp_fixed "$mode" "$cfg" -b "$FIXED_RATE"; fi
    [[ "$mode" == rvs-* ]] && log "rvsd after the UDP runs: $(rvs_diag)"
    sink off
  fi
  if [[ ",$only_workloads," == *",udpx,"* ]] && [ "$mode" != haproxy ] && [ -z "$XDPGEN_NO" ] && [ -z "$XDPGEN_ARGS" ]; then
    # some kernels refuse live-frames test runs even to root (EPERM): probe with one frame,
    # and fall back to the redirect-loop generator (`xdpgen --loop`)
    if ! XDPGEN_NO=$(ip netns exec "$NG" "$bin/rvs-lab" xdpgen -i "${P}c0" --dst-mac "$DMAC" \
        --dst 198.19.1.2 --src 198.18.0.10 --count 1 --seconds 1 2>&1 >/dev/null); then
      log "xdpgen: live frames refused ($(tail -1 <<<"$XDPGEN_NO")): trying --loop"
      if XDPGEN_NO=$(ip netns exec "$NG" "$bin/rvs-lab" xdpgen -i "${P}c0" --dst-mac "$DMAC" \
          --dst 198.19.1.2 --src 198.18.0.10 --count 1 --seconds 1 --loop 2>&1 >/dev/null); then
        XDPGEN_NO=""; XDPGEN_ARGS="--loop"
      else
        XDPGEN_NO=$(tail -1 <<<"$XDPGEN_NO")
        for m in "${MODES[@]}"; do skip udpx "$m" "rvs-lab xdpgen: $XDPGEN_NO"; done
      fi
    else
      XDPGEN_NO=""; XDPGEN_ARGS=" "
    fi
    echo "xdpgen=${XDPGEN_ARGS# }" >>"$META"
  fi
  if [[ ",$only_workloads," == *",udpx,"* ]] && [ "$mode" != haproxy ] && [ -z "$XDPGEN_NO" ]; then
    sink on
    # the generator's ceiling here: the director drops at its ingress's XDP hook, the
    # earliest point (nft netdev would first build a socket buffer for each frame)
    if [ "$mode" = ceiling ]; then ip -force -n "$ND" link set dev "${P}d0" xdpdrv obj "$tmp/xdp.o" sec xdp; fi
    udpx_sweep "$mode"
    if [ "$mode" = ceiling ]; then ip -n "$ND" link set dev "${P}d0" xdpdrv off; fi
    if [ "$mode" != ceiling ] && [ "$quick" = 0 ]; then
      # bursts of 64 as 16 frames per turn of the generator's loop: what reaches the
      # director together, as a NIC with interrupt moderation hands frames over
      udp_runs udpx_fixed "$mode" "" --rate "${FIXED_RATE%pps}" --burst 64 --seeds 16
    fi
    [[ "$mode" == rvs-* ]] && log "rvsd after the xdpgen runs: $(rvs_diag)"
    sink off
  fi
  if [ "$mode" != ceiling ] && [ "$mode" != tcbare ]; then
    # The previous director's connections left TIME_WAIT sockets on the real servers for
    # the same client address and ports (60 s): a new SYN that meets one is answered with
    # an ACK and retried a second later. Without UDP runs in between (they interleave now)
    # that halved some directors' connection rates; every director starts clean instead.
    for n in "$NG" "$ND" "$P-rs1" "$P-rs2" "$P-rs3"; do nsx "$n" ss -K -tan state time-wait >/dev/null 2>&1 || true; done
    url="http://$VIP:80/"; lua=""; host="$VIP"
    if [ "$mode" = fwd ]; then url="http://198.19.1.2:80/"; lua="$tmp/rips.lua"; host=198.19.1.2; fi
    want_wl conn && conn_runs "$mode" "$url" "$lua"
    if want_wl lat; then
      [ "$mode" = fwd ] && lat_runs direct 198.18.1.2
      lat_runs "$mode" "$host"
    fi
    if want_wl bulk && [ "$mode" = fwd ]; then bulk_runs direct 198.18.1.2; fi
    if want_wl bulk && [[ "$mode" =~ ^(fwd|nft|haproxy|rvs-nat-.*)$ ]]; then bulk_runs "$mode" "$host"; fi
  fi
  if [ "$mode" = nft ]; then
    log "conntrack entries after nft runs: $(nsx "$ND" cat /proc/sys/net/netfilter/nf_conntrack_count 2>/dev/null)"
  fi
  mode_down "$mode"
done
done
unset ONLY_RUN

# ------------------------------------------------------------------ scale
if want_wl scale && { [ -z "$only_modes" ] || want_mode scale; }; then
  if have trafgen; then
    log "== scale: 1,000,000 connections in rvsd (DR, AF_PACKET, SYNs from 17 addresses x 62,500 ports)"
    mode_up rvs-dr-afp
    sink on
    pid=$(rvsd_pid)
    rss0=$(vmrss_kib "$pid")
    cat >"$tmp/syn.cfg" <<EOF
{ eth(da=$DMAC), ipv4(sa=198.18.0.100, sa[3]=dinc(100, 116), da=$VIP, ttl=64),
  tcp(sp=dinc(1024, 63523), dp=80, syn, seq=12345, win=65535) }
EOF
    # 17 and 62,500 are coprime: the first 1,062,500 packets are all distinct 4-tuples.
    # Sent one sendto(2) at a time (trafgen -t, about 30-40 kpps): trafgen's rate limiter
    # sends bursts, and bursts overflow rvsd's receive ring (see the partial-load test).
    best_rate=0
    for pass in 1 2 3; do
      e0=$(metric rvs_connection_table_entries); ts=$(date +%s%N)
      ip netns exec "$NG" env LD_PRELOAD="$tmp/sndbuf.so" timeout 60 taskset -c "$GCPU" nice -n "$NICE" \
        trafgen -i "$tmp/syn.cfg" -o "${P}c0" -P 1 -Q -C -n 1000000 -t 1us >>"$tmp/trafgen.log" 2>&1 || true
      sleep 0.3
      e1=$(metric rvs_connection_table_entries); te=$(date +%s%N)
      rate=$(awk -v a="$e0" -v b="$e1" -v s="$ts" -v e="$te" 'BEGIN {printf "%.0f", (b-a)/((e-s)/1e9)}')
      [ "$pass" = 1 ] && best_rate=$rate
      log "pass $pass: $e1 connections in the table (+$((e1 - e0)))"
      [ "$e1" -ge 1000000 ] && break
    done
    sleep 1
    rss1=$(vmrss_kib "$pid"); entries=$(metric rvs_connection_table_entries); tbytes=$(metric rvs_connection_table_bytes)
    rec scale rvs-dr-afp 1 entries "$entries"
    rec scale rvs-dr-afp 1 rss_before_mib "$(awk -v k="$rss0" 'BEGIN {printf "%.1f", k/1024}')"
    rec scale rvs-dr-afp 1 rss_after_mib "$(awk -v k="$rss1" 'BEGIN {printf "%.1f", k/1024}')"
    rec scale rvs-dr-afp 1 rss_delta_mib "$(awk -v a="$rss0" -v b="$rss1" 'BEGIN {printf "%.1f", (b-a)/1024}')"
    rec scale rvs-dr-afp 1 rss_per_conn_bytes "$(awk -v a="$rss0" -v b="$rss1" -v n="$entries" 'BEGIN {printf "%.0f", (b-a)*1024/n}')"
    rec scale rvs-dr-afp 1 table_bytes_per_conn "$(awk -v b="$tbytes" -v n="$entries" 'BEGIN {printf "%.0f", b/n}')"
    rec scale rvs-dr-afp 1 syn_rate "$best_rate"
    log "1M: $entries entries, VmRSS $((rss0 / 1024)) -> $((rss1 / 1024)) MiB, table $((tbytes / 1048576)) MiB"
    # packet rate with the full table: the UDP flows are looked up among 1M entries
    if want_wl udp || [ -z "$only_workloads" ] || want_wl scale; then
      start_trafgen "$tmp/udp-vip.cfg"; sleep "$WARM"
      s0=$(sample); sleep "$T"; s1=$(sample); stop_bg "$TG"
      read -r _ fwd _ <<<"$(delta "$s0" "$s1")"
      rec scale rvs-dr-afp 1 pps_1m "$fwd"
      log "UDP with 1M connections: $fwd pps"
    fi
    sink off
    mode_down rvs-dr-afp
  else
    skip scale rvs-dr-afp "trafgen not installed"
  fi

  log "== scale: 10,000 services x 10 real servers via rvsadm -R"
  python3 - >"$tmp/services.rules" <<EOF
for i in range(10000):
    vip = f"198.18.{200 + i // 250}.{1 + i % 250}"
    print(f"-A -t {vip}:80 -s rr")
    for k in range(10):
        print(f"-a -t {vip}:80 -r 198.19.{1 + k % 3}.{2 + k}:80 -g -w 1")
EOF
  start_rvsd af-packet
  t0=$(date +%s%N); adm -R <"$tmp/services.rules"; t1=$(date +%s%N)
  adm -L -n >/dev/null; t2=$(date +%s%N)
  rec scale rvs-services 1 restore_s "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b-a)/1e9}')"
  rec scale rvs-services 1 list_s "$(awk -v a="$t1" -v b="$t2" 'BEGIN {printf "%.3f", (b-a)/1e9}')"
  rec scale rvs-services 1 rss_mib "$(awk -v k="$(vmrss_kib "$(rvsd_pid)")" 'BEGIN {printf "%.1f", k/1024}')"
  log "10k services: -R $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", (b-a)/1e9}') s, -L -n $(awk -v a="$t1" -v b="$t2" 'BEGIN {printf "%.2f", (b-a)/1e9}') s"
  # one more change with the big table loaded (each change rewrites rvsd's nftables table)
  t0=$(date +%s%N); adm -A -u "$VIP:9" -s rr; t1=$(date +%s%N)
  rec scale rvs-services 1 change_s "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b-a)/1e9}')"
  for k in 1 2 3; do adm -a -u "$VIP:9" -r "198.19.$k.2:9" -g; done
  log "one change with 10k services: $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", (b-a)/1e9}') s"
  if have trafgen; then
    # the packet-rate service among them (DR to the three real servers)
    rs_setup dr; sink on
    start_trafgen "$tmp/udp-vip.cfg"; sleep "$WARM"
    s0=$(sample); sleep "$T"; s1=$(sample)
    read -r _ fwd _ <<<"$(delta "$s0" "$s1")"
    rec scale rvs-services 1 pps "$fwd"
    # forwarding while one service is added: the change is applied inside the packet loop
    s0=$(sample); adm -A -t 198.18.250.1:80 -s rr; s1=$(sample); stop_bg "$TG"
    read -r secs fwd2 _ <<<"$(delta "$s0" "$s1")"
    rec scale rvs-services 1 pps_during_change "$fwd2"
    rec scale rvs-services 1 change_window_s "$secs"
    log "UDP with 10k services: $fwd pps; while adding one service ($secs s): $fwd2 pps"
    # the same with AF_XDP, whose steering is a BPF hash lookup instead of nftables rules
    stop_rvsd
    if start_rvsd af-xdp; then
      t0=$(date +%s%N); adm -R <"$tmp/services.rules"; t1=$(date +%s%N)
      rec scale rvs-services 1 restore_xdp_s "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b-a)/1e9}')"
      adm -A -u "$VIP:9" -s rr
      for k in 1 2 3; do adm -a -u "$VIP:9" -r "198.19.$k.2:9" -g; done
      start_trafgen "$tmp/udp-vip.cfg"; sleep "$WARM"
      s0=$(sample); sleep "$T"; s1=$(sample); stop_bg "$TG"
      read -r _ fwd _ <<<"$(delta "$s0" "$s1")"
      rec scale rvs-services 1 pps_xdp "$fwd"
      log "AF_XDP: -R $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", (b-a)/1e9}') s, UDP with 10k services: $fwd pps"
    fi
    sink off; rs_undo
  fi
  stop_rvsd
  ip netns exec "$ND" timeout "$BUDGET" "$bin/rvsd" --state-file "$tmp/state.json" --socket "$RVS_SOCK" >"$tmp/rvsd-state.log" 2>&1 &
  sp=$!; pids+=("$sp")
  for _ in $(seq 200); do adm -L -n >/dev/null 2>&1 && break; sleep 0.05; done
  t0=$(date +%s%N); adm -R <"$tmp/services.rules"; t1=$(date +%s%N)
  rec scale rvs-services 1 restore_state_s "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b-a)/1e9}')"
  stop_bg "$sp"
fi

echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$META"
log "== report"
report
log "done in $(( $(date +%s) - T0 )) s"
