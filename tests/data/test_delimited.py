"""csv/tsv as real tools write them (RFC 4180): every rank's records, put together, are
exactly what Python's csv module reads, for any np, by the C tokenizer and by the Python
fallback alike; and every error names the file, the line, the column and the field."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlxrun import native
from mlxrun.data import delimited
from mlxrun.data.model import DEFAULT_NULLS, SNIFFED, Data
from mlxrun.data.shards import GUESS
from mlxrun.data.sources import check_data, open_shard, sums_shard
from mlxrun.errors import DataError
from mlxrun.reduce import algebra, worker
from tests.helpers import guessed, parser, shards
from tests.reference import expected

# c-scalar: the C tokenizer with its portable field scanner (what a machine without SSE2
# runs), forced here where SSE2 is there.
PARSERS = ["c", "c-scalar", "python"] if native.ext is not None else ["python"]


def test_a_file_of_quoted_newlines_counts_quotes_instead_of_guessing(tmp_path: Path) -> None:
    from mlxrun.reduce.plan import Plan

    multi, plain = tmp_path / "multi.csv", tmp_path / "plain.csv"
    multi.write_text('note,n\n"two\nlines",1\n"x",2\n')
    plain.write_text('note,n\n"one, line",1\n"x",2\n')
    for path, multiline in ((multi, True), (plain, False)):
        data = check_data(Data(path, "csv", column="n"))
        assert data.quoted_newlines is multiline
        plan = Plan("job", 2, "ring", data, ("sum",), 10)
        assert Plan.from_json(plan.to_json()) == plan
        assert worker.first_guess(plan) == (None if multiline else GUESS)
        assert worker.first_guess(replace(plan, np=1)) is None


def test_the_bounds_that_confirm_guessed_starts() -> None:
    peers = (0, 1, 2)
    assert worker.guesses_confirmed([[0, 10], [10, 20], [20, 30]], peers)
    assert worker.guesses_confirmed([[0, 10], [10, 10], [10, 30]], peers)  # an empty share
    assert not worker.guesses_confirmed([[0, 12], [10, 20], [20, 30]], peers)  # 1 began early
    assert not worker.guesses_confirmed([[0, 10], [10, 25], [20, 30]], peers)
    assert not worker.guesses_confirmed([[0, 10], [-1, -1], [20, 30]], peers)  # 1 failed
    assert not worker.guesses_confirmed([[-1, -1], [10, 20], [20, 30]], peers)
    # Per-host files: only the host's own peers are chained.
    assert worker.guesses_confirmed([[0, 10], [0, 7], [10, 20], [7, 9]], (1, 3))


def summed(data: Data, np_: int) -> tuple[int, object, int]:
    """count, sum and missing as a sum-only job computes them (summed as read)."""
    part = algebra.Partial(needs=frozenset({"count", "sum"}))
    missing = 0
    for r in range(np_):
        shard = sums_shard(data, r, np_)
        assert shard is not None
        for chunk in shard.chunks:
            part.merge(worker.partial_of(chunk))
        missing += shard.missing
    result = algebra.finalize(part, ["count", "sum"]).values
    return result["count"], result["sum"], missing


def error_of(data: Data, np_: int = 1) -> str:
    with pytest.raises(DataError) as e:
        for r in range(np_):
            for _ in open_shard(data, r, np_).chunks:
                pass
    return str(e.value)


def reference(path: Path, delimiter: str, column: str) -> tuple[list[int | float], int]:
    """The column by Python's csv module: its numbers, and how many fields were missing."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = [row for row in csv.reader(f, delimiter=delimiter) if row]
    index = rows[0].index(column)
    values: list[int | float] = []
    missing = 0
    for row in rows[1:]:
        field = row[index].strip(" \t")
        if field in DEFAULT_NULLS:
            missing += 1
        else:
            values.append(int(field) if field.lstrip("+-").isdigit() else float(field))
    return values, missing


