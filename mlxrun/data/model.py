"""The data a reduction reads, as every rank is told it: a file and how to read it, or a
generator. Standard library only: every rank imports it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

FORMATS = ("text", "csv", "tsv", "npy", "npz", "safetensors")
DTYPES = ("auto", "int64", "float64", "float32")
GENERATORS = ("range", "random")
DISTRIBUTIONS = ("normal", "uniform", "integers")
EXTENSIONS = {
    ".txt": "text",
    ".dat": "text",
    ".csv": "csv",
    ".tsv": "tsv",
    ".npy": "npy",
    ".npz": "npz",
    ".safetensors": "safetensors",
}


@dataclass(frozen=True)
class Generate:
    kind: str
    n: int
    seed: int = 0
    distribution: str = "normal"
    start: int = 1  # range: start, start + 1, ...


@dataclass(frozen=True)
class Data:
    path: Path | None
    format: str
    column: str | int | None = None
    dtype: str = "auto"
    generate: Generate | None = None

    def describe(self) -> str:
        if self.generate is not None:
            g = self.generate
            return f"generated {g.kind} (n={g.n}, seed={g.seed})"
        return str(self.path)
