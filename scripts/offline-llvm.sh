#!/usr/bin/env bash
# Lets `cargo build --features cuda` build without downloading anything beyond crates.io.
#
# Why: burn 0.22's CUDA backend pulls in cubecl-cuda 0.11 -> cubecl-llvm (the NVPTX code generator), whose
# build dependency `tracel-llvm-bundler 23.1.0-4` downloads an LLVM archive from GitHub in its build
# script. No feature combination of burn 0.22 / cubecl-cuda 0.11 avoids it. The build script skips the
# download when its install folder already holds the marker file `.tracel-llvm-installed`; cubecl-llvm
# then asks `bin/llvm-config --link-static` in that folder how to compile and link against LLVM.
#
# What this does: installs Debian's LLVM 22 development packages (from the distribution's mirror, which is
# reachable where GitHub is not), and puts in that folder an `llvm-config` wrapper around Debian's, plus
# the marker. The wrapper rewrites the full paths Debian's llvm-config prints for system libraries (e.g.
# `/usr/lib/x86_64-linux-gnu/libz3.so`) into `-l` flags (`-lz3`), the form the bundler's link step parses.
#
# Caveat: the bundle is LLVM 23 and this is LLVM 22. It compiles and links; run a real kernel on a GPU
# (`scripts/gpu-check.sh`) before trusting a binary built this way.
#
# Usage: scripts/offline-llvm.sh            (then: cargo build --release --features cuda)
#        LLVM_VERSION=22 scripts/offline-llvm.sh
set -euo pipefail

llvm_version="${LLVM_VERSION:-22}"
bundle="tracel-llvm-23.1.0-4" # tracel-llvm-bundler's TRACEL_LLVM_FULL_VERSION, pinned by Cargo.lock
data_home="${XDG_DATA_HOME:-$HOME/.local/share}"
prefix="$data_home/tracel/$bundle"
system_config="/usr/lib/llvm-$llvm_version/bin/llvm-config"

packages=("llvm-$llvm_version-dev" "libpolly-$llvm_version-dev" libzstd-dev g++)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || {
            echo "error: need root (or sudo) to install ${missing[*]}" >&2
            exit 1
        }
        sudo="sudo"
    fi
    echo "installing ${missing[*]} (Debian packages)" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ ! -x "$system_config" ]; then
    echo "error: $system_config is missing after installing llvm-$llvm_version-dev" >&2
    exit 1
fi

# The bundler's build script reruns (and everything above it rebuilds) when the marker's time changes, so
# the wrapper and the marker are written only when they differ or are missing.
mkdir -p "$prefix/bin"
wrapper="$prefix/bin/llvm-config"
cat >"$wrapper.partial" <<EOF
#!/bin/sh
# Written by storytool's scripts/offline-llvm.sh: Debian's LLVM $llvm_version llvm-config, with full paths
# of system libraries turned into -l flags.
"$system_config" "\$@" | sed -E 's#(^| )/[^ ]*/lib([A-Za-z0-9_+.-]+)\\.(so|a)(\\.[0-9.]+)?( |\$)#\\1-l\\2\\5#g; s#(^| )/[^ ]*/lib([A-Za-z0-9_+.-]+)\\.(so|a)(\\.[0-9.]+)?( |\$)#\\1-l\\2\\5#g'
EOF
chmod +x "$wrapper.partial"
if cmp -s "$wrapper.partial" "$wrapper"; then
    rm "$wrapper.partial"
else
    mv "$wrapper.partial" "$wrapper"
fi
[ -e "$prefix/.tracel-llvm-installed" ] || touch "$prefix/.tracel-llvm-installed"

# The wrapper must answer what cubecl-llvm's build script asks.
for argument in --version --libdir --cxxflags --system-libs --libs; do
    "$wrapper" --link-static "$argument" >/dev/null || {
        echo "error: \`$wrapper --link-static $argument\` failed" >&2
        exit 1
    }
done
echo "LLVM $("$wrapper" --version) stands in for $bundle in $prefix" >&2
echo "next: cargo build --release --features cuda" >&2
