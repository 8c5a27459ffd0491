"""Sharding and parsing of every data source, without processes: each rank's
part, put together, must be exactly the whole data, in order, for any N."""

from __future__ import annotations

import json
import os
import shutil
import struct
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlxrun import native
from mlxrun.data import arrays, shards, sources, text
from mlxrun.data.model import Data, Generate
from mlxrun.data.sources import open_shard
from mlxrun.errors import DataError
from mlxrun.reduce import kernels
from mlxrun.reduce.ops import SUM_OPS
from tests.helpers import PARSERS, parser

NATIVE = pytest.mark.skipif(native.ext is None, reason="the C extension was not built")


def shard_values(data: Data, np_: int) -> list[list[float]]:
    return [[*np.concatenate([np.zeros(0), *open_shard(data, r, np_).chunks])] for r in range(np_)]


def flat(parts: list[list[float]]) -> list[float]:
    return [v for part in parts for v in part]


number = st.one_of(
    st.integers(-(2**63), 2**63 - 1).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)
line = st.one_of(
    st.lists(number, min_size=1, max_size=4).map(" ".join),
    st.lists(number, min_size=2, max_size=3).map(",".join),
    st.just(""),
    st.just("# a comment"),
    number.map(lambda n: f"{n}  # trailing comment"),
)


@settings(max_examples=150, deadline=None)
@given(
    lines=st.lists(line, max_size=40),
    final_newline=st.booleans(),
    joiner=st.sampled_from(["\n", " ", "\r\n"]),
    chunk=st.sampled_from([32, 64, shards.CHUNK_BYTES]),
)
def test_text_shards_partition_the_tokens_for_any_np(
    tmp_path_factory, lines, final_newline, joiner, chunk
) -> None:
    # joiner " " makes one long line (comments then run to its end); chunks of 32 and 64
    # bytes make lines longer than a chunk, cut after a separator.
    path = tmp_path_factory.mktemp("t") / "data.txt"
    text = joiner.join(lines) + ("\n" if final_newline and lines else "")
    path.write_text(text, newline="")
    expected = [
        float(tok) for ln in text.split("\n") for tok in ln.split("#")[0].replace(",", " ").split()
    ]
    data = Data(path, "text")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(shards, "CHUNK_BYTES", chunk)
        for np_ in range(1, 8):
            ranges = [shards.text_range(path, r, np_) for r in range(np_)]
            assert ranges[0][0] == 0 and ranges[-1][1] == len(text.encode())
            assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
            for name in PARSERS:
                with parser(name):
                    assert flat(shard_values(data, np_)) == expected


@settings(max_examples=100, deadline=None)
@given(
    lines=st.lists(st.text("0123456789. ", max_size=30), max_size=30),
    chunk=st.integers(32, 64),
    pad=st.integers(0, 5000),
    final_newline=st.booleans(),
)
def test_read_text_maps_whole_tokens_from_any_offset(
    tmp_path_factory, lines, chunk, pad, final_newline
) -> None:
    # Small chunks: lines longer than a chunk, and mappings that start mid-page.
    body = ("\n".join(lines) + ("\n" if final_newline and lines else "")).encode()
    path = tmp_path_factory.mktemp("r") / "lines.txt"
    path.write_bytes(b"#" * pad + body)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(shards, "CHUNK_BYTES", chunk)
        got = [(bytes(v), offset) for v, offset in shards.read_text(path, pad, pad + len(body))]
    assert b"".join(part for part, _ in got) == body
    assert [offset for _, offset in got] == [
        pad + sum(len(p) for p, _ in got[:i]) for i in range(len(got))
    ]
    assert all(len(part) <= chunk and part[-1:] in (b"\n", b" ") for part, _ in got[:-1])


