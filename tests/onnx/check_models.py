"""Debian's ONNX checker (python3-onnx 1.12) on every model make_models.sh exported: the full check
(with shape inference, strict), the opset at most 17, a dynamic batch dimension on the input and
the output, every initializer of a bnlab tensor named as the checkpoint's state_dict key.

Usage: /usr/bin/python3 tests/onnx/check_models.py WORK_DIR
"""
import glob
import os
import sys

import onnx
import onnx.checker
import onnx.shape_inference

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "tools", "golden"))
import safetensors_io  # noqa: E402


def check(path, state_dict_keys):
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    opset = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    assert opset and max(opset) <= 17, f"{path}: opset {opset}"
    for value in (model.graph.input[0], model.graph.output[0]):
        batch = value.type.tensor_type.shape.dim[0]
        assert batch.dim_param and not batch.dim_value, f"{path}: {value.name}: batch dimension not dynamic"
    # Graph constants of its own are named "<layer>/..." or "<layer>.onnx_*"; the rest are tensors.
    ours = [i.name for i in model.graph.initializer if "/" not in i.name and ".onnx_" not in i.name
            and not i.name.startswith("preprocess.")]
    if state_dict_keys is not None:
        missing = [n for n in ours if n not in state_dict_keys]
        assert not missing, f"{path}: initializers not in the checkpoint: {missing}"
    return len(model.graph.node)


def main():
    work = sys.argv[1]
    paths = sorted(glob.glob(os.path.join(work, "*.onnx")) + glob.glob(os.path.join(work, "presets", "*.onnx")))
    paths = [p for p in paths if not p.endswith("_pytorch.onnx")]
    assert len(paths) >= 20, f"only {len(paths)} models in {work}"
    for path in paths:
        keys = None
        if "fold" not in os.path.basename(path):  # a folded model's biases are new tensors
            base = path[:-len(".onnx")]
            weights = base + ".safetensors" if os.path.exists(base + ".safetensors") else None
            if weights is None and base.endswith("_pre"):
                weights = base[:-len("_pre")] + ".safetensors"
            if weights:
                keys = set(safetensors_io.load(weights)[0].keys())
        nodes = check(path, keys)
        print(f"ok {os.path.relpath(path, work)}: {nodes} nodes{'' if keys is None else ', initializers are state_dict keys'}")
    print(f"check_models: {len(paths)} models pass onnx {onnx.__version__}'s checker")


if __name__ == "__main__":
    main()
