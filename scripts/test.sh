#!/usr/bin/env bash
# The test command: installs what the tests need, checks formatting and lints
# (cargo fmt --check; cargo clippy --all-targets -D warnings with the bans in
# clippy.toml), then runs every test (unit, integration against the embedded
# broker, interop with mosquitto, GUI harness) with cargo-nextest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Keep build output outside the clone so later runs on this machine reuse it.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mqtt-workbench/target}"
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
# The Linux package: build, install with dpkg, run the installed binary, remove.
# (Before the tests, so the test runner's summary is the last thing printed.)
if [ "${MQTT_WORKBENCH_SKIP_DEB:-}" != 1 ]; then
  bash scripts/check-deb.sh
fi
cargo nextest run --no-fail-fast "$@"
