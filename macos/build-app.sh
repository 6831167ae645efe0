#!/usr/bin/env bash
# Assembles "MQTT Workbench.app" (and a .dmg where hdiutil exists).
#
#   macos/build-app.sh [OUT_DIR]        (default: dist/)
#
# MQTT_WORKBENCH_BIN names the binary to bundle; by default it builds the
# release binary with cargo. On Linux this checks the bundle layout only:
# the binary inside is a Linux binary.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/dist}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)"
bin="${MQTT_WORKBENCH_BIN:-}"
if [ -z "$bin" ]; then
  target="${CARGO_TARGET_DIR:-$root/target}"
  (cd "$root" && cargo build --release)
  bin="$target/release/mqtt-workbench"
fi
[ -x "$bin" ] || { echo "build-app: no executable at $bin" >&2; exit 1; }

app="$out/MQTT Workbench.app"
rm -rf "$app"
mkdir -p "$app/Contents/MacOS" "$app/Contents/Resources/scenarios"
cp "$bin" "$app/Contents/MacOS/mqtt-workbench"
chmod 755 "$app/Contents/MacOS/mqtt-workbench"
sed "s/@VERSION@/$version/g" "$root/macos/Info.plist" > "$app/Contents/Info.plist"
cp "$root/macos/AppIcon.icns" "$app/Contents/Resources/AppIcon.icns"
cp "$root"/scenarios/*.ron "$root"/scenarios/*.js "$root"/scenarios/*.yaml "$app/Contents/Resources/scenarios/"
printf 'APPL????' > "$app/Contents/PkgInfo"
echo "build-app: $app (version $version)"

if command -v hdiutil >/dev/null 2>&1; then
  dmg="$out/MQTT-Workbench-$version.dmg"
  rm -f "$dmg"
  hdiutil create -volname "MQTT Workbench" -srcfolder "$app" -ov -format UDZO "$dmg"
  echo "build-app: $dmg"
fi
