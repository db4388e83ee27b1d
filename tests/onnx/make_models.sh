#!/usr/bin/env bash
# The fixture of the ONNX tests (onnx_tests.cmake): each network trained for a few steps on MNIST,
# what `bnlab eval` outputs for the 10,000 test images (BNLAB_ONNX_IMAGES) (NAME.out.safetensors, with --fold-bn for
# the folded ones), and its ONNX export (NAME.onnx); the seed also folded (seed_fold) and with the
# normalization in the graph (seed_pre); every preset exported once more for the checker.
# Usage: make_models.sh BNLAB_BINARY WORK_DIR
set -euo pipefail
bnlab=$1
work=$2
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work"
mkdir -p "$work/presets"

train() {  # NAME MODEL: 40 steps of batch 64, enough for running statistics far from their start
  "$bnlab" train --model "$2" --max-steps 40 --limit-test 100 --threads 2 --seed 3 --save "$work/$1.safetensors" >/dev/null
}
# The outputs of the first BNLAB_ONNX_IMAGES test images (default all 10,000; scripts/test-sanitizers
# asks for fewer: the sanitizers look for memory errors, which a thousand images find as well).
images=${BNLAB_ONNX_IMAGES:-10000}
eval_outputs() {  # NAME MODEL OUT [--fold-bn]
  "$bnlab" eval --model "$2" --weights "$work/$1.safetensors" --threads 2 --limit-test "$images" \
    --outputs "$work/$3.out.safetensors" "${@:4}" >/dev/null
}
export_onnx() {  # NAME MODEL OUT [flags]
  "$bnlab" export --format onnx --model "$2" --weights "$work/$1.safetensors" --out "$work/$3.onnx" "${@:4}" >/dev/null
}

for net in seed seed-groupnorm seed-layernorm "residual=$here/residual.spec" seed-bn-after-relu "noisy=$here/noisy.spec"; do
  name=${net%%=*}
  model=${net#*=}
  train "$name" "$model"
  eval_outputs "$name" "$model" "$name"
  export_onnx "$name" "$model" "$name"
done
eval_outputs seed seed seed_fold --fold-bn
export_onnx seed seed seed_fold --fold-bn
export_onnx seed seed seed_pre --with-preprocessing
eval_outputs seed-bn-after-relu seed-bn-after-relu seed-bn-after-relu_fold --fold-bn
export_onnx seed-bn-after-relu seed-bn-after-relu seed-bn-after-relu_fold --fold-bn
eval_outputs residual "$here/residual.spec" residual_fold --fold-bn
export_onnx residual "$here/residual.spec" residual_fold --fold-bn

# Every preset exports (its freshly initialized weights: the checker needs only the graph).
for preset in seed seed-nobn seed-bn-after-relu seed-bn-conv-only paper-mlp paper-mlp-bn seed-groupnorm seed-layernorm; do
  "$bnlab" train --model "$preset" --max-steps 1 --limit-test 10 --threads 2 --save "$work/presets/$preset.safetensors" >/dev/null
  "$bnlab" export --format onnx --model "$preset" --weights "$work/presets/$preset.safetensors" --out "$work/presets/$preset.onnx" >/dev/null
  "$bnlab" export --format onnx --fold-bn --model "$preset" --weights "$work/presets/$preset.safetensors" --out "$work/presets/$preset.fold.onnx" >/dev/null
done
echo "make_models: $(ls "$work"/*.onnx "$work"/presets/*.onnx | wc -l) models in $work"
