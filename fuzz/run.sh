#!/usr/bin/env bash
# Runs cargo-fuzz targets on the stable toolchain.
#
#   fuzz/run.sh [TARGET|all] [SECONDS]      (defaults: all, 60)
#
# Each target runs for SECONDS. Its committed seed corpus fuzz/corpus/TARGET/ (a few dozen
# files: hand-written seed-*, regression-* inputs and small minimized finds) is read, never
# written; new inputs go to the working corpus fuzz/work/TARGET/ (git-ignored, grows across runs;
# FUZZ_WORK=DIR puts it in DIR/TARGET/ instead, as fuzz/ci.sh does). With FUZZ_SAVE=1
# the committed corpus is refreshed afterwards: both are merged with -merge=1 (edge coverage
# only) and the 40 smallest results are kept next to the seed-*/regression-* files.
# Exits non-zero if any target crashes, printing the artifact (crashing input) path, the input
# itself in Base64 (so a CI log alone can reproduce it) and the panic.
#
# Environment: RUSTC_BOOTSTRAP=1 lets stable rustc accept the nightly-only flags cargo-fuzz
# passes (-Zsanitizer=address, ...). CARGO_TARGET_DIR defaults to /work/target-fuzz when unset.
# FUZZ_JOBS (default 1) sets libFuzzer's -fork=N; FUZZ_SANITIZER (default address) is passed to
# `cargo fuzz --sanitizer` (`none` is ~2x faster, still catches panics).
set -euo pipefail

cd "$(dirname "$0")"
TARGETS=(response_decoder multipart_roundtrip options_json h1_exchange whole_upload proxy_replies)
which="${1:-all}"
secs="${2:-60}"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-fuzz}"
sanitizer="${FUZZ_SANITIZER:-address}"
jobs="${FUZZ_JOBS:-1}"
work="${FUZZ_WORK:-work}"

if [ "$which" = all ]; then
    run=("${TARGETS[@]}")
else
    run=("$which")
fi

command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz missing: see fuzz/ci.sh" >&2; exit 2; }

failed=0
for t in "${run[@]}"; do
    mkdir -p "corpus/$t" "$work/$t" "artifacts/$t"
    cargo fuzz build --sanitizer "$sanitizer" "$t"
    echo "=== $t: ${secs}s"
    log="artifacts/$t/last-run.log"
    fork=()
    [ "$jobs" -gt 1 ] && fork=(-fork="$jobs")
    set +e
    # The first directory receives new inputs: the working corpus, never the committed one.
    cargo fuzz run --sanitizer "$sanitizer" "$t" "$work/$t" "corpus/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="artifacts/$t/" \
        "${fork[@]}" 2>&1 | tee "$log" | grep -E '^(#[0-9]+[[:space:]]+(DONE|INITED)|==|stat::|SUMMARY|thread .* panicked|Test unit written)' 
    rc=${PIPESTATUS[0]}
    set -e
    if [ "$rc" -ne 0 ]; then
        failed=1
        echo "!!! $t failed (exit $rc); log: fuzz/$log" >&2
        for a in $(grep -h 'Test unit written to' "$log" | sed 's/.*written to //'); do
            echo "!!! crashing input: fuzz/$a" >&2
            echo "!!!   reproduce: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run $t $a)" >&2
            if [ -f "$a" ] && [ "$(stat -c %s "$a")" -le 4096 ]; then
                echo "!!!   base64: $(base64 -w0 "$a")" >&2
            fi
        done
        grep -h -A3 'panicked at' "$log" | head -8 >&2 || true
        continue
    fi
    [ "${FUZZ_SAVE:-0}" = 1 ] || continue
    tmp="$(mktemp -d)"
    cargo fuzz run --sanitizer "$sanitizer" "$t" "$tmp" "$work/$t" "corpus/$t" -- \
        -merge=1 -use_counters=0 >/dev/null 2>&1
    find "corpus/$t" -type f ! -name 'seed-*' ! -name 'regression-*' -delete
    # (`|| true`: head closing the pipe early makes ls fail under pipefail.)
    smallest="$(ls -S -r "$tmp" | head -n 40 || true)"
    for f in $smallest; do cp "$tmp/$f" "corpus/$t/"; done
    rm -rf "$tmp"
    echo "=== $t: committed corpus now $(ls "corpus/$t" | wc -l) files"
done
exit "$failed"
