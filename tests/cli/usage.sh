#!/usr/bin/env bash
# The zoff app itself: --version, --help, exit code 2 and one-line errors for bad usage.
set -u
ZOFF=${1:?usage: usage.sh <zoff> <tests/data dir>}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail=0
source "$(dirname "$0")/harness.bash" || exit 2  # run, has

run "--version" 0 "$ZOFF" --version
has "$TMP/out" "version text" "^zoff [0-9]+\.[0-9]+\.[0-9]+$" "^LibTorch [0-9]+\.[0-9]+" "^CUDA: (not compiled in|compiled in, (available|no device visible))$"
cat "$TMP/out"
run "--help" 0 "$ZOFF" --help
has "$TMP/out" "--help lists the commands" "^  train " "^  eval " "^  forward " "^  inspect " "^  plan " "--log-level" "--version"
if grep -qE "^  compare " "$TMP/out"; then echo "FAIL: compare is not hidden"; fail=1; else echo "ok: compare hidden from --help"; fi
for c in train eval forward inspect plan compare; do
  run "$c --help" 0 "$ZOFF" "$c" --help
  has "$TMP/out" "$c --help has a usage line" "^Usage: zoff $c"
done
run "no command" 2 "$ZOFF"
has "$TMP/err" "no command message" "^zoff: error: no command given \(expected one of: train, eval, forward, inspect, plan, replay\)"
run "unknown command" 2 "$ZOFF" frobnicate
has "$TMP/err" "unknown command message" "^zoff: error: .*frobnicate"
run "bad --log-level" 2 "$ZOFF" --log-level loud plan --config x.toml
has "$TMP/err" "bad log level message" "^zoff: error: --log-level: loud not in"
run "unknown option" 2 "$ZOFF" plan --config x.toml --frob
has "$TMP/err" "unknown option message" "^zoff: error: .*--frob"
run "--set without a value" 2 "$ZOFF" plan --config x.toml --set

[ "$fail" = 0 ] && echo "usage.sh: all checks passed" || echo "usage.sh: FAILED"
exit $fail
