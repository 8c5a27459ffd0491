"""From the ranks' records to nccl-tests' rows, and how they are drawn (no processes)."""

from __future__ import annotations

import pytest

from mlxrun.bench.run import COLUMNS, aggregate
from mlxrun.bench.spec import bench_spec
from mlxrun.cli.bench_render import chart, footer


def records(wrong: tuple[int, int] = (0, 0)) -> list[dict]:
    row = {"kind": "row", "op": "all_sum", "dtype": "float32", "bytes": 1_000_000, "count": 250_000}
    return [
        {"kind": "host", "rank": 0, "host": "a", "memcpy_gbps": 10.0},
        {"kind": "host", "rank": 1, "host": "b", "memcpy_gbps": 5.0},
        {"kind": "skip", "op": "sum_scatter", "reason": "not supported"},
        {**row, "rank": 0, "time_us": 1000.0, "wrong": wrong[0]},
        {**row, "rank": 1, "time_us": 3000.0, "wrong": wrong[1]},
    ]


def spec(check: bool = True):  # noqa: ANN201
    return bench_spec("id", 2, "ring", ["a", "b"], "all_sum", check=check)


def test_a_row_is_the_average_over_ranks_with_min_max_and_the_slowest() -> None:
    result = aggregate(spec(), records(), ["a", "b"])
    (row,) = result.rows
    assert (row.time_us, row.time_us_min, row.time_us_max, row.slowest_rank) == (
        2000.0,
        1000.0,
        3000.0,
        1,
    )
    assert row.algbw_gbps == pytest.approx(0.5)  # 1e6 B in 2 ms
    assert row.busbw_gbps == pytest.approx(0.5 * 2 * (2 - 1) / 2)
    assert result.memcpy_gbps == 5.0  # the slowest host is the limit
    assert row.memcpy_fraction == pytest.approx(0.1)
    assert result.avg_busbw_gbps == pytest.approx(0.5)
    assert [(h.host, h.ranks) for h in result.hosts] == [("a", (0,)), ("b", (1,))]
    assert result.skipped == ({"op": "sum_scatter", "reason": "not supported"},)


def test_wrong_values_are_summed_over_ranks() -> None:
    result = aggregate(spec(), records(wrong=(2, 3)), ["a", "b"])
    assert (result.rows[0].wrong, result.wrong) == (5, 5)
    assert "Out of bounds values: 5 FAILED" in footer(result)
    assert "Out of bounds values: 0 OK" in footer(aggregate(spec(), records(), ["a", "b"]))


def test_without_check_nothing_is_counted() -> None:
    result = aggregate(spec(check=False), records(), ["a", "b"])
    assert (result.rows[0].wrong, result.wrong) == (None, None)
    assert "Out of bounds values: not checked (--no-check)" in footer(result)
    assert result.to_dict()["wrong"] is None


def test_footer_names_each_host_the_skips_and_the_average() -> None:
    lines = footer(aggregate(spec(), records(), ["a", "b"]))
    assert lines == [
        "Memory copy on a (ranks 0): 10.00 GB/s",
        "Memory copy on b (ranks 1): 5.00 GB/s",
        "Skipped sum_scatter: not supported",
        "Out of bounds values: 0 OK",
        "Avg bus bandwidth: 0.5 GB/s",
    ]


def test_the_csv_has_the_json_row_columns() -> None:
    text = aggregate(spec(), records(), ["a", "b"]).to_csv()
    header, line = text.splitlines()
    assert header.split(",") == [*COLUMNS, "memcpy_fraction", "tcp_fraction"]
    assert line.startswith("all_sum,float32,1000000,250000,2000.0,1000.0,3000.0,1,")


def test_the_chart_draws_a_bar_per_size() -> None:
    lines = chart(aggregate(spec(), records(), ["a", "b"]))
    assert lines[0] == "busbw against size (full width 0.5 GB/s; memory copy 5.00 GB/s)"
    assert lines[1] == "all_sum float32"
    assert lines[2].endswith("|" + "#" * 40 + "| 0.5")


def test_a_tcp_stream_between_hosts_is_a_second_limit() -> None:
    recs = [*records(), {"kind": "tcp", "from": 1, "to": 0, "gbps": 1.0}]
    result = aggregate(spec(), recs, ["a", "b"])
    assert result.tcp_gbps == 1.0 and result.rows[0].tcp_fraction == pytest.approx(0.5)
    assert "TCP stream rank 1 -> rank 0: 1.00 GB/s" in footer(result)
    assert result.to_dict()["tcp"] == {"from": 1, "to": 0, "gbps": 1.0}
    failed = [*records(), {"kind": "tcp", "from": 1, "to": 0, "error": "refused"}]
    assert "TCP stream rank 1 -> rank 0: failed (refused)" in footer(aggregate(spec(), failed, []))
