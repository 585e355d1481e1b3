#!/usr/bin/env bash
# The whole rvs test suite: formatting, lints, unit/property/integration tests, doc tests,
# benches compiled and run once. Installs what it needs on Debian 12 (run as root).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v nft >/dev/null 2>&1 || need_apt+=(nftables)
command -v ethtool >/dev/null 2>&1 || need_apt+=(ethtool)
# the AF_XDP steering program is compiled from C at build time
command -v clang >/dev/null 2>&1 || need_apt+=(clang)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "== installing ${need_apt[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "== not root: skipping install of ${need_apt[*]} (namespace tests will skip)"
  fi
fi

export CARGO_TERM_COLOR=never
# keep property tests modest on two cores; override with PROPTEST_CASES
export PROPTEST_CASES="${PROPTEST_CASES:-256}"
# benches run once in test mode; a smaller table keeps that quick
export RVS_BENCH_CONNS="${RVS_BENCH_CONNS:-20000}"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (deny warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked --all-targets
echo "== doc tests"
cargo test --workspace --locked --doc
echo "== docs build without warnings"
RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps --locked -q
echo "== the packet core depends on no OS crate"
if cargo tree -p rvs-core -e normal --prefix none | grep -E '^(libc|tokio|mio) '; then
  echo "rvs-core must not depend on libc/tokio/mio" >&2
  exit 1
fi
echo "== fuzz targets, ${FUZZ_SECONDS:-15} s each"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked -q
fi
( cd fuzz
  # cargo-fuzz needs unstable compiler flags; only a stable toolchain is guaranteed here
  export RUSTC_BOOTSTRAP=1
  cargo fuzz build -O
  for t in wire_parsers core_process api_decode; do
    mkdir -p "corpus/$t"
    cargo fuzz run -O "$t" -- -max_total_time="${FUZZ_SECONDS:-15}" -rss_limit_mb=2048 2>&1 | tail -n 2
  done )
echo "== all tests passed"
