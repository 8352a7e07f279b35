#!/usr/bin/env bash
# The host-model test suite on a Windows target (`cargo make test-wine-gnu`): built for
# x86_64-pc-windows-gnu with Debian's mingw-w64 as the linker and run under Wine 8 as cargo's
# runner. It shows that `host-model` selects the host model on Windows targets too, as on a
# Windows development host, and that the tests pass there.
#
# Wine 8.0 lacks bcryptprimitives.dll, from which Rust's std (1.78+) imports ProcessPrng, so
# every Rust binary fails to load (status c0000135) until processprng.c, built here, is in the
# prefix's system32. The prefix (target/wine-gnu-prefix) is separate from tools/emulate's.
#
# Not run here: tests/compile_fail.rs (trybuild runs cargo and rustc, which do not run under
# Wine; the compile-fail cases do not depend on the target). Everything else runs: the
# library's unit tests, every other file in tests/, and the doctests.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo="$PWD"
target=x86_64-pc-windows-gnu
prefix="$repo/target/wine-gnu-prefix"
shim_dir="$repo/target/wine-gnu"
excluded=(compile_fail)

log() { echo "[test-wine-gnu] $*" >&2; }

# Debian packages, installed when missing (as root; else say what to run).
apt_install() { # package
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        log "$1 is missing: sudo apt-get install -y --no-install-recommends $1"
        exit 2
    fi
    log "installing $1 (apt-get)"
    local cmd=(apt-get install -y --no-install-recommends "$1")
    DEBIAN_FRONTEND=noninteractive "${cmd[@]}" >/dev/null ||
        { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive "${cmd[@]}" >/dev/null; }
}
command -v x86_64-w64-mingw32-gcc >/dev/null || apt_install gcc-mingw-w64-x86-64
wine_files() { dpkg -L wine64 2>/dev/null || true; }
[ -n "$(wine_files)" ] || apt_install wine64
loader="$(wine_files | grep -E '^/usr/lib.*/wine64$' | head -n 1)"
server="$(wine_files | grep -E '/wineserver(64)?$' | head -n 1)"
[ -x "$loader" ] && [ -x "$server" ] ||
    { log "wine64 is installed but its loader/wineserver are not where dpkg -L says"; exit 2; }

export WINEPREFIX="$prefix" WINEARCH=win64 WINEDEBUG=-all,err+module
export WINEDLLOVERRIDES="mscoree,mshtml,winemenubuilder.exe="
unset DISPLAY WAYLAND_DISPLAY

if [ ! -f "$prefix/system.reg" ]; then
    log "creating the Wine prefix $prefix (once: ~10 s, ~700 MB)"
    rm -rf "$prefix"
    mkdir -p "$(dirname "$prefix")"
    "$loader" wineboot -i </dev/null >/dev/null 2>&1 || true
    "$server" -w
    [ -f "$prefix/system.reg" ] || { log "wineboot -i did not create $prefix"; exit 1; }
fi

mkdir -p "$shim_dir"
shim="$shim_dir/bcryptprimitives.dll"
if [ ! -f "$shim" ] || [ tools/wine-gnu/processprng.c -nt "$shim" ]; then
    x86_64-w64-mingw32-gcc -shared -O2 -Wall -Wextra -Werror -s -o "$shim" \
        tools/wine-gnu/processprng.c -ladvapi32
fi
system32="$prefix/drive_c/windows/system32"
cmp -s "$shim" "$system32/bcryptprimitives.dll" || cp "$shim" "$system32/bcryptprimitives.dll"

export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER="$loader"
features=(--no-default-features --features host-model)

selection=(--lib)
for file in tests/*.rs; do
    name="$(basename "$file" .rs)"
    [[ " ${excluded[*]} " == *" $name "* ]] || selection+=(--test "$name")
done
log "tests (${excluded[*]} excluded) and doctests for $target, run by $loader"
status=0
cargo test --locked --target "$target" "${features[@]}" "${selection[@]}" || status=$?
[ "$status" = 0 ] && { cargo test --locked --target "$target" "${features[@]}" --doc || status=$?; }
"$server" -w # the prefix's wineserver ends a few seconds after its last process
exit "$status"
