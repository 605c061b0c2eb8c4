#!/usr/bin/env bash
# zoff forward on every fixture vs the transformers reference (via zoff compare), and bad inputs -> exit 2.
set -u
ZOFF=${1:?usage: forward.sh <zoff> <tests/data dir>}
DATA=${2:?usage: forward.sh <zoff> <tests/data dir>}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail=0
source "$(dirname "$0")/harness.bash" || exit 2  # run, has
check() { run "$@"; }  # the harness run, under this script's name
expect_err() {  # expect_err <description> <text>: the last command's stderr contains text
  if grep -qF -- "$2" "$TMP/err"; then echo "ok: $1 names '$2'"; else
    echo "FAIL: $1: stderr lacks '$2'"; sed 's/^/  | /' "$TMP/err"; fail=1; fi
}

# 1. Parity with the reference logits and loss, fp32 on the CPU.
for name in opt-tiny opt-tiny-postln-proj llama-tiny qwen2-tiny; do
  out="$TMP/$name.safetensors"
  check "forward $name" 0 "$ZOFF" --log-level warn forward --model "$DATA/$name/model" \
    --inputs "$DATA/$name/reference.safetensors" --out "$out" --device cpu || continue
  check "$name logits vs reference" 0 "$ZOFF" compare "$out" "$DATA/$name/reference.safetensors" --tensor logits --rtol 1e-4
  cat "$TMP/out"
  check "$name loss vs reference" 0 "$ZOFF" compare "$out" "$DATA/$name/reference.safetensors" --tensor loss --rtol 1e-5
  cat "$TMP/out"
done

# 2. bf16 compute runs and stays near the reference (bf16 has ~3 significant digits).
check "forward opt-tiny --dtype bf16" 0 "$ZOFF" --log-level warn forward --model "$DATA/opt-tiny/model" \
  --inputs "$DATA/opt-tiny/reference.safetensors" --out "$TMP/bf16.safetensors" --device cpu --dtype bf16
check "bf16 logits within 5e-2" 0 "$ZOFF" compare "$TMP/bf16.safetensors" "$DATA/opt-tiny/reference.safetensors" --tensor logits --rtol 5e-2
cat "$TMP/out"

# 3. compare itself fails on a real difference (the bf16 result against the fp32 reference at
#    1e-6: exit 1) and on bad input (a missing tensor: exit 2).
check "compare detects a difference" 1 "$ZOFF" compare "$TMP/bf16.safetensors" "$DATA/opt-tiny/reference.safetensors" --tensor logits --rtol 1e-6
check "compare of different fixtures" 1 "$ZOFF" compare "$TMP/opt-tiny.safetensors" "$DATA/llama-tiny/reference.safetensors" --tensor logits
check "compare missing tensor" 2 "$ZOFF" compare "$TMP/opt-tiny.safetensors" "$DATA/opt-tiny/reference.safetensors" --tensor nope
expect_err "compare missing tensor" "nope"

# 4. Bad inputs: exit 2 and a message naming the file and the tensor. Inputs are written with
#    zoff forward's own output (logits float32, loss) and the reference (int64 ids) of other fixtures.
F="$DATA/opt-tiny"
check "inputs without input_ids" 2 "$ZOFF" forward --model "$F/model" --inputs "$TMP/opt-tiny.safetensors" --out "$TMP/x.safetensors"
expect_err "inputs without input_ids" "$TMP/opt-tiny.safetensors: no tensor 'input_ids'"
python_ok=0; command -v python3 >/dev/null && python3 -c 'import struct, json' 2>/dev/null && python_ok=1
if [ "$python_ok" = 1 ]; then
  # Small safetensors writer (stdlib only) for hand-made bad inputs.
  mk() {  # mk <file> <name:dtype:shape:values-json> ...
    python3 - "$@" <<'PY'
import json, struct, sys
out, specs = sys.argv[1], sys.argv[2:]
fmt = {"I64": "q", "I32": "i", "F32": "f"}
hdr, blobs, off = {}, [], 0
for s in specs:
    name, dt, shape, vals = s.split(":", 3)
    shape = json.loads(shape); vals = json.loads(vals)
    b = struct.pack("<%d%s" % (len(vals), fmt[dt]), *vals)
    hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(b)]}
    blobs.append(b); off += len(b)
