"""Minimal safetensors reader/writer for the parity oracle and the converters.

The Python `safetensors` package is not available from Debian, so this module
implements the file format directly:

    8 bytes   little-endian unsigned header length N
    N bytes   JSON header {name: {"dtype": "F32", "shape": [...],
                                  "data_offsets": [begin, end]}, ...,
                           "__metadata__": {str: str}}
              (padded with spaces to a multiple of 8 bytes)
    rest      the raw little-endian tensor data; offsets are relative to it

Tensors are torch tensors (numpy arrays are accepted on write).
"""
import json
import struct

import torch

# safetensors dtype name <-> torch dtype
_TO_TORCH = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
_FROM_TORCH = {v: k for k, v in _TO_TORCH.items()}


def dtype_name(t):
    """The safetensors dtype name of a torch tensor."""
    try:
        return _FROM_TORCH[t.dtype]
    except KeyError:
        raise TypeError("st: unsupported tensor dtype %s" % t.dtype) from None


def _raw_bytes(t):
    t = t.detach().to("cpu").contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    arr = t.numpy()
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()


def save(path, tensors, metadata=None):
    """Writes {name: tensor} (and optional {str: str} metadata) to `path`.
    Entries are stored in sorted name order, as safetensors does."""
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name]
        if not isinstance(t, torch.Tensor):
            t = torch.as_tensor(t)
        data = _raw_bytes(t)
        header[name] = {
            "dtype": dtype_name(t),
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for data in blobs:
            f.write(data)


def load(path):
    """Reads a safetensors file: returns ({name: tensor}, metadata dict)."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError("st: %s: file too short for a safetensors header" % path)
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError("st: %s: header length %d exceeds the file size" % (path, n))
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    base = 8 + n
    meta = header.pop("__metadata__", {}) or {}
    out = {}
    for name, info in header.items():
        dtype = _TO_TORCH.get(info["dtype"])
        if dtype is None:
            raise ValueError("st: %s: tensor %s has unsupported dtype %s" % (path, name, info["dtype"]))
        b, e = info["data_offsets"]
        shape = info["shape"]
        buf = bytearray(raw[base + b:base + e])
        if len(buf) == 0:
            out[name] = torch.zeros(shape, dtype=dtype)
            continue
        if dtype == torch.bfloat16:
            t = torch.frombuffer(buf, dtype=torch.int16).view(torch.bfloat16)
        else:
            t = torch.frombuffer(buf, dtype=dtype)
        out[name] = t.reshape(shape).clone()
    return out, meta
