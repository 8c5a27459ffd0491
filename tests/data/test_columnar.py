"""Parquet and Arrow IPC files through pyarrow: row groups (record batches) shared by rows,
one column, nulls as --missing says, and the same exact answers for every np."""

from __future__ import annotations

import decimal
import math
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlxrun.data.model import Data
from mlxrun.data.sources import check_data, open_shard
from mlxrun.errors import DataError
from mlxrun.reduce import algebra, kernels
from tests.reference import expected

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

BIG = 2**63 - 5


def reduce(data: Data, np_: int, ops: tuple[str, ...] = ("count", "sum")) -> dict:
    """The job's answer as the ranks compute it, and the values skipped as missing."""
    whole = algebra.Partial(needs=frozenset(ops))
    missing, counts = 0, []
    for r in range(np_):
        shard = open_shard(data, r, np_)
        part = algebra.Partial(needs=frozenset(ops))
        for chunk in shard.chunks:
            kernels.add_chunk(part, chunk)
        whole.merge(part)
        counts.append(part.count)
        missing += shard.missing
    return {**algebra.finalize(whole, list(ops)).values, "missing": missing, "counts": counts}


def table() -> object:
    ints = [BIG, BIG, None, -3, BIG, 7] * 10
    floats = [0.1, None, 1e300, -1e300, 2.5, 1e-300] * 10
    return pa.table(
        {
            "i": pa.array(ints, pa.int64()),
            "f": pa.array(floats, pa.float64()),
            "f32": pa.array([1.5, 2.25, None, 0.1, 3.0, 4.0] * 10, pa.float32()),
            "d": pa.array(
                [decimal.Decimal("1.10"), None, decimal.Decimal("-2.25")] * 20, pa.decimal128(10, 2)
            ),  # fmt: skip
            "d0": pa.array(
                [decimal.Decimal(10**20), decimal.Decimal(1)] * 30, pa.decimal128(38, 0)
            ),
            "cat": pa.array([3, 1, 2] * 20, pa.int16()).dictionary_encode(),
            "name": pa.array(["x"] * 60),
        }
    )


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    t = table()
    out = {}
    for sizes in ([7] * 8 + [4], [1, 59], [25, 5, 30]):  # row groups of different sizes
        path = tmp_path / f"t{sizes[0]}-{len(sizes)}.parquet"
        with pq.ParquetWriter(path, t.schema) as w:
            start = 0
            for n in sizes:
                w.write_table(t.slice(start, n), row_group_size=n)
                start += n
        assert [
            pq.ParquetFile(path).metadata.row_group(g).num_rows for g in range(len(sizes))
        ] == sizes
        out[path.stem] = path
    arrow = tmp_path / "t.arrow"
    with pa.ipc.new_file(arrow, t.schema) as w:
        for start in range(0, 60, 13):
            w.write_batch(t.slice(start, 13).to_batches()[0])
    out["arrow"] = arrow
    return out


def test_exact_sums_past_2_63_the_same_for_every_np(files: dict[str, Path]) -> None:
    ints = [BIG, BIG, -3, BIG, 7] * 10
    floats = [0.1, 1e300, -1e300, 2.5, 1e-300] * 10
    for path in files.values():
        fmt = "arrow" if path.suffix == ".arrow" else "parquet"
        for np_ in range(1, 5):
            got = reduce(Data(path, fmt, column="i", missing="skip"), np_)
            assert got["sum"] == sum(ints) and got["count"] == 50 and got["missing"] == 10
            got = reduce(Data(path, fmt, column="f", missing="skip"), np_, ("sum", "mean"))
            assert got["sum"] == math.fsum(floats)
            assert got["missing"] == 10


def test_groups_are_balanced_by_rows(files: dict[str, Path]) -> None:
    counts = reduce(Data(files["t7-9"], "parquet", column="cat"), 4)["counts"]
    assert sum(counts) == 60 and max(counts) - min(counts) <= 7


def test_types(files: dict[str, Path]) -> None:
    path = files["t25-3"]
    assert reduce(Data(path, "parquet", column="cat"), 3)["sum"] == 120
    assert reduce(Data(path, "parquet", column="f32", missing="skip"), 2)["sum"] == math.fsum(
        [1.5, 2.25, float(pa.scalar(0.1, pa.float32()).as_py()), 3.0, 4.0] * 10
    )
    assert reduce(Data(path, "parquet", column="d", missing="skip"), 2)["sum"] == math.fsum(
        [1.1, -2.25] * 20
    )
    with pytest.raises(DataError) as e:
        reduce(Data(path, "parquet", column="d0"), 2)
    assert str(e.value) == (
        f'{path}: integer out of the int64 range: "100000000000000000000" in column d0 '
        '(set dtype = "float64" to sum it as a float)'
    )
    assert reduce(Data(path, "parquet", column="d0", dtype="float64"), 2)["sum"] == 30 * (1e20 + 1)


def test_errors(files: dict[str, Path], tmp_path: Path) -> None:
    path = files["t7-9"]
    with pytest.raises(DataError) as e:
        reduce(Data(path, "parquet", column="i"), 2)
    assert str(e.value) == f"{path}: row 3: missing value (null) in column i (use --missing skip)"
    with pytest.raises(DataError) as e:
        check_data(Data(path, "parquet", column="nmae"))
    assert str(e.value) == (
        f'{path}: no column "nmae" (did you mean "name"?); columns: i, f, f32, d, d0, cat, name'
    )
    with pytest.raises(DataError) as e:
        check_data(Data(path, "parquet", column="name"))
    assert str(e.value) == f"{path}: column name holds string, not numbers"
    fake = tmp_path / "x.parquet"
    fake.write_text("1\n2\n")
    with pytest.raises(DataError) as e:
        check_data(Data(fake, "parquet", column="i"))
    assert str(e.value) == f"{fake}: not a Parquet file"


def test_without_pyarrow_the_error_names_the_extra(files: dict[str, Path]) -> None:
    code = (
        "import sys; sys.modules['pyarrow'] = None\n"  # as if it were not installed
        "from pathlib import Path\n"
        "from mlxrun.data.model import Data\n"
        "from mlxrun.data.sources import check_data\n"
        "from mlxrun.errors import DataError\n"
        f"try:\n    check_data(Data(Path({str(files['t7-9'])!r}), 'parquet', column='i'))\n"
        "except DataError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == (
        f"{files['t7-9']}: reading Parquet files needs pyarrow: "
        "pip install 'mlxrun[parquet]' (or pyarrow)\n"
    )


@settings(max_examples=25, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), max_size=60),
    floats=st.lists(st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)), max_size=60),
    group=st.integers(1, 20),
)  # fmt: skip
def test_any_parquet_gives_the_same_exact_answer_for_every_np(
    tmp_path_factory, values, floats, group
) -> None:
    path = tmp_path_factory.mktemp("pq") / "t.parquet"
    floats = (floats + [0.0] * len(values))[: len(values)]
    t = pa.table({"i": pa.array(values, pa.int64()), "f": pa.array(floats, pa.float64())})
    pq.write_table(t, path, row_group_size=group)
    ints = [v for v in values if v is not None]
    present = [v for v in floats if v is not None]
    for np_ in range(1, 5):
        got = reduce(Data(path, "parquet", column="i", missing="skip"), np_)
        assert (got["sum"], got["count"], got["missing"]) == (
            sum(ints),
            len(ints),
            len(values) - len(ints),
        )
        got = reduce(Data(path, "parquet", column="f", missing="skip"), np_)
        assert got["sum"] == expected(present, "sum") and got["count"] == len(present)
