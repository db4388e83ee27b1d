#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora (fuzz/corpus/{idx,safetensors,spec}/): small valid files and
edge cases from which libFuzzer mutates. Standard library only; deterministic output, so the
committed corpus is what this script writes. The spec seeds are the built-in networks, read from
specs/ (the files the library embeds), and edge cases.

    python3 fuzz/make_corpus.py
"""
import gzip
import json
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parent
CORPUS = ROOT / "corpus"


def write(kind, name, data):
    path = CORPUS / kind / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())


def gz(data):
    return gzip.compress(data, compresslevel=9, mtime=0)


# IDX: big-endian magic 0x00 0x00 0x08 <ndim>, ndim u32 sizes, then ubyte data.
def idx(dims, data):
    return struct.pack(">I", 0x800 | len(dims)) + b"".join(struct.pack(">I", d) for d in dims) + data


images = idx([3, 4, 5], bytes((i * 37) % 256 for i in range(3 * 4 * 5)))
labels = idx([3], bytes([7, 0, 9]))
write("idx", "images-3x4x5", images)
write("idx", "labels-3", labels)
write("idx", "images-3x4x5.gz", gz(images))
write("idx", "labels-3.gz", gz(labels))
write("idx", "images-1x1x1", idx([1, 1, 1], b"\xff"))
write("idx", "header-only", idx([2, 28, 28], b""))  # truncated data
write("idx", "huge-dims", idx([0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF], b"\0" * 4))
write("idx", "trailing-byte", labels + b"\0")


# safetensors: u64 little-endian header length, JSON header, data (8-byte aligned start).
def safetensors(tensors, metadata=None):
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


f32 = lambda *v: struct.pack(f"<{len(v)}f", *v)
i64 = lambda *v: struct.pack(f"<{len(v)}q", *v)
write("safetensors", "bn-layer", safetensors([
    ("bn.weight", "F32", [2], f32(1.0, 1.0)),
    ("bn.bias", "F32", [2], f32(0.0, 0.0)),
    ("bn.running_mean", "F32", [2], f32(0.5, -0.5)),
    ("bn.running_var", "F32", [2], f32(1.0, 2.0)),
    ("bn.num_batches_tracked", "I64", [], i64(938)),
], {"format": "pt", "model": "seed"}))
write("safetensors", "linear-2x3", safetensors([
    ("fc.weight", "F32", [2, 3], f32(*[0.25 * i for i in range(6)])),
    ("fc.bias", "F32", [2], f32(-1.0, 1.0)),
]))
write("safetensors", "empty-header", safetensors([]))
write("safetensors", "zero-sized", safetensors([
    ("empty_f32", "F32", [0, 3], b""),
    ("empty_i64", "I64", [0], b""),
    ("one", "I64", [1], i64(-1)),
]))
write("safetensors", "metadata-only", safetensors([], {"format": "pt"}))

# Network specs: the built-in networks of specs/, byte for byte, and edge cases.
presets = sorted((ROOT.parent / "specs").glob("*.spec"))
assert "seed" in [p.stem for p in presets], presets
for path in presets:
    write("spec", path.stem, path.read_bytes())
write("spec", "every-key", """\
# every layer and key
c: Conv2d out_channels=4 kernel_size=5 stride=2 padding=2 bias=false
b: BatchNorm2d num_features=4 eps=0.001 momentum=none affine=False track_running_stats=True
   ReLU
p: MaxPool2d kernel_size=3 stride=2 padding=1
d: Dropout p=0.5
   Flatten
l: Linear out_features=10 bias=true
n: BatchNorm1d momentum=0.01 affine=true track_running_stats=false
   LogSoftmax
""")
write("spec", "linear-only", "Flatten\nLinear out_features=1\n")
write("spec", "one-layer", "ReLU")
# A residual block is one layer of the network over three lines of the spec.
write("spec", "residual", "Conv2d out_channels=4 kernel_size=3 padding=1\nResidual\n  BatchNorm2d\n  ReLU\nend\nFlatten\n")
# Shortcut layers, the zero-padding shortcut, the scalar layers, average pools, init keys.
write("spec", "residual-shortcuts", """\
Conv2d out_channels=4 kernel_size=3 padding=1 init=kaiming_normal init_gain=0.5
d: Residual
  Conv2d out_channels=8 kernel_size=3 stride=2 padding=1 bias=false
  BatchNorm2d
shortcut
  Conv2d out_channels=8 kernel_size=1 stride=2 bias=false init=zeros
  BatchNorm2d
end
p: Residual shortcut=pad
  Bias
  Conv2d out_channels=12 kernel_size=3 stride=2 padding=1
  Scale init=0
end
AvgPool2d kernel_size=2 stride=1 padding=1
AdaptiveAvgPool2d output_size=1
Flatten
""")
write("spec", "errors", "x: Conv2d out_channels=-1 kernel_size=99\n  y:: Bogus k=v =\n")
write("spec", "big-numbers", "Conv2d out_channels=9223372036854775807 kernel_size=3 padding=4611686018427387904\n")
