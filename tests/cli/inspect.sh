#!/usr/bin/env bash
# zoff inspect: fixtures (text and --json), dummy-shape presets via --config, checkpoint problems -> exit 2.
set -u
ZOFF=${1:?usage: inspect.sh <zoff> <tests/data dir>}
DATA=$(cd "${2:?usage: inspect.sh <zoff> <tests/data dir>}" && pwd)
CONFIGS="$(cd "$DATA/../.." && pwd)/configs"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail=0
source "$(dirname "$0")/harness.bash" || exit 2  # run, has

# 1. opt-tiny, counted by hand: embed 512x64 + 66x64 = 36992; a layer 2 LNs (256) + 4 x (64x64+64)
#    + fc1 256x64+256 + fc2 64x256+64 = 49984; head final LN 128; total 187072 = 731 KiB in fp32.
run "inspect opt-tiny" 0 "$ZOFF" inspect "$DATA/opt-tiny/model"
has "$TMP/out" "opt-tiny text" "^architecture: opt: vocab 512, hidden 64, layers 3, heads 4" "^parameters: 187072 " \
  "^embed +36992 +144\.50 KiB +72\.25 KiB" "^layers\.2 +49984 +195\.25 KiB" "^head +128 " "^total +187072 +730\.75 KiB" \
  "^model\.decoder\.layers\.0\.fc1\.weight +F32 +\[256, 64\] +64\.00 KiB +model\.safetensors"
head -12 "$TMP/out"

# 2. Every fixture in JSON: the groups add up to the parameter count, every model parameter is in
#    the checkpoint, and the fp8 bytes are e4m3 bytes (padded to 16) plus a float scale per row.
for name in opt-tiny opt-tiny-postln-proj llama-tiny qwen2-tiny; do
  run "inspect --json $name" 0 "$ZOFF" inspect --json "$DATA/$name/model" || continue
  if command -v python3 >/dev/null; then
    python3 - "$TMP/out" "$name" <<'PY' || fail=1
import json, sys
r = json.load(open(sys.argv[1])); name = sys.argv[2]
groups = r["groups"]
assert sum(g["params"] for g in groups) == r["num_params"], "groups do not add up"
assert groups[0]["name"] == "embed" and groups[-1]["name"] == "head"
assert [g["name"] for g in groups[1:-1]] == ["layers.%d" % i for i in range(r["architecture"]["num_hidden_layers"])]
for g in groups:
    assert g["bytes"]["fp32"] == 4 * g["numel"] and g["bytes"]["bf16"] == 2 * g["numel"]
    assert g["numel"] >= g["params"] and g["numel"] % 8 == 0
    assert g["bytes"]["fp8"] > (g["numel"] + 15) // 16 * 16, "fp8 has no scales"
    assert 1.5 * g["numel"] <= g["bytes"]["bf16-split"] < 1.6 * g["numel"] + 64, "bf16-split is not 1.5 bytes an element"
used = [t for t in r["tensors"] if t["group"]]
assert sum(t["bytes"] for t in used) == 4 * r["num_params"], "checkpoint tensors do not cover the parameters"
assert r["problems"] == []
print("ok: %s json: %d groups, %d params, %d tensors" % (name, len(groups), r["num_params"], len(r["tensors"])))
PY
  else
    has "$TMP/out" "$name json" '"num_params"' '"groups"' '"tensors"'
  fi
done

# 3. Dummy shapes from a model preset and from a run file, no weights read or allocated.
run "inspect --config opt-175b preset" 0 bash -c 'ulimit -v 16777216 && exec "$0" inspect --config "$1"' \
  "$ZOFF" "$CONFIGS/models/opt-175b.toml"
has "$TMP/out" "opt-175b sizes" "^parameters: 174604468224 " "^layers\.95 +1812099072 +6\.75 GiB +3\.38 GiB +1\.69 GiB" \
  "^total +174604468224 +650\.45 GiB +325\.23 GiB" "no checkpoint \(dummy weights\)"
run "inspect --config run file with --set" 0 "$ZOFF" inspect --config "$CONFIGS/runs/opt-13b-stream.toml" \
  --set model.spec.num_hidden_layers=2
has "$TMP/out" "opt-13b with 2 layers" "layers 2," "^layers\.1 " "^head "
run "inspect --config llama-7b --json" 0 "$ZOFF" inspect --json --config "$CONFIGS/models/llama-7b.toml"
has "$TMP/out" "llama-7b json" '"num_params": 6738415616'
run "inspect --config with a checkpoint lists its tensors" 0 "$ZOFF" inspect --config "$CONFIGS/runs/opt-tiny-mezo.toml"
has "$TMP/out" "run file checkpoint" "^checkpoint .*opt-tiny/model: 52 tensors"

# 4. A checkpoint that does not fit its config: exit 2 naming the tensors.
mkdir -p "$TMP/bad"
cp "$DATA/llama-tiny/model/config.json" "$TMP/bad/"
ln -s "$DATA/opt-tiny/model/model.safetensors" "$TMP/bad/model.safetensors"
run "inspect a mismatched checkpoint" 2 "$ZOFF" inspect "$TMP/bad"
has "$TMP/out" "problems listed" "^problem: model\.embed_tokens\.weight: missing from the checkpoint" "not a model parameter"
has "$TMP/err" "error names the folder" "^zoff: error: $TMP/bad: [0-9]+ tensor\(s\) do not fit the model"

# 5. Bad usage.
run "inspect a missing folder" 2 "$ZOFF" inspect "$TMP/none"
has "$TMP/err" "missing folder named" "$TMP/none"
run "inspect with both MODEL_DIR and --config" 2 "$ZOFF" inspect "$DATA/opt-tiny/model" --config "$CONFIGS/models/opt-175b.toml"
run "inspect with neither" 2 "$ZOFF" inspect
run "inspect --help" 0 "$ZOFF" inspect --help
has "$TMP/out" "inspect --help" "MODEL_DIR" "--config" "--json"

[ "$fail" = 0 ] && echo "inspect.sh: all checks passed" || echo "inspect.sh: FAILED"
exit $fail
