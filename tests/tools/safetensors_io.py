"""Reading and writing safetensors files by hand (numpy + torch only).

The format: an 8-byte little-endian header length N, N bytes of JSON
({"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
"__metadata__": {...}}), padded with spaces to a multiple of 8 as the
reference writer does, then the data section (offsets are relative to it).

A sharded model has `model-0000i-of-0000n.safetensors` files and a
`model.safetensors.index.json` whose `weight_map` maps each tensor to its file.

Writing streams: the header is computed from (name, dtype, shape) specs first,
then each tensor is produced and written one at a time, so a 1 GB model is
never held in memory twice.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

# safetensors dtype name -> (torch dtype, bytes per element)
DTYPES: Dict[str, Tuple[torch.dtype, int]] = {
    "F32": (torch.float32, 4),
    "F16": (torch.float16, 2),
    "BF16": (torch.bfloat16, 2),
    "F64": (torch.float64, 8),
    "I64": (torch.int64, 8),
    "I32": (torch.int32, 4),
    "I16": (torch.int16, 2),
    "I8": (torch.int8, 1),
    "U8": (torch.uint8, 1),
    "BOOL": (torch.bool, 1),
}
TORCH_TO_NAME = {t: name for name, (t, _) in DTYPES.items()}

# Command-line spellings used by the tools.
SHORT_NAMES = {"f32": "F32", "f16": "F16", "bf16": "BF16"}

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


@dataclass
class TensorSpec:
    name: str
    dtype: str  # safetensors name, e.g. "BF16"
    shape: Tuple[int, ...]

    @property
    def nbytes(self) -> int:
        n = DTYPES[self.dtype][1]
        for d in self.shape:
            n *= d
        return n


def _tensor_array(t: torch.Tensor) -> np.ndarray:
    """The tensor's bytes as a contiguous numpy array, without a copy (bf16 through an int16 view)."""
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy()


def _header_bytes(specs: Sequence[TensorSpec], metadata: Optional[Mapping[str, str]]) -> bytes:
    header: Dict[str, object] = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    offset = 0
    for s in specs:
        header[s.name] = {"dtype": s.dtype, "shape": list(s.shape), "data_offsets": [offset, offset + s.nbytes]}
        offset += s.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


def write_streaming(path: str, specs: Sequence[TensorSpec], produce: Callable[[TensorSpec], torch.Tensor],
                    metadata: Optional[Mapping[str, str]] = None) -> None:
    """Writes `specs` (wider dtypes first, else in order); `produce(spec)` returns each
    tensor when its turn comes.

    The produced tensor is converted to spec.dtype and must have spec.shape.
    """
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError("duplicate tensor names")
    # Wider elements first (stable), as the reference writer does: every
    # tensor's data then starts aligned to its element size.
    specs = sorted(specs, key=lambda s: -DTYPES[s.dtype][1])
    with open(path, "wb") as f:
        f.write(_header_bytes(specs, metadata if metadata is not None else {"format": "pt"}))
        for s in specs:
            t = produce(s).to(DTYPES[s.dtype][0])
            if tuple(t.shape) != tuple(s.shape):
                raise ValueError(f"{s.name}: produced shape {tuple(t.shape)}, spec says {s.shape}")
            data = _tensor_array(t)
            assert data.nbytes == s.nbytes
            f.write(memoryview(data.reshape(-1)).cast("B") if data.size else b"")


def write_file(path: str, tensors: Mapping[str, torch.Tensor], metadata: Optional[Mapping[str, str]] = None) -> None:
    """Writes a dict of tensors (each in its own dtype) to one safetensors file."""
    specs = [TensorSpec(name, TORCH_TO_NAME[t.dtype], tuple(t.shape)) for name, t in tensors.items()]
    write_streaming(path, specs, lambda s: tensors[s.name], metadata)


