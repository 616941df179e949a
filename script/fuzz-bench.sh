#!/usr/bin/env bash
# Speed of the Rust fuzzer against forge's invariant testing, on comparable campaigns: the same
# protocol invariants checked after every call, the same number of sequences (runs) and calls per
# sequence (depth). Prints calls per second for both. See docs/fuzzing.md.
#
#   script/fuzz-bench.sh                 # 100 runs of depth 100 each
#   RUNS=200 DEPTH=200 SEED=7 script/fuzz-bench.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

runs="${RUNS:-100}"
depth="${DEPTH:-100}"
seed="${SEED:-1}"
forge=node_modules/@foundry-rs/forge-linux-amd64/bin/forge

bash script/npm-deps.sh
cargo build --release --locked -p insitu-tests --bin fuzz
# Compile the Solidity test first, so that neither figure includes compilation.
"$forge" build >/dev/null

ours="$(target/release/fuzz --seed "$seed" --runs "$runs" --depth "$depth" --json | tail -n 1)"
ours_calls="$(sed -E 's/.*"calls":([0-9]+).*/\1/' <<<"$ours")"
ours_rate="$(sed -E 's/.*"calls_per_second":([0-9.]+).*/\1/' <<<"$ours")"
ours_seconds="$(sed -E 's/.*"elapsed_seconds":([0-9.]+).*/\1/' <<<"$ours")"

forge_out="$(FOUNDRY_INVARIANT_RUNS="$runs" FOUNDRY_INVARIANT_DEPTH="$depth" \
    "$forge" test --match-path test/forge/InsituInvariant.t.sol)"
forge_calls="$(grep -oE 'calls: [0-9]+' <<<"$forge_out" | head -n 1 | grep -oE '[0-9]+')"
# "Suite result: ok. ... finished in 12.38s (...)" or "... in 598.44ms (...)".
forge_time="$(grep -oE 'Suite result: .* finished in [0-9.]+(ms|s)' <<<"$forge_out" | grep -oE '[0-9.]+(ms|s)$')"
forge_seconds="$(awk -v t="$forge_time" 'BEGIN { if (t ~ /ms$/) { sub(/ms$/, "", t); print t / 1000 } else { sub(/s$/, "", t); print t } }')"
forge_rate="$(awk -v c="$forge_calls" -v s="$forge_seconds" 'BEGIN { printf "%.1f", c / s }')"

echo
echo "campaign: $runs runs x depth $depth, seed $seed"
printf '%-34s %10s %10s %12s\n' "" "calls" "seconds" "calls/s"
printf '%-34s %10s %10s %12s\n' "insitu fuzz (Rust, revm)" "$ours_calls" "$ours_seconds" "$ours_rate"
printf '%-34s %10s %10s %12s\n' "forge invariant test (forge 1.7)" "$forge_calls" "$forge_seconds" "$forge_rate"
awk -v a="$ours_rate" -v b="$forge_rate" 'BEGIN { printf "ratio: %.1fx\n", a / b }'
