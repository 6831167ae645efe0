#!/usr/bin/env bash
# Installs what MQTT Workbench needs on a fresh Debian machine, and nothing
# already there: the libraries the window loads at run time, mosquitto-clients
# and paho-mqtt (PyPI) for the interop tests, Debian's mosquitto broker (the
# reference the conformance suite is checked against; never started as a
# service), rustfmt and clippy for the lint
# checks, and cargo-nextest for the test runner.
set -euo pipefail

packages=(
  mosquitto-clients                       # interop tests (mosquitto_sub / mosquitto_pub)
  mosquitto                               # conformance reference (tests/conformance.rs starts its own)
  chromium                                # the browser test (tests/interop_ws.rs drives it with playwright-core)
  sqlite3                                 # a third-party reader of the capture database (tests/capture_db.rs)
  libxkbcommon-x11-0 libgl1 libegl1       # the window: loaded at run time by winit/glutin
  libgl1-mesa-dri libfontconfig1 libx11-xcb1
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The paho-mqtt Python client (PyPI) for the interop tests.
if ! python3 -c "import paho.mqtt" >/dev/null 2>&1; then
  echo "setup: installing paho-mqtt"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "paho-mqtt==2.2.0"
fi

# MQTT.js, playwright-core and Aedes (npm, pinned in tests/node/package-lock.json)
# for the WebSocket interop and browser tests; the official AsyncAPI parser
# (@asyncapi/parser) for tests/contract.rs; Eclipse Tahu's Sparkplug B payload
# library (sparkplug-payload) for tests/sparkplug.rs. SCARF_ANALYTICS=false: one of the
# parser's dependencies would otherwise report the install over the network.
node_dir="$(cd "$(dirname "$0")/.." && pwd)/tests/node"
if [ ! -f "$node_dir/node_modules/.package-lock.json" ] \
  || [ "$node_dir/package-lock.json" -nt "$node_dir/node_modules/.package-lock.json" ]; then
  echo "setup: installing MQTT.js, playwright-core, Aedes, @asyncapi/parser and Tahu's sparkplug-payload (npm ci in tests/node)"
  (cd "$node_dir" && SCARF_ANALYTICS=false npm ci --silent --no-audit --no-fund)
fi

# The test command checks formatting and lints.
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    echo "setup: installing $component"
    rustup component add "$component"
  fi
done

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
