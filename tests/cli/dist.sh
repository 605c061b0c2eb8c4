#!/usr/bin/env bash
# zoff launch: 2 CPU ranks (Gloo) on opt-tiny equal 1 process; outputs from rank 0; signals; a killed rank.
set -u
ZOFF=${1:?usage: dist.sh <zoff> <tests/data dir>}
DATA=$(cd "${2:?usage: dist.sh <zoff> <tests/data dir>}" && pwd)
RUN="$(cd "$DATA/../.." && pwd)/configs/runs/opt-tiny-mezo.toml"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail=0
source "$(dirname "$0")/harness.bash" || exit 2  # run, has, expect, lines
# Same thread count in every process: CPU kernels then reduce in the same order (bitwise checks).
export OMP_NUM_THREADS=1
unset RANK WORLD_SIZE LOCAL_RANK MASTER_ADDR MASTER_PORT
if ! "$ZOFF" --version | grep -q '^Distributed backends:.*gloo'; then
  echo "skip: this zoff has no Gloo backend (CPU ranks need it; docs/distributed.md)"; exit 0
fi
COMMON=(--set train.steps=4 --set train.log_every=1 --set optimizer.mezo_q=2 --set data.batch_size=4)

# 1. Perturbation-parallel MeZO q=2 (4 forwards, 2 per rank) equals one process bit for bit.
run "one process" 0 "$ZOFF" --log-level warn train --config "$RUN" "${COMMON[@]}" --set train.output_dir="$TMP/one"
run "launch --nproc 2, perturbation mode" 0 "$ZOFF" launch --nproc 2 -- train --config "$RUN" "${COMMON[@]}" \
  --set train.output_dir="$TMP/two"
has "$TMP/err" "log lines carry the rank" '\[rank 0\].*distributed: rank 0 of 2' '\[rank 1\].*distributed: rank 1 of 2' \
  'zoff launch: rank 1 is pid [0-9]+'
expect "rank 0 wrote 4 metrics lines (has $(lines "$TMP/two/metrics.jsonl"))" [ "$(lines "$TMP/two/metrics.jsonl")" = 4 ]
has "$TMP/two/metrics.jsonl" "metrics name the world" '"ranks":2'
expect "only one progress line per step (rank 0)" [ "$(grep -c 'step 4/4' "$TMP/err")" = 1 ]
for t in model.decoder.layers.0.fc1.weight model.decoder.embed_tokens.weight; do
  run "2 ranks: $t equals one process's" 0 "$ZOFF" compare "$TMP/one/checkpoint-final/model.safetensors" \
    "$TMP/two/checkpoint-final/model.safetensors" --tensor "$t" --rtol 0
done

# 2. Data-parallel: 2 rows per rank of the 4-row global batch; the loss matches one process closely.
run "launch --nproc 2, data mode" 0 "$ZOFF" launch --nproc 2 -- train --config "$RUN" "${COMMON[@]}" \
  --set distributed.mode=data --set train.output_dir="$TMP/data"
l1=$(sed -n '4s/.*"loss":\([-0-9.eE+]*\).*/\1/p' "$TMP/one/metrics.jsonl")
l2=$(sed -n '4s/.*"loss":\([-0-9.eE+]*\).*/\1/p' "$TMP/data/metrics.jsonl")
expect "data mode: step-4 loss $l2 within 1e-5 of one process's $l1" \
  awk -v a="$l1" -v b="$l2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && d <= 1e-5 * a) }'

# 3. Ctrl-C / SIGTERM to the launcher: forwarded once, every rank stops after the same step, rank 0
#    saves a checkpoint, exit 130.
"$ZOFF" launch --nproc 2 -- train --config "$RUN" --set train.steps=1000000 --set train.log_every=0 \
  --set train.output_dir="$TMP/stop" >"$TMP/out" 2>"$TMP/err" &
pid=$!
for _ in $(seq 900); do [ "$(lines "$TMP/stop/metrics.jsonl")" -ge 2 ] && break; sleep 0.1; done
kill -s TERM "$pid"
wait "$pid"
rc=$?
expect "SIGTERM to the launcher: exit $rc = 130" [ "$rc" = 130 ]
ck=$(ls -d "$TMP"/stop/checkpoint-* 2>/dev/null | head -1)
expect "a checkpoint of the stopped step ($ck)" [ -n "$ck" -a -f "$ck/model.safetensors" ]
expect "both ranks stopped at the same step" \
  [ "$(grep -c 'stopped at step' "$TMP/err")" = 2 -a "$(grep -o 'stopped at step [0-9]*' "$TMP/err" | sort -u | wc -l)" = 1 ]

# 4. A rank killed outright: the launcher stops the other one and fails naming the rank.
"$ZOFF" launch --nproc 2 --grace 20 -- train --config "$RUN" --set train.steps=1000000 --set train.log_every=0 \
  --set train.output_dir="$TMP/kill" >"$TMP/out" 2>"$TMP/err" &
pid=$!
for _ in $(seq 900); do [ "$(lines "$TMP/kill/metrics.jsonl")" -ge 2 ] && break; sleep 0.1; done
r1=$(sed -n 's/^zoff launch: rank 1 is pid \([0-9]*\).*/\1/p' "$TMP/err")
kill -s KILL "$r1"
start=$SECONDS
wait "$pid"
rc=$?
expect "rank 1 killed: launcher exit $rc = 1 within $((SECONDS - start)) s" [ "$rc" = 1 -a $((SECONDS - start)) -le 30 ]
has "$TMP/err" "the launcher names the killed rank" 'zoff launch: failed: rank 1 was killed by signal 9'

# 5. Bad usage and bad input: exit 2, naming what is wrong.
run "launch without a command" 2 "$ZOFF" launch --nproc 2
run "launch --nproc 0" 2 "$ZOFF" launch --nproc 0 -- train --config "$RUN"
has "$TMP/err" "--nproc range" '--nproc must be in \[1, '
run "data mode with fewer rows than ranks" 2 "$ZOFF" launch --nproc 2 -- train --config "$RUN" \
  --set distributed.mode=data --set data.batch_size=1 --set train.output_dir="$TMP/bad"
has "$TMP/err" "the error names data.batch_size and the rank" 'zoff: error: \[rank [01]\] .*data.batch_size = 1' \
  'zoff launch: failed: rank [01] exited with code 2'
run "a bad distributed key" 2 "$ZOFF" train --config "$RUN" --set distributed.mode=pipeline
has "$TMP/err" "the error names the key" 'distributed.mode'
WORLD_SIZE=2 run "nested launch" 2 "$ZOFF" launch --nproc 2 -- train --config "$RUN"

exit $fail
