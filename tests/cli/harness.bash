# Shared helpers of the CLI test scripts (sourced; not a test itself: ctest runs tests/cli/*.sh).
# Expects TMP (a scratch folder) and fail=0 to be set by the script.

# run <description> <expected exit codes, e.g. "0" or "0|2"> <command...>: runs the command with
# stdout/stderr in $TMP/out and $TMP/err, sets rc, and checks the exit code.
run() {
  local what=$1 want=$2
  shift 2
  "$@" >"$TMP/out" 2>"$TMP/err"
  rc=$?
  if ! [[ "$rc" =~ ^($want)$ ]]; then
    echo "FAIL: $what: exit $rc, expected $want"; sed 's/^/  | /' "$TMP/out" "$TMP/err"; fail=1; return 1
  fi
  echo "ok: $what (exit $rc)"
}

# has <file> <description> <regex>...: every regex matches some line of the file.
has() {
  local f=$1 what=$2
  shift 2
  for re in "$@"; do
    if ! grep -qE -- "$re" "$f"; then echo "FAIL: $what: no line matching '$re'"; sed 's/^/  | /' "$f"; fail=1; return 1; fi
  done
  echo "ok: $what"
}

# expect <description> <condition...>: runs the condition, prints ok/FAIL, sets fail=1 on failure.
expect() {
  local what=$1
  shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; fail=1; fi
}
# lines <file>: its line count, 0 when missing.
lines() { [ -f "$1" ] && wc -l <"$1" | tr -d ' ' || echo 0; }
