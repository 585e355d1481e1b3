#!/usr/bin/env bash
# The article's walkthrough against rvs, in a network namespace of its own.
#
#   scripts/demo.sh [--method dr|nat|tun]
#
# Builds rvsd and rvsadm, starts rvsd in a fresh namespace, and runs the article's ipvsadm
# commands through an `ipvsadm` symlink to rvsadm: add the virtual service, add three real
# servers, list, save with -S, clear, restore with -R, list again. Everything it creates is
# removed on exit. Addresses are from 198.18.0.0/15 (test range) instead of the article's.
set -euo pipefail
cd "$(dirname "$0")/.."

method=dr
while [ $# -gt 0 ]; do
  case "$1" in
    --method) method="${2:-}"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
case "$method" in
  dr) flag=-g ;; nat) flag=-m ;; tun) flag=-i ;;
  *) echo "--method must be dr, nat or tun" >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || { echo "run as root (network namespaces)" >&2; exit 1; }
command -v ip >/dev/null || { apt-get update -qq && apt-get install -y -qq iproute2 >/dev/null; }

echo "== building rvsd and rvsadm (release)"
cargo build --release --locked -q -p rvsd -p rvsadm
bin="$PWD/target/release"

ns="rvs-demo-$$"
tmp="$(mktemp -d)"
cleanup() {
  [ -n "${rvsd_pid:-}" ] && kill "$rvsd_pid" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

ip netns add "$ns"
ip -n "$ns" link set lo up
ln -s "$bin/rvsadm" "$tmp/ipvsadm"
export PATH="$tmp:$PATH"
run() { echo "# $*" >&2; ip netns exec "$ns" "$@"; }

ip netns exec "$ns" "$bin/rvsd" --state-file "$tmp/state.json" 2>"$tmp/rvsd.log" &
rvsd_pid=$!
for _ in $(seq 50); do
  ip netns exec "$ns" ipvsadm -L -n >/dev/null 2>&1 && break
  sleep 0.1
done

VIP=198.18.0.100
echo "== director: virtual service $VIP:80, round robin, method $method"
run ipvsadm -A -t $VIP:80 -s rr
for rs in 198.19.0.101 198.19.0.102 198.19.0.103; do
  run ipvsadm -a -t $VIP:80 -r $rs:80 $flag -w 1
done
run ipvsadm -L -n
echo "== save the rules (-S), clear (-C), restore (-R)"
run ipvsadm -S -n | tee "$tmp/rules"
run ipvsadm -C
run ipvsadm -L -n
ip netns exec "$ns" ipvsadm -R < "$tmp/rules"
run ipvsadm -L -n
echo "== the configuration survives a restart of rvsd (kill -9)"
kill -9 "$rvsd_pid"; wait "$rvsd_pid" 2>/dev/null || true
ip netns exec "$ns" "$bin/rvsd" --state-file "$tmp/state.json" 2>>"$tmp/rvsd.log" &
rvsd_pid=$!
for _ in $(seq 50); do
  ip netns exec "$ns" ipvsadm -L -n >/dev/null 2>&1 && break
  sleep 0.1
done
run ipvsadm -L -n --stats
run ipvsadm -L -n --timeout
echo
echo "Packet forwarding on real interfaces (AF_PACKET/AF_XDP) is not wired into rvsd yet;"
echo "the NAT/DR/TUN rewrites are tested in memory (cargo test -p rvs-core)."
