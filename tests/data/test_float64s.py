"""data.float64s: the .npy header read without numpy, against numpy's own writer, and a
float64 .npy summed without numpy, in-process and in a real job, exactly as the numpy
path sums it."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from mlxrun import native
from mlxrun.data import sources
from mlxrun.data.float64s import plain_float64
from mlxrun.data.model import Data
from mlxrun.errors import DataError


def written(tmp_path: Path, array: np.ndarray, version: tuple[int, int] | None = None) -> Path:
    path = tmp_path / f"a{len(list(tmp_path.iterdir()))}.npy"
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, version=version)
    path.write_bytes(buf.getvalue())
    return path


@pytest.mark.parametrize("version", [None, (1, 0), (2, 0), (3, 0)])
@pytest.mark.parametrize("shape", [(), (0,), (5,), (3, 4), (2, 0, 7)])
def test_the_header_of_any_float64_npy_is_read_as_numpy_reads_it(
    tmp_path: Path, version: tuple[int, int] | None, shape: tuple[int, ...]
) -> None:
    a = np.arange(math.prod(shape), dtype=np.float64).reshape(shape)
    for array in (a, np.asfortranarray(a)):
        path = written(tmp_path, array, version)
        mapped = np.load(path, mmap_mode="r")
        assert plain_float64(path) == (mapped.offset, mapped.size)


@pytest.mark.parametrize(
    "array",
    [
        np.ones(3, "<f4"),
        np.ones(3, ">f8"),
        np.ones(3, "<i8"),
        np.array([1, "a"], dtype=object),
        np.zeros(2, dtype=[("x", "<f8")]),
        np.ones(3, "<c16"),
    ],  # fmt: skip
)
def test_anything_else_goes_to_numpy(tmp_path: Path, array: np.ndarray) -> None:
    path = tmp_path / "a.npy"
    np.save(path, array, allow_pickle=True)
    assert plain_float64(path) is None


@pytest.mark.parametrize(
    "raw",
    [b"", b"\x93NUMPY", b"\x93NUMPY\x01\x00\xff\xff{", b"\x93NUMPX\x01\x00\x10\x00" + b" " * 16,
     b"\x93NUMPY\x01\x00\x20\x00{'descr': '<f8', 'shape': (True,)}       ",
     b"\x93NUMPY\x01\x00\x10\x00__import__('os')",  b"\x93NUMPY\x09\x00\x10\x00" + b" " * 16],
)  # fmt: skip
def test_a_header_it_does_not_know_goes_to_numpy(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "bad.npy"
    path.write_bytes(raw)
    assert plain_float64(path) is None


def exact_total(shard: object) -> Fraction:
    total = Fraction(0)
    for sums in shard.chunks:  # type: ignore[attr-defined]
        for e, (h, lo) in enumerate(zip(sums.high, sums.low, strict=True)):
            total += Fraction(h * 2**32 + lo) * Fraction(2) ** (max(e, 1) - 1075)
    return total


@pytest.mark.skipif(native.ext is None, reason="the C kernel bins the values")
def test_sums_without_numpy_are_exact_for_every_np(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    n = 3_000_001  # three chunks and a bit
    x = rng.standard_normal(n) * 2.0 ** rng.integers(-60, 60, n)
    x[::1000] = 0.0
    path = written(tmp_path, x)
    exact = sum(map(Fraction, x.tolist()), Fraction(0))
    for np_ in (1, 2, 3):
        shards = [sources.sums_shard(Data(path, "npy"), rank, np_) for rank in range(np_)]
        assert sum(s.bytes_total for s in shards) == 8 * n  # type: ignore[union-attr]
        assert sum(exact_total(s) for s in shards) == exact
    job = subprocess.run(
        [sys.executable, "-m", "mlxrun", "sum", "--np", "2", "--json", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert job.returncode == 0, job.stderr
    assert json.loads(job.stdout)["results"]["sum"] == float(exact)


@pytest.mark.skipif(native.ext is None, reason="the C kernel bins the values")
def test_neither_the_check_nor_the_sum_imports_numpy(tmp_path: Path) -> None:
    path = written(tmp_path, np.arange(10.0))
    probe = (
        "import sys; from pathlib import Path; from mlxrun.data import sources;"
        "from mlxrun.data.model import Data; d = Data(Path(sys.argv[1]), 'npy');"
        "sources.check_data(d); s = sources.sums_shard(d, 0, 1);"
        "print(sum(x.n for x in s.chunks), 'numpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True)
    assert out.stdout.split() == ["10", "False"], out.stderr


@pytest.mark.skipif(native.ext is None, reason="the C kernel bins the values")
def test_a_truncated_file_is_named_as_before(tmp_path: Path) -> None:
    path = written(tmp_path, np.arange(1000.0))
    path.write_bytes(path.read_bytes()[:-8])
    shard = sources.sums_shard(Data(path, "npy"), 1, 2)
    with pytest.raises(DataError) as e:
        list(shard.chunks)  # type: ignore[union-attr]
    assert str(e.value) == f"{path}: ends before its header says (truncated?)"
