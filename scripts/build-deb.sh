#!/usr/bin/env bash
# Builds the Linux .deb with cargo-deb (installed on first use) and prints its path.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mqtt-workbench/target}"
if ! cargo deb --version >/dev/null 2>&1; then
  echo "build-deb: installing cargo-deb" >&2
  cargo install --locked cargo-deb@^3 >&2
fi
start=$(date +%s)
cargo build --release --locked >&2
out="$CARGO_TARGET_DIR/debian"
mkdir -p "$out"
deb=$(cargo deb --no-build --locked --output "$out" 2>&2 | tail -n1)
echo "build-deb: $(du -h "$deb" | cut -f1) in $(( $(date +%s) - start ))s: $deb" >&2
echo "$deb"
