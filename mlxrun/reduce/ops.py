"""The ops a reduction offers, and which of them share work. Constants only: the spec
checks names against them without loading the algebra."""

from __future__ import annotations

OPS = ("sum", "mean", "min", "max", "count", "prod", "var", "std", "histogram", "argmin", "argmax")
DEFAULT_BINS = 20  # histogram bins when a spec does not say
MAX_BINS = 1_000_000  # every rank holds and all_sums this many counts
SUM_OPS = frozenset({"count", "sum", "mean"})  # answered from sums alone: nothing is stored
EXTREME_OPS = frozenset({"min", "max", "argmin", "argmax", "histogram"})
MOMENT_OPS = frozenset({"var", "std"})
