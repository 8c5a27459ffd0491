"""What a benchmark measures: the ops, dtypes, sizes and iterations every rank runs.
Validated here, once, from the flags; sent to the ranks as JSON. Standard library only."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

from mlxrun.bench.sizes import DTYPES, OPS, parse_size, size_series
from mlxrun.errors import UsageError, did_you_mean

STREAMS = ("cpu", "gpu")
CORRUPT_ENV = "MLXRUN_BENCH_CORRUPT_RANK"  # test-only: this rank corrupts its results


@dataclass(frozen=True)
class BenchSpec:
    job_id: str
    np: int
    backend: str
    ops: tuple[str, ...]
    dtypes: tuple[str, ...]
    sizes: tuple[int, ...]
    iters: int = 20
    warmup: int = 5
    check: bool = True
    stream: str = "cpu"
    memcpy_ranks: tuple[int, ...] = (0,)  # the first rank on each host measures memcpy
    tcp_ranks: tuple[int, ...] = ()  # (listener, sender) of the TCP stream: several hosts
    tcp_address: str = ""  # where the sender reaches the listener

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> BenchSpec:
        d = json.loads(text)
        for key in ("ops", "dtypes", "sizes", "memcpy_ranks", "tcp_ranks"):
            d[key] = tuple(d[key])
        return cls(**d)


def pick(text: str, choices: tuple[str, ...], flag: str) -> tuple[str, ...]:
    """`all`, one name, or a comma-separated list of names, in the order given."""
    if text.strip() == "all":
        return choices
    picked: list[str] = []
    for word in (w.strip() for w in text.split(",")):
        if word not in choices:
            raise UsageError(
                f'{flag}: unknown "{word}" (use {", ".join(choices)} or all){did_you_mean(word, choices)}'
            )
        if word not in picked:
            picked.append(word)
    return tuple(picked)


def first_rank_per_host(hosts: list[str]) -> tuple[int, ...]:
    seen: dict[str, int] = {}
    for rank, host in enumerate(hosts):
        seen.setdefault(host, rank)
    return tuple(sorted(seen.values()))


def tcp_pair(hosts: list[str], addresses: list[str]) -> tuple[tuple[int, ...], str]:
    """The stream's ends: the first rank of the first host listens, the first rank of the
    next host sends. None on one host (the memory copy is then the only limit)."""
    firsts = first_rank_per_host(hosts)
    if len(firsts) < 2:
        return (), ""
    return (firsts[0], firsts[1]), addresses[firsts[0]]


def bench_spec(
    job_id: str,
    np_: int,
    backend: str,
    hosts: list[str],
    op: str = "all_sum",
    dtype: str = "float32",
    min_bytes: str = "1K",
    max_bytes: str = "32M",
    factor: int = 2,
    iters: int = 20,
    warmup: int = 5,
    check: bool = True,
    stream: str = "cpu",
    addresses: list[str] | None = None,
) -> BenchSpec:
    """The spec from the flags' values; UsageError names the flag at fault. `hosts` names
    each rank's host, `addresses` how other hosts reach it (default: the names)."""
    if iters < 1:
        raise UsageError(f"-n/--iters must be at least 1 (got {iters})")
    if warmup < 0:
        raise UsageError(f"-w/--warmup-iters must be 0 or more (got {warmup})")
    if stream not in STREAMS:
        raise UsageError(f'--stream: unknown stream "{stream}" (use cpu or gpu)')
    if np_ < 2:
        raise UsageError(f"--np must be at least 2 for a collective benchmark (got {np_})")
    sizes = size_series(parse_size(min_bytes, "-b"), parse_size(max_bytes, "-e"), factor)
    tcp_ranks, tcp_address = tcp_pair(hosts, addresses or hosts)
    return BenchSpec(
        job_id,
        np_,
        backend,
        pick(op, OPS, "--op"),
        pick(dtype, DTYPES, "--dtype"),
        sizes,
        iters,
        warmup,
        check,
        stream,
        first_rank_per_host(hosts),
        tcp_ranks,
        tcp_address,
    )


def check_gate(min_busbw: float | None) -> None:
    if min_busbw is not None and not (min_busbw >= 0 and math.isfinite(min_busbw)):
        raise UsageError(f"--min-busbw must be a number of GB/s, 0 or more (got {min_busbw:g})")