number = st.one_of(
    st.integers(-(2**53), 2**53).map(str),
    # Bounded so that no sum passes the float64 maximum (the reference cannot round that).
    st.floats(allow_nan=False, min_value=-1e300, max_value=1e300).map(repr),
)
text = st.lists(st.sampled_from([*'ab ,;|\t"é', "\n", "\r\n"]), max_size=8).map("".join)
target = st.one_of(number, number, number, st.sampled_from(["", "NA", "null"]))


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], list[list[str]], int]:
    ncols = draw(st.integers(1, 4))
    index = draw(st.integers(0, ncols - 1))
    rows = draw(
        st.lists(
            st.tuples(*[target if c == index else text for c in range(ncols)]).map(list),
            max_size=25,
        )
    )
    return [f"c{c}" for c in range(ncols)], rows, index


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    table=tables(),
    delimiter=st.sampled_from(SNIFFED),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]),
    terminator=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
    sniffed=st.booleans(),
    chunk=st.sampled_from([5, 40, delimited.CHUNK_BYTES]),
)
def test_any_csv_reads_as_pythons_csv_module_reads_it_for_any_np(
    tmp_path_factory, table, delimiter, quoting, terminator, bom, sniffed, chunk
) -> None:
    header, rows, index = table
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, quoting=quoting, lineterminator=terminator)
    writer.writerow(header)
    writer.writerows(rows)
    path = tmp_path_factory.mktemp("csv") / "d.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + out.getvalue().encode())
    want, want_missing = reference(path, delimiter, header[index])
    given_delimiter = None if sniffed and len(header) > 1 else delimiter
    data = Data(path, "csv", column=header[index], delimiter=given_delimiter, missing="skip")
    assert check_data(data).delimiter == delimiter
    saved, delimited.CHUNK_BYTES = delimited.CHUNK_BYTES, chunk  # records across windows
    try:
        for name in PARSERS:
            with parser(name):
                for np_ in range(1, 5):
                    for exchange in (False, True):
                        values, missing = shards(data, np_, exchange)
                        assert values == [float(v) for v in want]
                        assert sum(missing) == want_missing
                    values, missing, held = guessed(data, np_)
                    assert values == [float(v) for v in want]
                    assert sum(missing) == want_missing
                    assert held or any("\n" in field for row in rows for field in row)
    finally:
        delimited.CHUNK_BYTES = saved
    if native.ext is not None:
        exact = expected(want, "sum")
        for np_ in range(1, 5):
            assert summed(data, np_) == (len(want), exact, want_missing)


def test_the_issues_files(tmp_path: Path) -> None:
    quoted = tmp_path / "q.csv"
    quoted.write_text('name,amount\nx,"1,000"\ny,"2,000"\n')
    comma = tmp_path / "c.csv"
    comma.write_text('name,amount\n"Smith, J",1000\n"Doe, A","2000"\n')
    bom = tmp_path / "b.csv"
    bom.write_bytes(b"\xef\xbb\xbfvalue\n1\n2\n")
    semicolon = tmp_path / "s.csv"
    semicolon.write_text("id;value\n1;2.5\n2;3\n")
    for name in PARSERS:
        with parser(name):
            assert error_of(Data(quoted, "csv", column="amount")) == (
                f'{quoted}:2: not a number: "1,000" in column amount'
            )
            for np_ in (1, 2, 3):
                assert shards(Data(comma, "csv", column="amount"), np_)[0] == [1000, 2000]
                assert shards(Data(bom, "csv", column="value"), np_)[0] == [1, 2]
                assert shards(Data(semicolon, "csv", column="value"), np_)[0] == [2.5, 3.0]


def test_a_bom_in_a_text_file(tmp_path: Path) -> None:
    path = tmp_path / "n.txt"
    path.write_bytes(b"\xef\xbb\xbf1\n2\n3\n")
    for name in PARSERS:
        with parser(name):
            for np_ in (1, 2, 3):
                assert shards(Data(path, "text"), np_)[0] == [1, 2, 3]


def test_quoted_newlines_across_every_rank_boundary(tmp_path: Path) -> None:
    """Records of many lines, so that most byte boundaries fall inside quotes."""
    path = tmp_path / "notes.csv"
    rows = [[f"note {i}\n" * (i % 7) + '"quoted, twice""', str(i)] for i in range(300)]
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([["note", "n"], *rows])
    guesses = []
    for name in PARSERS:
        with parser(name):
            for np_ in range(1, 9):
                for exchange in (False, True):
                    got = shards(Data(path, "csv", column="n"), np_, exchange)[0]
                    assert got == list(range(300))
                got, _, held = guessed(Data(path, "csv", column="n"), np_)
                assert got == list(range(300))
                guesses.append(held)
    assert not all(guesses)  # the guesses were wrong, and found out, for some np