def test_one_long_line_is_shared_evenly_and_read_in_bounded_chunks(tmp_path: Path) -> None:
    path = tmp_path / "line.txt"
    numbers = [f"{i * 0.37 - 900:.6f}" for i in range(20000)]
    path.write_text(" ".join(numbers) + "  # a comment 1 2 3 " + "9 " * 5000 + "\n4 5\n")
    expected = [float(n) for n in numbers] + [4.0, 5.0]
    size = path.stat().st_size
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(shards, "CHUNK_BYTES", 4096)
        for np_ in (2, 3, 4):
            ranges = [shards.text_range(path, r, np_) for r in range(np_)]
            widths = [hi - lo for lo, hi in ranges]
            # Even up to a token, except where an edge fell in the comment (to its line's end).
            assert max(widths[:-1]) - min(widths[:-1]) < 40 or ranges[-1][0] > size - 10
            chunks = [bytes(c) for r in range(np_) for c, _ in shards.read_text(path, *ranges[r])]
            assert max(map(len, chunks)) <= 4096
            assert [float(t) for c in chunks for t in c.split(b"#")[0].split()] == expected
            for name in PARSERS:
                with parser(name):
                    assert flat(shard_values(Data(path, "text"), np_)) == expected


def test_a_token_longer_than_a_chunk_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "long.txt"
    path.write_text("1 2\n3 " + "7" * 200 + " 4\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(shards, "CHUNK_BYTES", 64)
        with pytest.raises(DataError) as e:
            list(shards.read_text(path, 0, path.stat().st_size))
    assert str(e.value) == f"{path}:2: a token longer than 64 bytes: not a number"


def test_a_file_cut_short_while_sharded_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.txt"
    path.write_text("1\n2\n3\n")
    with pytest.raises(DataError, match="shorter than when the job started"):
        list(shards.read_text(path, 0, 100))


def test_more_ranks_than_lines_get_empty_shards(tmp_path: Path) -> None:
    path = tmp_path / "two.txt"
    path.write_text("1\n2\n")
    parts = shard_values(Data(path, "text"), 5)
    assert flat(parts) == [1, 2] and sum(1 for p in parts if not p) == 3


def test_integers_stay_int64_and_floats_float64(tmp_path: Path) -> None:
    path = tmp_path / "d.txt"
    path.write_text(f"{2**63 - 1}\n-{2**63}\n")
    (chunk,) = open_shard(Data(path, "text"), 0, 1).chunks
    assert chunk.dtype == np.int64 and chunk.tolist() == [2**63 - 1, -(2**63)]


def error_of(data: Data, np_: int) -> str:
    with pytest.raises(DataError) as e:
        for r in range(np_):
            list(open_shard(data, r, np_).chunks)
    return str(e.value)


@pytest.mark.parametrize("name", PARSERS)
def test_a_bad_token_names_file_line_and_word(tmp_path: Path, name: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("".join(f"{i}\n" for i in range(1000)) + "12,5x\n7\n")
    with parser(name):
        for np_ in (1, 2, 3):
            assert error_of(Data(path, "text"), np_) == f'{path}:1001: not a number: "12,5x"'


@pytest.mark.parametrize("name", PARSERS)
@pytest.mark.parametrize(("first_line", "first"), [("1", 1.0), ("1.5  # then 2e400", 1.5)])
def test_an_integer_beyond_int64_says_what_to_do(
    tmp_path: Path, name: str, first_line: str, first: float
) -> None:
    # Also where the chunk holds a float (and a comment) before the integer.
    path = tmp_path / "big.txt"
    path.write_text(f"{first_line}\n{2**64}\n")
    with parser(name):
        assert error_of(Data(path, "text"), 1) == (
            f'{path}:2: integer out of the int64 range: "{2**64}" (set dtype = "float64" to sum it as a float)'
        )
        assert flat(shard_values(Data(path, "text", dtype="float64"), 2)) == [first, float(2**64)]


def test_dtype_int64_rejects_a_float(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_text("1\n2.5\n")
    assert (
        error_of(Data(path, "text", dtype="int64"), 1)
        == f'{path}:2: not an integer: "2.5" (dtype is int64)'
    )


CSV = "id,name,price\n1,a,2.5\n2,b,3.25\n3,c,-1\n4,d,10\n"


@pytest.mark.parametrize("column", ["price", 2, "2"])
@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_csv_and_tsv_columns_by_name_and_index(tmp_path: Path, column, fmt: str) -> None:
    path = tmp_path / f"d.{fmt}"
    path.write_text(CSV if fmt == "csv" else CSV.replace(",", "\t"))
    for np_ in range(1, 7):
        assert flat(shard_values(Data(path, fmt, column=column), np_)) == [2.5, 3.25, -1, 10]


def test_csv_errors(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text(CSV + "5,e,n/a\n")
    assert error_of(Data(path, "csv", column="price"), 2) == (
        f'{path}:6: not a number: "n/a" in column price'
    )
    assert error_of(Data(path, "csv", column="prise"), 1) == (
        f'{path}: no column "prise" (did you mean "price"?); columns: id, name, price'
    )
    assert (
        error_of(Data(path, "csv"), 1)
        == f"{path}: has columns id, name, price: choose one with --column or data.column"
    )
    assert (
        error_of(Data(path, "csv", column=7), 1)
        == f"{path}: no column 7 (it has 3: id, name, price)"
    )


def test_npy_row_ranges(tmp_path: Path) -> None:
    path = tmp_path / "a.npy"
    a = np.random.default_rng(1).standard_normal((101, 3))
    np.save(path, a)
    for np_ in range(1, 6):
        assert flat(shard_values(Data(path, "npy"), np_)) == a.ravel().tolist()
    np.save(path, np.arange(10, dtype=np.int32))
    (chunk,) = open_shard(Data(path, "npy"), 0, 1).chunks
    assert chunk.dtype == np.int64


def test_npz_member(tmp_path: Path) -> None:
    path = tmp_path / "a.npz"
    np.savez(path, x=np.arange(7.0), y=np.arange(3))
    assert flat(shard_values(Data(path, "npz", column="x"), 3)) == list(range(7))
    assert (
        error_of(Data(path, "npz"), 1)
        == f"{path}: holds arrays x, y: choose one with --column or data.column"
    )
    np.savez_compressed(path, x=np.arange(7.0))
    assert error_of(Data(path, "npz"), 1) == (
        f"{path}: array x is compressed; save it with np.savez (not savez_compressed)"
    )


def write_safetensors(path: Path, tensors: dict[str, tuple[str, bytes, list[int]]]) -> None:
    header, offset, blobs = {}, 0, b""
    for name, (dtype, raw, shape) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs += raw
    h = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h)) + h + blobs)


def test_safetensors_tensors_including_bfloat16(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    w = np.array([1.5, -2.0, 3.25], dtype=np.float32)
    bf16 = (w.view(np.uint32) >> 16).astype(np.uint16)  # these values are exact in bfloat16
    write_safetensors(path, {"w": ("F32", w.tobytes(), [3]), "b": ("BF16", bf16.tobytes(), [3])})
    assert flat(shard_values(Data(path, "safetensors", column="w"), 2)) == [1.5, -2.0, 3.25]
    assert flat(shard_values(Data(path, "safetensors", column="b"), 2)) == [1.5, -2.0, 3.25]


@pytest.mark.parametrize("distribution", ["normal", "uniform", "integers"])
def test_generated_data_is_the_same_for_any_np(distribution: str) -> None:
    data = Data(None, "generated", generate=Generate("random", 2_500_000, 5, distribution))
    whole = flat(shard_values(data, 1))
    assert len(whole) == 2_500_000
    for np_ in (2, 3):
        assert flat(shard_values(data, np_)) == whole


def test_generated_range() -> None:
    data = Data(None, "generated", generate=Generate("range", 10, start=5))
    assert flat(shard_values(data, 3)) == list(range(5, 15))


def assert_summed_as_read_like_stored(data: Data, rank: int, np_: int) -> None:
    """A rank's shard summed as it is read gives the count/sum/mean state, NaNs and
    infinities included, of the same shard read into arrays and then summed."""
    from mlxrun.reduce import algebra as reductions
    from mlxrun.reduce.worker import partial_of

    stored = reductions.Partial(needs=SUM_OPS)
    for chunk in open_shard(data, rank, np_).chunks:
        kernels.add_chunk(stored, chunk)
    shard = sources.sums_shard(data, rank, np_)
    assert shard is not None
    summed = reductions.Partial(needs=SUM_OPS)
    for s in shard.chunks:
        summed.merge(partial_of(s))
    ops = sorted(SUM_OPS)
    assert repr(reductions.finalize(summed, ops).values) == repr(
        reductions.finalize(stored, ops).values
    )
    specials = ("nan_count", "posinf_count", "neginf_count")
    assert [getattr(summed, k) for k in specials] == [getattr(stored, k) for k in specials]


@NATIVE
@settings(max_examples=150, deadline=None)
@given(lines=st.lists(line, max_size=40))
def test_summing_while_parsing_equals_parsing_then_summing(tmp_path_factory, lines) -> None:
    path = tmp_path_factory.mktemp("s") / "data.txt"
    path.write_text("\n".join(lines) + "\n")
    for np_ in (1, 3):
        for rank in range(np_):
            assert_summed_as_read_like_stored(Data(path, "text"), rank, np_)


@NATIVE
def test_summing_while_parsing_names_a_bad_token_the_same_way(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("1\n2\n12,5x\n")
    with pytest.raises(DataError) as e:
        list(text.text_sums(Data(path, "text"), 0, 1).chunks)
    assert str(e.value) == f'{path}:3: not a number: "12,5x"'


@NATIVE
def test_a_sum_only_job_sums_while_parsing(tmp_path: Path, monkeypatch) -> None:
    from mlxrun.reduce import worker
    from mlxrun.reduce.plan import Plan

    path = tmp_path / "d.txt"
    path.write_text("1 2\n3.5\n")

    def no_arrays(*args: object) -> None:
        raise AssertionError("a count/sum/mean job must not store the numbers")

    monkeypatch.setattr(worker, "open_shard", no_arrays)
    plan = Plan("job", 1, "ring", Data(path, "text"), ("sum", "mean"), 10)
    local = worker.reduce_shard(plan, worker.Share.whole(plan, 0), worker.Reporter())
    part, nbytes = local.part, local.nbytes
    assert (part.count, nbytes) == (3, path.stat().st_size)
    assert worker.algebra.finalize(part, ["sum", "mean"]).values["sum"] == 6.5


WORKER_RUN = """
import sys
from pathlib import Path
from mlxrun.reduce import worker
from mlxrun.reduce.plan import Plan
from mlxrun.data.model import Data
plan = Plan("job", 1, "ring", Data(Path(sys.argv[1]), "text"), tuple(sys.argv[2:]), 10)
assert worker.run(plan, worker.Reporter()) == 0
print("numpy" in sys.modules)
"""


@NATIVE
def test_a_sum_only_worker_never_loads_numpy(tmp_path: Path) -> None:
    # Loading numpy is 0.1-0.15 s of every rank's start: a whole 1-rank worker run (real
    # MLX group, real collectives) in a fresh interpreter shows whether it was loaded.
    import subprocess
    import sys

    path = tmp_path / "d.txt"
    path.write_text("1\n2.5\n-3\n")

    def loads_numpy(*ops: str) -> bool:
        run = [sys.executable, "-c", WORKER_RUN, str(path), *ops]
        out = subprocess.run(run, capture_output=True, text=True, check=True).stdout
        assert '"sum": 0.5' in out or "sum" not in ops, out
        return out.splitlines()[-1] == "True"

    assert not loads_numpy("count", "sum", "mean")
    assert loads_numpy("sum", "min")  # extremes are found by numpy


float64s = st.one_of(
    st.floats(width=64),  # NaN and both infinities included
    st.sampled_from([1e308, -1e308, 5e-324, -0.0, 2.0**53 + 2]),
)


@NATIVE
@settings(max_examples=60, deadline=None)
@given(xs=st.lists(float64s, max_size=50), fmt=st.sampled_from(["<f8", ">f8"]))
def test_summing_arrays_as_read_equals_reading_then_summing(tmp_path_factory, xs, fmt) -> None:
    path = tmp_path_factory.mktemp("a") / "a.npy"
    np.save(path, np.array(xs, dtype=fmt))
    for np_ in (1, 3):
        for rank in range(np_):
            if fmt == ">f8":  # not this machine's byte order: read as values, then summed
                assert sources.sums_shard(Data(path, "npy"), rank, np_) is None
            else:
                assert_summed_as_read_like_stored(Data(path, "npy"), rank, np_)


@NATIVE
def test_a_truncated_array_is_an_error_when_summed_as_read(tmp_path: Path) -> None:
    path = tmp_path / "cut.npy"
    np.save(path, np.arange(100_000, dtype=np.float64))
    path.write_bytes(path.read_bytes()[:-8])  # its last value is gone
    with pytest.raises(DataError) as e:
        list(sources.sums_shard(Data(path, "npy"), 1, 2).chunks)  # type: ignore[union-attr]
    assert str(e.value) == f"{path}: ends before its header says (truncated?)"


def test_what_is_summed_as_read(tmp_path: Path) -> None:
    np.save(tmp_path / "f.npy", np.ones(3))
    np.save(tmp_path / "i.npy", np.ones(3, dtype=np.int64))
    np.save(tmp_path / "s.npy", np.ones(3, dtype=np.float32))
    built = native.ext is not None
    assert (sources.sums_shard(Data(tmp_path / "f.npy", "npy"), 0, 1) is not None) == built
    assert sources.sums_shard(Data(tmp_path / "i.npy", "npy"), 0, 1) is None  # numpy: exact
    assert sources.sums_shard(Data(tmp_path / "s.npy", "npy"), 0, 1) is None  # widened first


@NATIVE
def test_arrays_summed_as_read_across_chunks_are_exact(tmp_path: Path) -> None:
    import math

    from mlxrun.reduce import algebra as reductions
    from mlxrun.reduce.worker import partial_of

    xs = np.random.default_rng(3).standard_normal(2 * arrays.CHUNK_ITEMS + 12345) * 1e6
    path = tmp_path / "big.npy"
    np.save(path, xs)
    for np_ in (1, 2):
        state = reductions.Partial(needs=SUM_OPS)
        for rank in range(np_):
            shard = sources.sums_shard(Data(path, "npy"), rank, np_)
            assert shard is not None
            for s in shard.chunks:
                state.merge(partial_of(s))
        assert state.count == len(xs)
        assert reductions.finalize(state, ["sum"]).values["sum"] == math.fsum(xs.tolist())


@NATIVE
def test_a_sum_only_job_sums_float64_arrays_as_read(tmp_path: Path, monkeypatch) -> None:
    from mlxrun.reduce import worker
    from mlxrun.reduce.plan import Plan

    path = tmp_path / "d.npy"
    np.save(path, np.array([1.0, 2.0, 3.5]))

    def no_arrays(*args: object) -> None:
        raise AssertionError("a count/sum/mean job of float64 must not copy the values")

    monkeypatch.setattr(worker, "open_shard", no_arrays)
    plan = Plan("job", 1, "ring", Data(path, "npy"), ("sum", "mean"), 10)
    local = worker.reduce_shard(plan, worker.Share.whole(plan, 0), worker.Reporter())
    part, nbytes = local.part, local.nbytes
    assert (part.count, nbytes) == (3, 24)
    assert worker.algebra.finalize(part, ["sum", "mean"]).values["sum"] == 6.5


C_COMPILER = shutil.which((sysconfig.get_config_var("CC") or "cc").split()[0])


@pytest.mark.skipif(C_COMPILER is None, reason="no C compiler: the numpy fallbacks serve")
@pytest.mark.skipif(
    os.environ.get("MLXRUN_NO_NATIVE") == "1", reason="MLXRUN_NO_NATIVE=1: the pure paths"
)
def test_the_c_kernels_are_built_where_a_compiler_is() -> None:
    # They are optional at install time, so a compile error would otherwise only show as
    # skipped parser tests and a slower mlxrun.
    assert native.ext is not None


@NATIVE
def test_unaligned_float64_members_are_summed_exactly(tmp_path: Path) -> None:
    # np.savez stores members unaligned (the shipped arrays.npz has one at offset 189):
    # the kernel must not load a uint64_t through a misaligned pointer (UBSan's check,
    # run by tools/sanitize.sh in make test).
    import math

    from mlxrun.reduce import algebra
    from mlxrun.reduce.worker import partial_of

    xs = np.random.default_rng(5).standard_normal(1001)
    path = tmp_path / "u.npz"
    np.savez(path, a=xs)
    assert arrays.npz_view(path, "a").offset % 8 != 0
    shard = sources.sums_shard(Data(path, "npz", column="a"), 0, 1)
    assert shard is not None
    state = algebra.Partial(needs=SUM_OPS)
    for s in shard.chunks:
        state.merge(partial_of(s))
    assert algebra.finalize(state, ["sum"]).values["sum"] == math.fsum(xs.tolist())
