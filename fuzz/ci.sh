#!/usr/bin/env bash
# Bounded, deterministic fuzz run for CI (docs/fuzzing.md): installs cargo-fuzz if it is missing,
# builds parse_render on the stable toolchain (no sanitizer, dev profile: the quickest build),
# seeds a fresh corpus from the fixtures and runs a fixed number of inputs from a fixed seed, so a
# failure is reproduced by running this script again. FUZZ_RUNS overrides the count (200 000,
# ~40 s); extra arguments go to libFuzzer.
set -euo pipefail
cd "$(dirname "$0")"

want="0.13.2"
if [[ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $want" ]]; then
  start=$SECONDS
  cargo install --locked --quiet "cargo-fuzz@$want"
  echo "installed cargo-fuzz $want in $((SECONDS - start)) s"
fi

corpus="$(mktemp -d)"
trap 'rm -rf "$corpus"' EXIT
bash seed-corpus.sh "$corpus"

mkdir -p artifacts
log=artifacts/ci-parse_render.log
start=$SECONDS
if cargo fuzz run -s none --dev parse_render "$corpus" -- \
  -runs="${FUZZ_RUNS:-200000}" -seed=1 -max_total_time=300 -verbosity=0 -print_final_stats=1 \
  -dict=parse_render.dict "$@" >"$log" 2>&1; then
  grep -E "^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)" "$log" || true
  echo "fuzz: no failure in $((SECONDS - start)) s (build included; log: fuzz/$log)"
else
  tail -n 80 "$log"
  echo "fuzz: FAILED after $((SECONDS - start)) s; the input is in fuzz/artifacts/parse_render/" \
    "(replay: cd fuzz && cargo fuzz run -s none --dev parse_render artifacts/parse_render/crash-…)"
  exit 1
fi