h = json.dumps(hdr).encode()
h += b" " * ((8 - len(h) % 8) % 8)
open(out, "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
PY
  }
  mk "$TMP/small.safetensors" 'logits:F32:[1,4]:[1,2,3,4]'
  check "compare shape mismatch" 2 "$ZOFF" compare "$TMP/small.safetensors" "$F/reference.safetensors" --tensor logits
  expect_err "compare shape mismatch" "logits: shape [1, 4] in $TMP/small.safetensors"
  mk "$TMP/f32ids.safetensors" 'input_ids:F32:[1,4]:[1,2,3,4]'
  check "input_ids float32" 2 "$ZOFF" forward --model "$F/model" --inputs "$TMP/f32ids.safetensors" --out "$TMP/x.safetensors"
  expect_err "input_ids float32" "$TMP/f32ids.safetensors: input_ids: dtype must be I64"
  mk "$TMP/rank1.safetensors" 'input_ids:I64:[4]:[1,2,3,4]'
  check "input_ids rank 1" 2 "$ZOFF" forward --model "$F/model" --inputs "$TMP/rank1.safetensors" --out "$TMP/x.safetensors"
  expect_err "input_ids rank 1" "$TMP/rank1.safetensors: input_ids: must be [batch, seq]"
  mk "$TMP/vocab.safetensors" 'input_ids:I64:[1,4]:[1,2,3,512]'
  check "ids out of vocab" 2 "$ZOFF" forward --model "$F/model" --inputs "$TMP/vocab.safetensors" --out "$TMP/x.safetensors"
  expect_err "ids out of vocab" "$TMP/vocab.safetensors: input_ids: token ids must be in [0, 512)"
  mk "$TMP/neg.safetensors" 'input_ids:I64:[1,4]:[1,-2,3,4]'
  check "negative ids" 2 "$ZOFF" forward --model "$F/model" --inputs "$TMP/neg.safetensors" --out "$TMP/x.safetensors"
  expect_err "negative ids" "input_ids: token ids must be in"
  mk "$TMP/mask.safetensors" 'input_ids:I64:[1,4]:[1,2,3,4]' 'attention_mask:I64:[1,3]:[1,1,1]'
  check "mask shape mismatch" 2 "$ZOFF" forward --model "$F/model" --inputs "$TMP/mask.safetensors" --out "$TMP/x.safetensors"
  expect_err "mask shape mismatch" "$TMP/mask.safetensors: attention_mask: shape [1, 3] does not match input_ids [1, 4]"
  mk "$TMP/mask2.safetensors" 'input_ids:I64:[1,4]:[1,2,3,4]' 'attention_mask:I64:[1,4]:[1,1,2,1]'
  check "mask values" 2 "$ZOFF" forward --model "$F/model" --inputs "$TMP/mask2.safetensors" --out "$TMP/x.safetensors"
  expect_err "mask values" "attention_mask: values must be 0 or 1"
  mk "$TMP/long.safetensors" "input_ids:I64:[1,65]:$(python3 -c 'print([5]*65)')"
  check "sequence too long" 2 "$ZOFF" forward --model "$F/model" --inputs "$TMP/long.safetensors" --out "$TMP/x.safetensors"
  expect_err "sequence too long" "max_position_embeddings (64)"
  # No attention_mask: all ones, same logits as the reference's first (unpadded) row.
  mk "$TMP/nomask.safetensors" 'input_ids:I64:[1,4]:[2,10,20,30]'
  check "inputs without attention_mask" 0 "$ZOFF" --log-level warn forward --model "$F/model" --inputs "$TMP/nomask.safetensors" --out "$TMP/x.safetensors"
else
  echo "note: python3 not found; hand-made bad-input files skipped"
fi
echo garbage >"$TMP/garbage.safetensors"
check "inputs not a safetensors file" 2 "$ZOFF" forward --model "$F/model" --inputs "$TMP/garbage.safetensors" --out "$TMP/x.safetensors"
expect_err "inputs not a safetensors file" "$TMP/garbage.safetensors"
check "missing inputs file" 2 "$ZOFF" forward --model "$F/model" --inputs "$TMP/none.safetensors" --out "$TMP/x.safetensors"
expect_err "missing inputs file" "$TMP/none.safetensors"
check "model folder without config.json" 2 "$ZOFF" forward --model "$TMP" --inputs "$F/reference.safetensors" --out "$TMP/x.safetensors"
expect_err "model folder without config.json" "$TMP/config.json"
check "unknown --dtype" 2 "$ZOFF" forward --model "$F/model" --inputs "$F/reference.safetensors" --out "$TMP/x.safetensors" --dtype fp7
check "missing --out" 2 "$ZOFF" forward --model "$F/model" --inputs "$F/reference.safetensors"
expect_err "missing --out" "zoff: error:"
if "$ZOFF" --version | grep -q "CUDA: not compiled in"; then
  check "--device cuda in a CPU-only build" 2 "$ZOFF" forward --model "$F/model" --inputs "$F/reference.safetensors" --out "$TMP/x.safetensors" --device cuda
  expect_err "--device cuda in a CPU-only build" "built without CUDA"
fi
check "forward --help" 0 "$ZOFF" forward --help
grep -q -- "--inputs" "$TMP/out" || { echo "FAIL: forward --help lacks --inputs"; fail=1; }

[ "$fail" = 0 ] && echo "forward.sh: all checks passed" || echo "forward.sh: FAILED"
exit $fail
