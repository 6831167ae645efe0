#!/usr/bin/env bash
# Writes vendor/patches.diff: every MQTT Workbench patch, against the sources
# published on crates.io (downloaded here into a temporary folder). Apply with
# `patch -p1` inside the unpacked crates' parent folder after an update.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for crate in rumqttc-0.25.1 rumqttd-0.20.0; do
  name=${crate%-*}
  curl -sSfL "https://static.crates.io/crates/$name/$crate.crate" | tar xz -C "$tmp"
done
{
  for crate in rumqttc-0.25.1 rumqttd-0.20.0; do
    name=${crate%-*}
    # The published crate's binary, examples and tests are left out on purpose.
    (cd "$tmp" && diff -ru "$crate/src" "$OLDPWD/vendor/$name/src" || true) |
      grep -v '^Only in ' |
      sed -E -e "s#$OLDPWD/##g" -e 's/^((---|\+\+\+) [^\t]+)\t.*/\1/' 
  done
} > vendor/patches.diff
echo "vendor/patches.diff: $(grep -c '^diff ' vendor/patches.diff) files"
