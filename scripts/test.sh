#!/usr/bin/env bash
# The project's test command: installs the pinned Prism mock (for the Cliq and GitLab schema
# tests) if it is missing, then runs every test (unit and integration; there are no doc tests)
# and ends with one summary line, "tests: N passed, M failed". Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-prism.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --locked --lib --bins --tests "$@" 2>&1 | tee "$log" || status=$?
passed=$(sed -n 's/^test result: .* \([0-9][0-9]*\) passed; \([0-9][0-9]*\) failed.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
failed=$(sed -n 's/^test result: .* \([0-9][0-9]*\) passed; \([0-9][0-9]*\) failed.*/\2/p' "$log" | awk '{s+=$1} END {print s+0}')
echo "tests: $passed passed, $failed failed"
exit "$status"
