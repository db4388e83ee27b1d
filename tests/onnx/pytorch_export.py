"""PyTorch 1.13's own ONNX export of the tutorial's Net with a bnlab checkpoint's weights.

The model loads the checkpoint with load_state_dict(strict=True) (as tests/pytorch_roundtrip.py
does) and torch.onnx.export writes it at bnlab's opset with a dynamic batch dimension, input
"input" and output "output"; onnx_opencv_check then compares it with bnlab's export in OpenCV.

Usage: /usr/bin/python3 tests/onnx/pytorch_export.py SEED.safetensors OUT.onnx
"""
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools", "golden"))
import safetensors_io  # noqa: E402
from seed_net import Net  # noqa: E402

OPSET = 13  # bnlab's (src/io/onnx_export.h: kOnnxOpset)


def main():
    weights, out = sys.argv[1], sys.argv[2]
    tensors, _ = safetensors_io.load(weights)
    net = Net()
    net.load_state_dict(tensors, strict=True)
    net.eval()
    torch.onnx.export(net, torch.zeros(2, 1, 28, 28), out, opset_version=OPSET, input_names=["input"],
                      output_names=["output"], dynamic_axes={"input": {0: "N"}, "output": {0: "N"}},
                      do_constant_folding=True)
    print(f"pytorch_export: {out} (torch {torch.__version__}, opset {OPSET})")


if __name__ == "__main__":
    main()
