#!/usr/bin/env bash
# CI entry point for the fuzz targets: installs cargo-fuzz (pinned) if missing, then runs every
# target for FUZZ_SECONDS (default 60) each via fuzz/run.sh. Non-zero exit on any crash.
# Needs only stable Rust (run.sh sets RUSTC_BOOTSTRAP=1) and the crates registry.
set -euo pipefail
cd "$(dirname "$0")"
CARGO_FUZZ_VERSION=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    cargo install --locked "cargo-fuzz@$CARGO_FUZZ_VERSION"
fi
start=$(date +%s)
./run.sh all "${FUZZ_SECONDS:-60}"
echo "fuzz/ci.sh: all targets clean in $(( $(date +%s) - start ))s (after install)"
