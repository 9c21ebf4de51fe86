#!/usr/bin/env bash
# Installs what building Tessera needs on a Debian machine that has Rust:
# libclang (RocksDB's bindings are generated with bindgen) and a C++ compiler.
# protoc is not needed: the build uses the one from the protoc-bin-vendored crate.
set -euo pipefail

missing=()
dpkg -s libclang-dev >/dev/null 2>&1 || missing+=(libclang-dev)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v make >/dev/null 2>&1 || missing+=(make)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
command -v cargo >/dev/null 2>&1 || { echo "error: cargo not found; install Rust first (rustup)" >&2; exit 1; }
