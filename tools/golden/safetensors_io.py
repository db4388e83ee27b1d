"""Minimal safetensors reader/writer in plain Python (struct + json + torch).

File layout (the safetensors format):

    bytes [0, 8)        N: unsigned 64-bit little-endian length of the header
    bytes [8, 8+N)      UTF-8 JSON object, right-padded with spaces so that N % 8 == 0:
                          {"__metadata__": {str: str, ...},
                           "<name>": {"dtype": "F32"|"F64"|"I64",
                                      "shape": [d0, d1, ...],          # [] for 0-dim
                                      "data_offsets": [begin, end]},   # bytes, relative to 8+N
                           ...}
    bytes [8+N, EOF)    raw little-endian, row-major (C order) tensor data

save() lays tensors out in the order of their sorted names (Python string order, i.e.
by Unicode code point), contiguously, with no gaps and nothing after the last tensor.
load() accepts any order as long as the data regions tile the whole byte buffer exactly.

Only F32 (torch.float32), F64 (torch.float64) and I64 (torch.int64) are supported.
"""

import json
import struct
from typing import Dict, Optional, Tuple

import numpy as np
import torch

_DTYPES = {
    # safetensors name: (torch dtype, numpy little-endian dtype, item size)
    "F32": (torch.float32, "<f4", 4),
    "F64": (torch.float64, "<f8", 8),
    "I64": (torch.int64, "<i8", 8),
}
_TORCH_TO_NAME = {v[0]: k for k, v in _DTYPES.items()}

_METADATA_KEY = "__metadata__"


def save(path: str, tensors: Dict[str, torch.Tensor], metadata: Optional[Dict[str, str]] = None) -> None:
    """Write `tensors` (name -> tensor) and optional string metadata to `path`."""
    if not isinstance(tensors, dict):
        raise ValueError("tensors must be a dict of name -> torch.Tensor")
    header = {}
    if metadata is not None:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise ValueError(f"metadata keys and values must be str, got {k!r}: {v!r}")
        header[_METADATA_KEY] = dict(metadata)

    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name]
        if not isinstance(name, str) or name == _METADATA_KEY or name == "":
            raise ValueError(f"invalid tensor name {name!r}")
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"tensor {name!r} is not a torch.Tensor")
        if t.dtype not in _TORCH_TO_NAME:
            raise ValueError(f"tensor {name!r}: unsupported dtype {t.dtype} (want float32, float64 or int64)")
        dname = _TORCH_TO_NAME[t.dtype]
        arr = t.detach().cpu().contiguous().numpy().astype(_DTYPES[dname][1], copy=False)
        data = np.ascontiguousarray(arr).tobytes(order="C")
        assert len(data) == t.numel() * _DTYPES[dname][2]
        header[name] = {
            "dtype": dname,
            "shape": [int(s) for s in t.shape],
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)

    hbytes = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    hbytes += b" " * ((-len(hbytes)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)))
        f.write(hbytes)
        for b in blobs:
            f.write(b)


def load(path: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """Read a safetensors file. Returns (name -> tensor, metadata dict; {} if none).

    Raises ValueError if the file is malformed.
    """
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: file too short ({len(raw)} bytes) for the 8-byte header length")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise ValueError(f"{path}: header length {n} exceeds file size {len(raw)} - 8")
    try:
        header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: header is not valid UTF-8 JSON: {e}") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: header JSON is not an object")
    buf = raw[8 + n :]

    metadata = header.pop(_METADATA_KEY, {})
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise ValueError(f"{path}: __metadata__ must be an object of string -> string")

    spans = []
    tensors = {}
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise ValueError(f"{path}: tensor {name!r}: entry must have exactly dtype, shape, data_offsets")
        dname = info["dtype"]
        if dname not in _DTYPES:
            raise ValueError(f"{path}: tensor {name!r}: unknown dtype {dname!r} (known: {sorted(_DTYPES)})")
        shape = info["shape"]
        if not isinstance(shape, list) or not all(type(s) is int and s >= 0 for s in shape):
            raise ValueError(f"{path}: tensor {name!r}: shape must be a list of non-negative ints, got {shape!r}")
        offs = info["data_offsets"]
        if not (isinstance(offs, list) and len(offs) == 2 and all(type(o) is int for o in offs)):
            raise ValueError(f"{path}: tensor {name!r}: data_offsets must be [begin, end] ints, got {offs!r}")
        begin, end = offs
        if not (0 <= begin <= end <= len(buf)):
            raise ValueError(
                f"{path}: tensor {name!r}: data_offsets {offs} out of range for data buffer of {len(buf)} bytes"
            )
        tdtype, npdtype, size = _DTYPES[dname]
        numel = 1
        for s in shape:
            numel *= s
        if end - begin != numel * size:
            raise ValueError(
                f"{path}: tensor {name!r}: data_offsets {offs} span {end - begin} bytes, "
                f"but shape {shape} with dtype {dname} needs {numel * size}"
            )
        spans.append((begin, end, name))
        arr = np.frombuffer(buf, dtype=npdtype, count=numel, offset=begin).astype(npdtype[1:], copy=True)
        tensors[name] = torch.from_numpy(arr.reshape(shape)).to(tdtype)

    # The data regions must tile [0, len(buf)) exactly: no gaps, no overlaps, no trailing bytes.
    pos = 0
    for begin, end, name in sorted(spans):
        if begin != pos:
            what = "gap" if begin > pos else "overlap"
            raise ValueError(f"{path}: tensor {name!r}: data not contiguous ({what} at byte {pos}, begins at {begin})")
        pos = end
    if pos != len(buf):
        raise ValueError(f"{path}: data buffer has {len(buf) - pos} trailing bytes not covered by any tensor")
    return tensors, metadata