def split_shards(specs: Sequence[TensorSpec], n_shards: int) -> List[List[TensorSpec]]:
    """Splits specs, in order, into n_shards non-empty groups of roughly equal bytes."""
    n_shards = max(1, min(n_shards, len(specs)))
    total = sum(s.nbytes for s in specs)
    groups: List[List[TensorSpec]] = [[] for _ in range(n_shards)]
    done = 0
    for i, s in enumerate(specs):
        g = min(n_shards - 1, (done * n_shards) // max(total, 1))
        # Leave at least one tensor for each remaining shard.
        g = max(g, n_shards - (len(specs) - i))
        groups[g].append(s)
        done += s.nbytes
    return [g for g in groups if g]


def write_model(model_dir: str, specs: Sequence[TensorSpec], produce: Callable[[TensorSpec], torch.Tensor],
                n_shards: int = 1) -> List[str]:
    """Writes model weights into model_dir: `model.safetensors` when n_shards == 1,
    else shards plus `model.safetensors.index.json`. Returns the files written."""
    os.makedirs(model_dir, exist_ok=True)
    if n_shards <= 1:
        write_streaming(os.path.join(model_dir, SINGLE_FILE), specs, produce)
        return [SINGLE_FILE]
    groups = split_shards(specs, n_shards)
    files = []
    weight_map: Dict[str, str] = {}
    for i, group in enumerate(groups):
        name = f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        write_streaming(os.path.join(model_dir, name), group, produce)
        files.append(name)
        for s in group:
            weight_map[s.name] = name
    index = {"metadata": {"total_size": sum(s.nbytes for s in specs)}, "weight_map": weight_map}
    with open(os.path.join(model_dir, INDEX_FILE), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    files.append(INDEX_FILE)
    return files


def read_header(path: str) -> Tuple[Dict[str, dict], Dict[str, str], int]:
    """Returns (tensor entries by name, __metadata__, byte offset of the data section)."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError(f"{path}: truncated (no header length)")
        (n,) = struct.unpack("<Q", head)
        if n > 100_000_000 or n > os.path.getsize(path) - 8:
            raise ValueError(f"{path}: header length {n} is invalid")
        header = json.loads(f.read(n).decode("utf-8"))
    metadata = header.pop("__metadata__", {}) or {}
    return header, metadata, 8 + n


def read_file(path: str, names: Optional[Iterable[str]] = None) -> Dict[str, torch.Tensor]:
    """Reads tensors (all, or those in `names`) from one file, in their stored dtype.

    The tensors share a copy-on-write mapping of the file: cheap for big files."""
    header, _, data_start = read_header(path)
    data = np.memmap(path, dtype=np.uint8, mode="c") if os.path.getsize(path) > 0 else np.zeros(0, np.uint8)
    wanted = set(header) if names is None else set(names)
    out: Dict[str, torch.Tensor] = {}
    for name, entry in header.items():
        if name not in wanted:
            continue
        dtype, size = DTYPES[entry["dtype"]]
        begin, end = entry["data_offsets"]
        shape = tuple(entry["shape"])
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if end - begin != count * size:
            raise ValueError(f"{path}: {name}: {end - begin} bytes for shape {list(shape)} of {entry['dtype']}")
        raw = data[data_start + begin: data_start + end]
        if dtype == torch.bfloat16:
            t = torch.from_numpy(raw.view(np.int16)).view(torch.bfloat16)
        elif dtype == torch.bool:
            t = torch.from_numpy(raw.view(np.bool_))
        else:
            t = torch.from_numpy(raw.view(torch.empty(0, dtype=dtype).numpy().dtype))
        out[name] = t.reshape(shape)
    missing = wanted - set(out)
    if missing:
        raise KeyError(f"{path}: missing tensors {sorted(missing)}")
    return out


def read_model(model_dir: str) -> Dict[str, torch.Tensor]:
    """All weights of a model folder (single file, or shards listed by the index)."""
    single = os.path.join(model_dir, SINGLE_FILE)
    if os.path.exists(single):
        return read_file(single)
    index_path = os.path.join(model_dir, INDEX_FILE)
    if not os.path.exists(index_path):
        raise FileNotFoundError(f"{model_dir}: neither {SINGLE_FILE} nor {INDEX_FILE}")
    with open(index_path) as f:
        weight_map: Dict[str, str] = json.load(f)["weight_map"]
    by_shard: Dict[str, List[str]] = {}
    for name, shard in weight_map.items():
        by_shard.setdefault(shard, []).append(name)
    out: Dict[str, torch.Tensor] = {}
    for shard, names in by_shard.items():
        out.update(read_file(os.path.join(model_dir, shard), names))
    return out
