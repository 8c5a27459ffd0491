"""Binary array files: .npy, uncompressed .npz members and .safetensors tensors.

A rank reads its element range of the array, mapped a chunk at a time: either as numbers
(int64 or float64, for the reductions) or, for float64 arrays in sum-only jobs, summed
where the chunk lies in the page cache.
"""

from __future__ import annotations

import json
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from mlxrun import native
from mlxrun.data.float64s import CHUNK_ITEMS, float64_sums
from mlxrun.data.model import Data
from mlxrun.data.shards import MappedFile, Shard, Sums, existing, span
from mlxrun.errors import DataError

_SAFETENSORS_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
    "I8": "i1", "U8": "u1", "U16": "<u2", "U32": "<u4", "U64": "<u8", "BOOL": "?", "BF16": "<u2",
}  # fmt: skip


@dataclass(frozen=True)
class ArrayView:
    """Where the raw elements of one array live in a file."""

    path: Path
    offset: int
    dtype: np.dtype[Any]
    count: int
    bfloat16: bool = False


def _npy_view(path: Path, f: BinaryIO, base: int, label: str) -> ArrayView:
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    except ValueError as e:
        raise DataError(f"{label}: not a valid .npy array ({e})") from None
    if dtype.hasobject or dtype.kind not in "biuf":
        raise DataError(f"{label}: holds {dtype}, not numbers")
    del fortran  # the order of elements does not change any reduction mlxrun offers
    return ArrayView(path, base + f.tell(), dtype, int(np.prod(shape)))


def npy_view(path: Path) -> ArrayView:
    with path.open("rb") as f:
        return _npy_view(path, f, 0, str(path))


def npz_view(path: Path, member: str | int | None) -> ArrayView:
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise DataError(f"{path}: not a valid .npz file") from None
    with zf:
        names = [n.removesuffix(".npy") for n in zf.namelist()]
        name = _pick(path, names, member, "array")
        info = zf.getinfo(name + ".npy")
        if info.compress_type != zipfile.ZIP_STORED:
            raise DataError(
                f"{path}: array {name} is compressed; save it with np.savez (not savez_compressed)"
            )
    with path.open("rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        start = info.header_offset + 30 + name_len + extra_len
        f.seek(start)
        view = _npy_view(path, f, 0, f"{path}[{name}]")
        return ArrayView(path, view.offset, view.dtype, view.count)


def safetensors_view(path: Path, member: str | int | None) -> ArrayView:
    with path.open("rb") as f:
        try:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        except (struct.error, ValueError):
            raise DataError(f"{path}: not a valid .safetensors file") from None
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    name = _pick(path, sorted(tensors), member, "tensor")
    meta = tensors[name]
    if meta["dtype"] not in _SAFETENSORS_DTYPES:
        raise DataError(
            f"{path}: tensor {name} has dtype {meta['dtype']}, not a supported number type"
        )
    dtype = np.dtype(_SAFETENSORS_DTYPES[meta["dtype"]])
    begin, end = meta["data_offsets"]
    return ArrayView(
        path, 8 + n + begin, dtype, (end - begin) // dtype.itemsize, meta["dtype"] == "BF16"
    )


def _pick(path: Path, names: list[str], member: str | int | None, what: str) -> str:
    if member is None:
        if len(names) == 1:
            return names[0]
        raise DataError(
            f"{path}: holds {what}s {', '.join(names)}: choose one with --column or data.column"
        )
    if isinstance(member, int):
        if not 0 <= member < len(names):
            raise DataError(f"{path}: no {what} {member} (it has {len(names)})")
        return names[member]
    if member not in names:
        raise DataError(f'{path}: no {what} "{member}"; it has {", ".join(names)}')
    return member


def as_numbers(raw: np.ndarray, view: ArrayView) -> np.ndarray:
    """int64 or float64, the two types the reductions take, without losing a bit; always a
    new array (the chunk it comes from is unmapped once it is dropped)."""
    if view.bfloat16:
        return (raw.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    if raw.dtype.kind == "f":
        return raw.astype(np.float64)  # a copy, also when it is float64 already
    if raw.dtype == np.uint64 and raw.size and int(raw.max()) >= 2**63:
        raise DataError(f"{view.path}: uint64 values of 2**63 or more are not supported")
    return raw.astype(np.int64)


def read_array(view: ArrayView, lo: int, hi: int) -> Iterator[np.ndarray]:
    """Elements [lo, hi) of the array in chunks of CHUNK_ITEMS, each a read-only view of
    the file mapped just for it (see MappedFile)."""
    size = view.dtype.itemsize
    with MappedFile(
        view.path, view.offset + hi * size, "ends before its header says (truncated?)"
    ) as f:
        for i in range(lo, hi, CHUNK_ITEMS):
            count = min(hi - i, CHUNK_ITEMS)
            mapped, skip = f.map(view.offset + i * size, count * size)
            yield np.frombuffer(mapped, dtype=view.dtype, count=count, offset=skip)


def array_shard(view: ArrayView, rank: int, np_: int) -> Shard[np.ndarray]:
    lo, hi = span(view.count, rank, np_)
    chunks = ((as_numbers(raw, view), raw.nbytes) for raw in read_array(view, lo, hi))
    return Shard(chunks, (hi - lo) * view.dtype.itemsize)


def float_sums(view: ArrayView, rank: int, np_: int) -> Shard[Sums] | None:
    """The rank's part of a float64 array summed chunk by chunk where it lies in the page
    cache (no copy, nothing stored); None for other types (integers are summed exactly by
    numpy, other floats widened first) or without the C kernels."""
    if native.ext is None or view.dtype != np.dtype("=f8") or view.bfloat16:
        return None
    return float64_sums(view.path, view.offset, view.count, rank, np_)


def array_view(data: Data) -> ArrayView:
    path = existing(data)
    if data.format == "npy":
        return npy_view(path)
    if data.format == "npz":
        return npz_view(path, data.column)
    return safetensors_view(path, data.column)
