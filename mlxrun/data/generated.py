"""Generated data: ranges and seeded random numbers, made on the ranks. Defined block by
block, so that every rank count sees the same values."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from mlxrun.data.model import Data
from mlxrun.data.shards import Shard, span

GENERATE_BLOCK = 1 << 20


def generated_block(
    kind: str, distribution: str, seed: int, start: int, block: int, n: int
) -> np.ndarray:
    lo = block * GENERATE_BLOCK
    size = min(GENERATE_BLOCK, n - lo)
    if kind == "range":
        return np.arange(start + lo, start + lo + size, dtype=np.int64)
    rng = np.random.default_rng([seed, block])
    if distribution == "uniform":
        return rng.random(size)
    if distribution == "integers":
        return rng.integers(-1_000_000, 1_000_000, size, dtype=np.int64)
    return rng.standard_normal(size)


def generated_shard(data: Data, rank: int, np_: int) -> Shard[np.ndarray]:
    g = data.generate
    assert g is not None
    lo, hi = span(g.n, rank, np_)

    def chunks() -> Iterator[tuple[np.ndarray, int]]:
        for block in range(lo // GENERATE_BLOCK, (hi - 1) // GENERATE_BLOCK + 1 if hi > lo else 0):
            values = generated_block(g.kind, g.distribution, g.seed, g.start, block, g.n)
            first = block * GENERATE_BLOCK
            part = values[max(lo - first, 0) : hi - first]
            yield part, part.nbytes

    return Shard(chunks(), (hi - lo) * 8)
