"""The whole reduction protocol in one process, as the worker runs it across ranks: each
rank's state encoded, all_sum an element-wise sum over ranks and all_gather a stack in
rank order, then combined and finalized."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from mlxrun.reduce.algebra import Histogram, Partial, Results, combine, finalize
from mlxrun.reduce.kernels import add_chunk, histogram_counts, histogram_edges, histogram_range
from mlxrun.reduce.ops import DEFAULT_BINS


def simulate(
    ranks: Sequence[Sequence[npt.NDArray[np.generic]]],
    ops: Sequence[str],
    bins: int = DEFAULT_BINS,
) -> Results:
    """`ranks[r]` is rank r's list of chunks."""
    if not ranks:
        raise ValueError("simulate needs at least one rank")
    encoded = []
    for chunks in ranks:
        part = Partial()
        for chunk in chunks:
            add_chunk(part, chunk)
        encoded.append(part.encode())
    state = combine(
        [sum(column) for column in zip(*(e.summed for e in encoded), strict=True)],
        [e.gathered_ints for e in encoded],
        [e.gathered_floats for e in encoded],
    )
    histogram: Histogram | str | None = None
    if "histogram" in ops:
        try:
            lo, hi = histogram_range(state, bins)
        except ValueError as e:
            histogram = str(e)
        else:
            total = np.zeros(bins, dtype=np.int64)
            for chunks in ranks:  # all_sum of per-rank sums is just the sum over all chunks
                for chunk in chunks:
                    total += histogram_counts(chunk, lo, hi, bins)
            histogram = Histogram(total.tolist(), histogram_edges(lo, hi, bins))
    return finalize(state, ops, histogram=histogram)
