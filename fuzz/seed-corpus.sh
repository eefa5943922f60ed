#!/usr/bin/env bash
# Seeds fuzz/corpus/parse_render/ (or the folder given as $1) from GitLab's real payloads
# (samples): each one with its X-Gitlab-Event header as the first line, and once
# without a header. The corpus is not committed (cargo fuzz adds thousands of files to it); run
# this before `cargo fuzz run`.
set -euo pipefail
cd "$(dirname "$0")"
fixtures=../samples
out="${1:-corpus/parse_render}"
mkdir -p "$out"
n=0
while IFS=$'\t' read -r file header _; do
  [ "$file" = file ] && continue # the column names
  [ -n "$file" ] || continue
  { printf '%s\n' "$header"; cat "$fixtures/$file"; } >"$out/${file%.json}"
  { printf '\n'; cat "$fixtures/$file"; } >"$out/${file%.json}.no-header"
  n=$((n + 2))
done <"$fixtures/INDEX.tsv"
echo "seeded $n inputs in $out"
