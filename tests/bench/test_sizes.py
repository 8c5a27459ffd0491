"""The arithmetic of `mlxrun bench`: sizes, counts, busbw factors (no processes)."""

from __future__ import annotations

import pytest

from mlxrun.bench.sizes import (
    ITEMSIZE,
    OPS,
    array_bytes,
    busbw_factor,
    check_modulus,
    counts,
    parse_size,
    show_size,
    size_series,
)
from mlxrun.bench.spec import BenchSpec, bench_spec, first_rank_per_host, pick, tcp_pair
from mlxrun.errors import UsageError


@pytest.mark.parametrize("np_", range(2, 17))
def test_busbw_factors_are_nccl_tests_for_every_op_and_np(np_: int) -> None:
    want = {
        "all_sum": 2 * (np_ - 1) / np_,
        "all_max": 2 * (np_ - 1) / np_,
        "all_min": 2 * (np_ - 1) / np_,
        "all_gather": (np_ - 1) / np_,
        "sum_scatter": (np_ - 1) / np_,
        "send_recv": 1.0,
    }
    assert {op: busbw_factor(op, np_) for op in OPS} == want


def test_two_ranks_factors_by_hand() -> None:
    assert (busbw_factor("all_sum", 2), busbw_factor("all_gather", 2)) == (1.0, 0.5)
    assert (busbw_factor("all_sum", 4), busbw_factor("sum_scatter", 4)) == (1.5, 0.75)
    with pytest.raises(ValueError):
        busbw_factor("all_reduce", 2)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("8", 8),
        ("1K", 1024),
        ("1k", 1024),
        ("64M", 64 * 1024**2),
        ("1G", 1024**3),
        ("2KB", 2048),
        ("4KiB", 4096),
        (" 16 M ", 16 * 1024**2),
    ],
)
def test_sizes_are_powers_of_1024(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "1.5K", "K", "-1", "1X", "1 000"])
def test_a_size_that_is_not_one_is_named(text: str) -> None:
    with pytest.raises(UsageError, match="-b: not a size"):
        parse_size(text, "-b")


def test_zero_bytes_is_refused() -> None:
    with pytest.raises(UsageError, match="at least 1 byte"):
        parse_size("0", "-e")


def test_size_series_multiplies_by_the_factor_up_to_max() -> None:
    assert size_series(1024, 8192, 2) == (1024, 2048, 4096, 8192)
    assert size_series(1024, 5000, 2) == (1024, 2048, 4096)  # max off the way: not added
    assert size_series(8, 8, 2) == (8,)
    assert size_series(8, 1024**3, 4)[-1] == 2**29
    assert len(size_series(parse_size("1K"), parse_size("32M"), 2)) == 16


def test_size_series_refuses_what_cannot_be_a_series() -> None:
    with pytest.raises(UsageError, match="larger than"):
        size_series(2048, 1024, 2)
    with pytest.raises(UsageError, match="-f must be at least 2"):
        size_series(8, 64, 1)


def test_counts_follow_nccl_tests() -> None:
    # all-reduces: the whole buffer; a gather's count is per rank, its size the output
    assert counts("all_sum", 1024, 4, 2) == (256, 256, 256)
    assert counts("all_gather", 1024, 4, 2) == (128, 128, 256)
    assert counts("sum_scatter", 1024, 4, 2) == (128, 256, 128)
    assert counts("send_recv", 1024, 8, 4) == (128, 128, 128)
    # rounded down to whole elements per rank, at least one
    assert counts("all_gather", 1000, 4, 3) == (83, 83, 249)
    assert array_bytes("all_gather", 1000, 4, 3) == 996
    assert counts("all_sum", 1, 8, 2) == (1, 1, 1)
    assert array_bytes("sum_scatter", 8, 4, 4) == 16


@pytest.mark.parametrize("np_", [2, 3, 4, 8, 31, 32, 33, 64, 255, 256, 257, 1000])
def test_check_values_sum_exactly_in_bfloat16(np_: int) -> None:
    m = check_modulus(np_)
    assert m >= 1 and (m - 1) * np_ <= 256  # bfloat16 integers are exact up to 256


def test_show_size_is_exact() -> None:
    assert [show_size(n) for n in (8, 1024, 1536, 64 * 1024**2, 1024**3)] == [
        "8 B",
        "1 KiB",
        "1536 B",
        "64 MiB",
        "1 GiB",
    ]


def test_ops_and_dtypes_are_picked_by_name_list_or_all() -> None:
    assert pick("all", OPS, "--op") == OPS
    assert pick("all_gather,all_sum,all_sum", OPS, "--op") == ("all_gather", "all_sum")
    with pytest.raises(UsageError, match=r'--op: unknown "all_reduce".*did you mean "all_sum"'):
        pick("all_reduce", OPS, "--op")
    with pytest.raises(UsageError, match='--dtype: unknown "fp32"'):
        pick("fp32", tuple(ITEMSIZE), "--dtype")


def test_the_spec_travels_as_json() -> None:
    spec = bench_spec("id", 2, "ring", ["127.0.0.1"] * 2, "all", "all", "1K", "4K", 2, 3, 1)
    assert BenchSpec.from_json(spec.to_json()) == spec
    assert spec.sizes == (1024, 2048, 4096) and spec.memcpy_ranks == (0,)


def test_memory_copy_is_measured_once_per_host() -> None:
    assert first_rank_per_host(["a", "b", "a", "c", "b"]) == (0, 1, 3)


def test_the_tcp_stream_runs_between_the_first_two_hosts_only() -> None:
    assert tcp_pair(["a", "a", "b"], ["10.0.0.1", "10.0.0.1", "10.0.0.2"]) == ((0, 2), "10.0.0.1")
    assert tcp_pair(["127.0.0.1"] * 4, ["127.0.0.1"] * 4) == ((), "")
    spec = bench_spec("id", 2, "ring", ["n1", "n2"], addresses=["10.0.0.1", "10.0.0.2"])
    assert BenchSpec.from_json(spec.to_json()) == spec
    assert (spec.tcp_ranks, spec.tcp_address) == ((0, 1), "10.0.0.1")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"iters": 0}, "-n/--iters must be at least 1"),
        ({"warmup": -1}, "-w/--warmup-iters must be 0 or more"),
        ({"stream": "tpu"}, '--stream: unknown stream "tpu"'),
    ],
)
def test_flags_are_checked_before_anything_runs(kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        bench_spec("id", 2, "ring", ["127.0.0.1"] * 2, **kwargs)


def test_one_rank_is_not_a_collective() -> None:
    with pytest.raises(UsageError, match="--np must be at least 2"):
        bench_spec("id", 1, "ring", ["127.0.0.1"])
