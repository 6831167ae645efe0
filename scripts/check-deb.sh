#!/usr/bin/env bash
# Builds the .deb, installs it with dpkg on this machine, runs the installed
# binary (--version and a 5-second headless run of an installed scenario),
# checks the desktop entry and icons, then removes the package.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
deb=$(bash scripts/build-deb.sh)
if dpkg-query -W mqtt-workbench >/dev/null 2>&1; then $SUDO dpkg -r mqtt-workbench >/dev/null; fi
# apt resolves the declared Depends; fall back to dpkg when they are all present.
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$deb" >/dev/null 2>&1 || $SUDO dpkg -i "$deb"
cleanup() { $SUDO dpkg -r mqtt-workbench >/dev/null 2>&1 || true; }
trap cleanup EXIT

fail() { echo "check-deb: FAIL: $*" >&2; exit 1; }
[ "$(command -v mqtt-workbench)" = /usr/bin/mqtt-workbench ] || fail "mqtt-workbench is not /usr/bin/mqtt-workbench"
version=$(/usr/bin/mqtt-workbench --version)
expected=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
case "$version" in "mqtt-workbench $expected"*) ;; *) fail "--version printed '$version', expected $expected" ;; esac
for f in /usr/share/mqtt-workbench/scenarios/temperature.ron /usr/share/applications/mqtt-workbench.desktop \
         /usr/share/icons/hicolor/256x256/apps/mqtt-workbench.png; do
  [ -f "$f" ] || fail "missing $f"
done
grep -q '^Exec=mqtt-workbench' /usr/share/applications/mqtt-workbench.desktop || fail "desktop entry has no Exec"
deps=$(dpkg-query -W -f='${Depends}' mqtt-workbench)
for lib in libxkbcommon-x11-0 libgl1 libegl1 libgl1-mesa-dri libfontconfig1; do
  case "$deps" in *"$lib"*) ;; *) fail "Depends lacks $lib (the window loads it at run time): $deps" ;; esac
done
# Run from / so only the installed scenario folder can be found.
summary=$(cd / && timeout 60 mqtt-workbench run /usr/share/mqtt-workbench/scenarios/temperature.ron --duration 5s --port 0 2>/dev/null)
echo "$summary" | grep -q "temp-sensor" || fail "headless run summary lacks temp-sensor: $summary"
echo "$summary" | grep -Eq "^  temp +[1-9]" || fail "no messages on temp: $summary"
size=$(du -h "$deb" | cut -f1)
echo "check-deb: ok: installed, --version '$version', 5 s headless run of the installed scenario, removed ($size)"
