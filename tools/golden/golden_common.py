"""Shared pieces of the fixture generators (make_fixtures.py and its golden_*.py modules): where
the files go, and writing one (safetensors_io.save, then a line with its size)."""

import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import safetensors_io  # noqa: E402

# make_fixtures.py --out DIR changes it (to compare a fresh run with the committed files).
OUT_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "tests", "fixtures"))


def bool_str(v: bool) -> str:
    return "true" if v else "false"


def write_fixture(name, tensors, metadata):
    for k, t in tensors.items():
        assert t.dtype in (torch.float32, torch.int64), (name, k, t.dtype)
    path = os.path.join(OUT_DIR, name)
    safetensors_io.save(path, tensors, metadata)
    print(f"{name:32s} {len(tensors):3d} tensors {os.path.getsize(path):8d} bytes")


def detached(t):
    return t.detach().clone()


def store_params(out, prefix, named):
    """named: iterable of (name, tensor). fc1.weight -> rowsum + slice."""
    for n, p in named:
        p = p.detach()
        if n == "fc1.weight":
            out[f"{prefix}.fc1.weight.rowsum"] = p.to(torch.float64).sum(dim=1).to(torch.float32)
            out[f"{prefix}.fc1.weight.slice"] = p[0:2].clone()
        else:
            out[f"{prefix}.{n}"] = p.clone()