def test_files_written_by_pandas_and_r(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(
        {
            "species": ["Adelie, a", 'Gentoo "g"', "Chinstrap\nc", None],
            "body_mass_g": [3750.0, None, 3250.5, 4000.0],
            "year": [2007, 2008, 2009, 2009],
        }
    )
    written = tmp_path / "pandas.csv"
    frame.to_csv(written, index=False)  # NaN as an empty field
    r_style = tmp_path / "r.csv"
    r_style.write_text(
        '"species","body_mass_g","year"\n"Adelie",3750,2007\n"Gentoo",NA,2008\n"Chinstrap",3250.5,2009\n'
    )
    excel = tmp_path / "excel.csv"
    with excel.open("w", encoding="utf-8-sig", newline="") as f:
        csv.writer(f, dialect="excel").writerows(
            [["species", "body_mass_g"], ["Adelie, a", "3750"], ["x", ""], ["y", "3250.5"]]
        )
    for path, present in ((written, [3750.0, 3250.5, 4000.0]), (r_style, [3750, 3250.5])):
        for np_ in (1, 2, 3):
            data = Data(path, "csv", column="body_mass_g", missing="skip")
            assert shards(data, np_)[0] == present
    assert shards(Data(excel, "csv", column="body_mass_g", missing="skip"), 2)[0] == [
        3750,
        3250.5,
    ]
    assert shards(Data(written, "csv", column="year"), 2)[0] == [2007, 2008, 2009, 2009]


def test_nan_is_a_value_unless_listed_as_missing(tmp_path: Path) -> None:
    path = tmp_path / "n.csv"
    path.write_text("x\n1\nNaN\nNA\n")
    values, missing = shards(Data(path, "csv", missing="skip"), 1)
    assert values[0] == 1 and math.isnan(values[1]) and missing == [1]
    listed = Data(path, "csv", missing="skip", null_values=("NA", "NaN"))
    assert shards(listed, 1) == ([1], [2])


ERRORS = [
    ('a,dep_delay\nx,1\ny,NA\n', {}, '{path}:3: missing value "NA" in column dep_delay (use --missing skip)'),
    ('a,dep_delay\nx,1\ny,\n', {}, '{path}:3: missing value "" in column dep_delay (use --missing skip)'),
    ('a,dep_delay\nx,"1"\ny,"12,5x"\n', {}, '{path}:3: not a number: "12,5x" in column dep_delay'),
    ('a,dep_delay\nx,1\ny,2.5\n', {"dtype": "int64"}, '{path}:3: not an integer: "2.5" in column dep_delay (dtype is int64)'),
    ('a,dep_delay\nx,99999999999999999999\n', {}, '{path}:2: integer out of the int64 range: "99999999999999999999" in column dep_delay (set dtype = "float64" to sum it as a float)'),
    ('a,dep_delay\nx,1\n5" pipe,2\n', {}, '{path}:3: a stray quote in a field; RFC 4180 wants the whole field quoted and a quote inside it doubled ("a ""b"" c")'),
    ('a,dep_delay\n"x"y,1\n', {}, '{path}:2: a stray quote in a field; RFC 4180 wants the whole field quoted and a quote inside it doubled ("a ""b"" c")'),
    ('a,dep_delay\nx,1\n"y,2\n', {}, "{path}:3: a quoted field opens here and never closes"),
    ('a,dep_delay\nx,1\ny\n', {}, "{path}:3: the record has 1 field; column dep_delay is field 2"),
    ('"dep\ndelay",b\n1,2\n', {}, '{path}: no column "dep_delay" (did you mean "dep\\ndelay"?); columns: dep\\ndelay, b'),
]  # fmt: skip


@pytest.mark.parametrize(("content", "options", "message"), ERRORS)
def test_error_text(tmp_path: Path, content: str, options: dict, message: str) -> None:
    path = tmp_path / "d.csv"
    path.write_text(content)
    for name in PARSERS:
        with parser(name):
            got = error_of(Data(path, "csv", column="dep_delay", **options))
            assert got == message.format(path=path)


@pytest.mark.parametrize(
    ("magic", "kind", "command"),
    [
        (b"\x1f\x8b\x08\x00", "gzip", "gunzip -k"),
        (b"BZh91AY", "bzip2", "bunzip2 -k"),
        (b"\xfd7zXZ\x00\x00", "xz", "unxz -k"),
        (b"\x28\xb5\x2f\xfd\x00", "zstd", "unzstd"),
    ],
)
def test_compressed_files_are_named_not_parsed(tmp_path: Path, magic, kind, command) -> None:
    for name in ("n.txt.gz", "d.csv", "plain.txt"):
        path = tmp_path / name
        path.write_bytes(magic + bytes(range(256)))
        fmt = "csv" if name == "d.csv" else "text"
        want = (
            f"{path}: is {kind}-compressed; decompress it first ({command} {path}), "
            "so that every rank can read its own part"
        )
        with pytest.raises(DataError) as e:
            check_data(Data(path, fmt))
        assert str(e.value) == want
        assert error_of(Data(path, fmt)) == want


def test_sniffing(tmp_path: Path) -> None:
    cases = {
        "a;b\n1,5;2\n": ";",
        "a|b|c\n1|2|3\n": "|",
        "a\tb\n1\t2\n": "\t",
        "a,b\n1,2\n": ",",
        "only\n1\n": ",",
        '"x;y",b\n"1;2",3\n': ",",
    }
    for content, want in cases.items():
        path = tmp_path / "s.csv"
        path.write_text(content)
        assert check_data(Data(path, "csv", column="b" if "b" in content else None)).delimiter == (
            want
        )


def test_a_tsv_and_a_named_delimiter(tmp_path: Path) -> None:
    path = tmp_path / "d.tsv"
    path.write_text('a\tb\n"x\ty"\t1\n')
    assert shards(Data(path, "tsv", column="b"), 2)[0] == [1]
    other = tmp_path / "d.csv"
    other.write_text("a:b\nx:1\ny:2\n")
    assert shards(Data(other, "csv", column="b", delimiter=":"), 2)[0] == [1, 2]
    assert shards(Data(path, "csv", column="b", delimiter="tab"), 1)[0] == [1]


def test_a_record_longer_than_a_chunk(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(delimited, "CHUNK_BYTES", 64)
    path = tmp_path / "long.csv"
    path.write_text("note,n\n" + "".join(f'"{"x" * (50 * i)}\n",{i}\n' for i in range(20)))
    for name in PARSERS:
        with parser(name):
            for np_ in (1, 2, 5):
                assert shards(Data(path, "csv", column="n"), np_)[0] == list(range(20))


def test_a_record_beyond_the_bound_is_an_error_not_unbounded_memory(
    tmp_path: Path, monkeypatch
) -> None:
    # A quote that never closes made every window twice as long, up to the whole file.
    monkeypatch.setattr(delimited, "CHUNK_BYTES", 64)
    monkeypatch.setattr(delimited, "MAX_RECORD_BYTES", 1024)
    path = tmp_path / "broken.csv"
    path.write_text('a,b\n1,2\n"3,4\n' + "5,6\n" * 1000)
    for name in PARSERS:
        with parser(name):
            assert error_of(Data(path, "csv", column="b")) == (
                f"{path}:3: a record longer than 0 MiB (is the quoting broken?)"
            )


def test_python_and_c_agree_on_big_integers_among_floats(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_text("x\n9007199254740993\n0.5\n")
    got = {}
    for name in PARSERS:
        with parser(name):
            got[name] = shards(Data(path, "csv"), 1)[0]
    assert all(v == [float(9007199254740993), 0.5] for v in got.values())
    assert np.float64(9007199254740993) == got[PARSERS[0]][0]


WORKER_RUN = """
import sys
from pathlib import Path
from mlxrun.reduce import worker
from mlxrun.reduce.plan import Plan
from mlxrun.data.model import Data
data = Data(Path(sys.argv[1]), "csv", column="b", delimiter=",", missing="skip")
plan = Plan("job", 1, "ring", data, tuple(sys.argv[2:]), 10)
assert worker.run(plan, worker.Reporter()) == 0
print("numpy" in sys.modules)
"""


@pytest.mark.skipif(native.ext is None, reason="the C extension was not built")
def test_a_csv_sum_job_never_loads_numpy(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "d.csv"
    path.write_text('a,b\n"x, y",1\nz,NA\nw,2.5\n')
    run = [sys.executable, "-c", WORKER_RUN, str(path), "count", "sum", "mean"]
    out = subprocess.run(run, capture_output=True, text=True, check=True).stdout
    assert '"sum": 3.5' in out and '"missing": 1' in out, out
    assert out.splitlines()[-1] == "False"


@pytest.mark.skipif(native.ext is None, reason="the C extension was not built")
@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=5000) | st.just(b'"' * 4099), byte=st.sampled_from(b'"\x00\xff'))
def test_the_quote_count_equals_pythons(data: bytes, byte: int) -> None:
    assert native.ext.count_byte(data, bytes([byte])) == data.count(bytes([byte]))


def outcome(data: Data, np_: int) -> object:
    try:
        return repr(shards(data, np_))  # repr: a NaN equals a NaN
    except DataError as e:
        return str(e)


@pytest.mark.skipif(native.ext is None, reason="the C extension was not built")
@settings(max_examples=150, deadline=None)
@given(
    body=st.lists(st.sampled_from([*'",;\n\r 1.5eNA-', "\r\n", '""', "12", "nan"]), max_size=40),
    chunk=st.sampled_from([3, 16, delimited.CHUNK_BYTES]),
)
def test_c_and_python_agree_on_any_bytes(tmp_path_factory, body, chunk) -> None:
    """Well-formed or not: the same values, or the same error, from both tokenizers."""
    path = tmp_path_factory.mktemp("raw") / "d.csv"
    path.write_text("a,b\n" + "".join(body))
    data = Data(path, "csv", column="b", delimiter=",", missing="skip")
    saved, delimited.CHUNK_BYTES = delimited.CHUNK_BYTES, chunk
    try:
        for np_ in (1, 2, 3):
            with parser("c"):
                in_c = outcome(data, np_)
            with parser("python"):
                assert outcome(data, np_) == in_c
    finally:
        delimited.CHUNK_BYTES = saved


@pytest.mark.skipif(native.ext is None, reason="the C extension is not built")
@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(
        st.sampled_from(["1", "-2.5", "a", ",", ";", '"', '""', "\n", "\r\n", " ", "x" * 70]),
        max_size=60,
    ),
    delimiter=st.sampled_from([",", ";"]),
    column=st.integers(0, 3),
    final=st.booleans(),
    stop=st.integers(0, 400),
)
def test_the_simd_and_portable_field_scanners_agree(pieces, delimiter, column, final, stop) -> None:
    """Any bytes, with fields longer than a 64-byte block and boundaries at any offset of
    one: csv_column answers the same with either scanner, when summing and when storing."""
    src = "".join(pieces).encode()
    nulls = (b"", b"NA")
    answers = []
    saved = native.ext.use_simd(True)
    try:
        for simd in (True, False):
            native.ext.use_simd(simd)
            for store in (False, True):
                n = len(src) // 2 + 1
                floats, ints = (np.zeros(n), np.zeros(n, np.int64)) if store else (None, None)
                high, low = native.empty_bins(), native.empty_bins()
                got = native.ext.csv_column(
                    src,
                    stop,
                    final,
                    delimiter.encode(),
                    column,
                    nulls,
                    True,
                    floats,
                    ints,
                    high,
                    low,
                )
                stored = (floats[: got[2]].tolist(), ints[: got[2]].tolist()) if store else None
                answers.append((store, got, list(high), list(low), stored))
    finally:
        native.ext.use_simd(saved)
    simd_answers, portable_answers = answers[:2], answers[2:]
    assert simd_answers == portable_answers


def test_mlxrun_no_simd_forces_the_portable_scanner() -> None:
    import os
    import subprocess
    import sys

    probe = "from mlxrun import native; print(native.ext.use_simd(True) if native.ext else None)"
    for env, shown in (({"MLXRUN_NO_SIMD": "1"}, "False"), ({}, "True")):
        out = subprocess.run(
            [sys.executable, "-c", probe],
            env={**{k: v for k, v in os.environ.items() if k != "MLXRUN_NO_SIMD"}, **env},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert out in (shown, "None")
