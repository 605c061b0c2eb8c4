#!/usr/bin/env bash
# zoff plan: shapes-only plans (OPT-175B without its memory), numbers in the table, budget too small -> exit 2.
set -u
ZOFF=${1:?usage: plan.sh <zoff> <tests/data dir>}
DATA=${2:?usage: plan.sh <zoff> <tests/data dir>}
CONFIGS="$(cd "$DATA/../.." && pwd)/configs"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail=0
source "$(dirname "$0")/harness.bash" || exit 2  # run, has

# 1. OPT-175B at 12 GiB, shapes only: the process may not map more than 16 GiB (the bf16 master
#    alone is 325 GiB), so any weight allocation fails. The plan must fit.
run "plan opt-175b-12g-fp8 (memory capped at 16 GiB)" "0" \
  bash -c 'ulimit -v 16777216 && exec "$0" plan --config "$1"' "$ZOFF" "$CONFIGS/runs/opt-175b-12g-fp8.toml"
cat "$TMP/out" "$TMP/err"
has "$TMP/out" "175B header and groups" "model: opt, 174604468224 parameters, 96 layers" \
  "layers\.0 \.\. layers\.95 \(96\) +1812099072 +3\.38 GiB +1\.69 GiB" "embed +642932736 +1\.20 GiB" \
  "activations per forward +48\.00 MiB" "perturbation scratch +1\.15 GiB"
has "$TMP/out" "175B plan table" "offload plan: 96 blocks" "slots \(3 x 1\.69 GiB\)" \
  "of 12\.00 GiB budget" "predicted step: transfer"
if grep -q "unpack" "$TMP/out"; then echo "FAIL: fp8 plans need no unpack buffer"; fail=1; fi

# 2. The same with room (16 GiB): the full table, with the numbers worked out by hand:
#    slots 3 x (1812099072 e4m3 bytes + 110602 rows x 4 B scales) = 5.06 GiB, resident embed +
#    head in bf16 = 1.20 GiB; the 16 GiB leave room for one resident bf16 block (3.38 GiB; two with
#    LibTorch 2.x, whose fused attention needs no [T,T] scores in the workspace), so 95 (94) x
#    1.69 GiB = 160.37 (158.68) GiB H2D (fp8 is dequantised per matrix into the scratch).
run "plan opt-175b at 16 GiB" "0" "$ZOFF" plan --config "$CONFIGS/runs/opt-175b-12g-fp8.toml" --set policy.gpu_memory_budget=16GiB
has "$TMP/out" "175B plan numbers" "offload plan: 96 blocks, [12] resident, 9[45] streamed through 3 slots of 1\.69 GiB; update site cpu, transfer fp8" \
  "slots \(3 x 1\.69 GiB\) +5\.06 GiB" "resident parts +1\.20 GiB" \
  "activations \(2 x 48\.00 MiB\) +96\.00 MiB" "of 16\.00 GiB budget" "resident blocks \(([12])\) +(3\.38|6\.75) GiB" "per step: H2D (160\.37|158\.68) GiB, D2H 0 B" \
  "predicted step: transfer 3\.[0-9]+ s"

# 3. Budget too small: exit 2, the message names the policy and lists every component.
run "plan opt-13b at 1 GiB" "2" "$ZOFF" plan --config "$CONFIGS/runs/opt-13b-stream.toml" --set policy.gpu_memory_budget=1GiB
has "$TMP/err" "over-budget message" "^zoff: error: offload policy 'stream-all': gpu_memory_budget = 1\.00 GiB is too small" \
  "slots \(3 x 600\.13 MiB\): 1\.76 GiB" "resident parts: " "activations \(2 x 20\.00 MiB\)" "perturbation scratch: " \
  "workspace: " "total: "
run "all-resident opt-13b over a 8 GiB budget" "2" "$ZOFF" plan --config "$CONFIGS/runs/opt-13b-stream.toml" \
  --set policy.preset="$CONFIGS/policies/all-resident.toml" --set policy.gpu_memory_budget=8GiB
has "$TMP/err" "all-resident over budget" "every block resident needs more than gpu_memory_budget = 8\.00 GiB" "resident blocks \(40\)"

# 4. A budget with room for some blocks: the planner keeps a spread set resident; FZOO's N+1 forwards.
run "opt-13b at 18 GiB, fzoo" "0" "$ZOFF" plan --config "$CONFIGS/runs/opt-13b-stream.toml" \
  --set policy.gpu_memory_budget=18GiB --set policy.resident_blocks=-1 --set optimizer.kind=fzoo --set optimizer.fzoo_n=4
has "$TMP/out" "fzoo plan" "optimizer fzoo: 5 forwards per step" "activations \(5 x 20\.00 MiB\)" \
  "offload plan: 40 blocks, [1-9][0-9]* resident" "of 18\.00 GiB budget"

# 4b. transfer = "auto" (stream-all; Note [Auto transfer]): a plan is for one GPU, so split bf16
#     (3 x 451.27 MiB slots and a 600.13 MiB decode buffer) where it fits; at 4.8 GiB only plain
#     bf16 fits (4.77 GiB against split's 4.92), and the plan says so.
run "opt-13b auto" "0" "$ZOFF" plan --config "$CONFIGS/runs/opt-13b-stream.toml"
has "$TMP/out" "auto picks split" "transfer = \"auto\" on one GPU: bf16-split" \
  "streamed through 3 slots of 451\.27 MiB; update site gpu, transfer bf16-split" "split decode buffer \(1 x 600\.13 MiB\)"
run "opt-13b auto at 4.8 GiB" "0" "$ZOFF" plan --config "$CONFIGS/runs/opt-13b-stream.toml" --set policy.gpu_memory_budget=4.8GiB
has "$TMP/out" "auto yields to same" "transfer = \"auto\": same \(bf16-split's decode buffer does not fit" \
  "streamed through 3 slots of 600\.13 MiB; update site gpu, transfer same"
if grep -q "decode buffer (1" "$TMP/out"; then echo "FAIL: the same plan has no decode buffer"; fail=1; fi

# 5. The CPU smoke run: all resident, no budget.
run "plan opt-tiny-mezo" "0" "$ZOFF" plan --config "$CONFIGS/runs/opt-tiny-mezo.toml"
has "$TMP/out" "tiny plan" "offload plan: 3 blocks, 3 resident, 0 streamed" "\(no budget\)"

# 6. Bad usage and bad config: exit 2.
run "plan without --config" "2" "$ZOFF" plan
run "plan with a bad --set" "2" "$ZOFF" plan --config "$CONFIGS/runs/opt-tiny-mezo.toml" --set optimizer.lrr=1
has "$TMP/err" "bad --set message" "optimizer\.lrr: unknown key"
run "plan of a missing file" "2" "$ZOFF" plan --config "$TMP/none.toml"
has "$TMP/err" "missing file message" "none\.toml"
run "plan --help" "0" "$ZOFF" plan --help
has "$TMP/out" "plan --help" "--config" "--set" "--h2d-gbps"

[ "$fail" = 0 ] && echo "plan.sh: all checks passed" || echo "plan.sh: FAILED"
exit $fail
