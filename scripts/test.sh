#!/usr/bin/env bash
# The project's test command: installs the pinned Prism mock (for the Cliq and GitLab schema
# tests), Debian's chromium and chromium-driver (for the preview page's browser test) and
# Debian's postgresql (for the PostgreSQL store's tests, on a throw-away cluster) and the pinned
# matrix-synapse in .tools/synapse (for the Matrix tests, on a throw-away homeserver) if they are
# missing, then runs every test: the library's unit tests and the one
# integration-test binary, tests/tests.rs (there are no doc tests). It ends with one summary line,
# "tests: N passed, M failed", which CI reads. A failing test hides nothing: every test of a
# binary runs whatever another does, and --no-fail-fast runs every binary even when one fails.
# Extra arguments go to `cargo test` (e.g. a test name filter: `scripts/test.sh setup::`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-prism.sh
bash scripts/install-chromium.sh
bash scripts/install-postgres.sh
bash scripts/install-synapse.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --locked --no-fail-fast --lib --bins --tests "$@" 2>&1 | tee "$log" || status=$?
count() { # $1: 1 for passed, 2 for failed; sums libtest's "test result:" lines
  sed -n "s/^test result: .* \([0-9][0-9]*\) passed; \([0-9][0-9]*\) failed.*/\\$1/p" "$log" |
    awk '{s+=$1} END {print s+0}'
}
passed=$(count 1)
failed=$(count 2)
failing=$(sed -n 's/^test \(.*\) \.\.\. FAILED$/  \1/p' "$log")
if [[ -n "$failing" ]]; then
  printf 'failed tests:\n%s\n' "$failing"
fi
if [[ "$status" -ne 0 && "$failed" -eq 0 ]]; then
  echo "cargo test exited with status $status with no failing test counted:" \
    "a build error, or a test binary that died before its summary (see above)"
fi
echo "tests: $passed passed, $failed failed"
exit "$status"
