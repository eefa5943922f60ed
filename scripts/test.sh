#!/usr/bin/env bash
# The project's test command: installs the pinned Prism mock (for the Cliq and GitLab schema
# tests) if it is missing, then runs every test. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-prism.sh
cargo test --locked "$@"
