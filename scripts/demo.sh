#!/usr/bin/env bash
# The article's LVS walkthrough, for real, in network namespaces on this machine.
#
#   scripts/demo.sh [--method dr|nat|tun]     (as root; default dr)
#
# Builds rvs, then brings up a lab: one client, one director running rvsd, three real
# servers each running a small web server that answers with its name; for DR and TUN the
# real servers are prepared with `rvs-rs setup` (VIP on lo, ARP sysctls, decapsulation). On the director it
# runs the article's ipvsadm commands (through an `ipvsadm` symlink to rvsadm), then the
# client fetches the VIP six times: the answers rotate over the three servers. It shows
# `ipvsadm -L -n --stats`, saves the rules with -S, clears and restores them with -R, and
# tears everything down on exit (also on Ctrl-C or failure). Addresses are from the test
# range 198.18.0.0/15 instead of the article's.
set -euo pipefail
cd "$(dirname "$0")/.."

method=dr
while [ $# -gt 0 ]; do
  case "$1" in
    --method) method="${2:-}"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
case "$method" in
  dr) flag=-g ;; nat) flag=-m ;; tun) flag=-i ;;
  *) echo "--method must be dr, nat or tun" >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || { echo "run as root (network namespaces)" >&2; exit 1; }
missing=()
command -v ip >/dev/null || missing+=(iproute2)
command -v nft >/dev/null || missing+=(nftables)
command -v clang >/dev/null || missing+=(clang)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
  echo "cargo is needed to build rvs (https://rustup.rs is not reachable here; use the" >&2
  echo "distribution's rustc/cargo or a machine with Rust installed)" >&2
  exit 1
fi

echo "== building rvs (release)"
pkgs=(-p rvsd -p rvsadm -p rvs-lab -p rvs-realserver)
cargo build --release --locked -q "${pkgs[@]}"
bin="$PWD/target/release"

p="rvsdemo$$"
tmp="$(mktemp -d)"
nss=()
pids=()
cleanup() {
  set +e
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  for n in "${nss[@]}"; do ip netns del "$n" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

mkns() { ip netns add "$1"; nss+=("$1"); ip -n "$1" link set lo up; }
in_ns() { local n="$1"; shift; ip netns exec "$n" "$@"; }

VIP=198.18.100.100
C="$p-client"; D="$p-director"
mkns "$C"; mkns "$D"
# client LAN 198.18.0.0/24: a bridge in the client namespace (the "switch")
ip -n "$C" link add br0 type bridge; ip -n "$C" link set br0 up
ip -n "$C" addr add 198.18.0.2/24 dev br0
ip -n "$C" route add $VIP/32 via 198.18.0.1
ip -n "$C" link add c-dir type veth peer name d0 netns "$D"
ip -n "$C" link set c-dir master br0; ip -n "$C" link set c-dir up
ip -n "$D" link set d0 up; ip -n "$D" addr add 198.18.0.1/24 dev d0
# real-server LAN 198.19.0.0/24: a bridge in the director namespace
ip -n "$D" link add br1 type bridge; ip -n "$D" link set br1 up
ip -n "$D" addr add 198.19.0.1/24 dev br1
ip -n "$D" addr add $VIP/32 dev lo
in_ns "$D" sysctl -qw net.ipv4.ip_forward=1
for k in 1 2 3; do
  R="$p-rs$k"; mkns "$R"
  ip -n "$D" link add d-rs$k type veth peer name r0 netns "$R"
  ip -n "$D" link set d-rs$k master br1; ip -n "$D" link set d-rs$k up
  ip -n "$R" link set r0 up; ip -n "$R" addr add 198.19.0.1$k/24 dev r0
  case "$method" in
    nat) ip -n "$R" route add default via 198.19.0.1 ;;
    dr|tun)
      # a leg on the client LAN for the direct answer, and the article's RS settings
      ip -n "$C" link add c-rs$k type veth peer name r1 netns "$R"
      ip -n "$C" link set c-rs$k master br0; ip -n "$C" link set c-rs$k up
      ip -n "$R" link set r1 up; ip -n "$R" addr add 198.18.0.1$k/24 dev r1
      if [ "$method" = dr ]; then
        # VIP on lo, arp_ignore=1, arp_announce=2, rp_filter relaxed: one command
        in_ns "$R" "$bin/rvs-rs" --state "$tmp/rs$k.json" setup --vip $VIP >/dev/null
      else
        ip netns exec "$R" "$bin/rvs-rs" --state "$tmp/rs$k.json" setup --vip $VIP --tunnel ipip \
          --foreground >"$tmp/rs$k-decap.log" 2>&1 &
        pids+=($!)
      fi ;;
  esac
  ip netns exec "$R" "$bin/rvs-lab" serve --name "real-server-$k (198.19.0.1$k)" --port 80 --seconds 300 &
  pids+=($!)
done

ln -s "$bin/rvsadm" "$tmp/ipvsadm"
export PATH="$tmp:$PATH" RVS_SOCKET="@rvsd-$p"
run() { echo "# $*" >&2; in_ns "$D" "$@"; }
ip netns exec "$D" "$bin/rvsd" -i d0 -i br1 --state-file "$tmp/state.json" >/dev/null 2>"$tmp/rvsd.log" &
pids+=($!)
for _ in $(seq 100); do in_ns "$D" ipvsadm -L -n >/dev/null 2>&1 && break; sleep 0.05; done

echo "== director: virtual service $VIP:80, round robin, method $method"
run ipvsadm -A -t $VIP:80 -s rr
for k in 1 2 3; do run ipvsadm -a -t $VIP:80 -r 198.19.0.1$k:80 $flag -w 1; done
run ipvsadm -L -n
sleep 0.5
echo "== client: six requests to http://$VIP/"
in_ns "$C" "$bin/rvs-lab" get "http://$VIP:80/" --count 6
run ipvsadm -L -n --stats
run ipvsadm -L -c -n
echo "== save (-S), clear (-C), restore (-R), and the service answers again"
run ipvsadm -S -n > "$tmp/rules"
cat "$tmp/rules"
run ipvsadm -C
in_ns "$D" ipvsadm -R < "$tmp/rules"
in_ns "$C" "$bin/rvs-lab" get "http://$VIP:80/" --count 3
echo "== done; tearing the lab down"
