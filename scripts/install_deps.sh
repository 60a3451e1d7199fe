#!/usr/bin/env bash
# Installs the Debian packages given as arguments when any is missing, and
# checks that cargo is available. Used by `make demo` and `make test`.
set -euo pipefail

missing=()
for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]})); then
    echo "Installing missing Debian packages: ${missing[*]}"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        echo "cargo is in ~/.cargo/bin; add it to PATH" >&2
    else
        echo "cargo (Rust) is required: install it with rustup or apt-get install cargo" >&2
    fi
    exit 1
fi
