#!/usr/bin/env bash
# `cargo make bindings`: the crate's kernel declarations against two independent header sets,
# mingw-w64's and Wine's DDK headers, translated by bindgen (src/main.rs says what is compared).
# Installs the Debian packages it needs when missing (as root; else says what to run):
# mingw-w64-common (ddk/*.h), libwine-dev (wine/windows/ddk/*.h), libclang-dev (for bindgen).
set -euo pipefail
cd "$(dirname "$0")/../.."

log() { echo "[bindings] $*" >&2; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
missing=()
for package in mingw-w64-common libwine-dev libclang-dev; do
    installed "$package" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        log "missing: sudo apt-get install -y --no-install-recommends ${missing[*]}"
        exit 2
    fi
    log "installing ${missing[*]} (apt-get)"
    cmd=(apt-get install -y --no-install-recommends "${missing[@]}")
    DEBIAN_FRONTEND=noninteractive "${cmd[@]}" >/dev/null ||
        { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive "${cmd[@]}" >/dev/null; }
fi

cargo run --locked --quiet --manifest-path tools/bindings-check/Cargo.toml \
    --target-dir target/bindings-check
