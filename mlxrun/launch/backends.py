"""The distributed backends: which ones the installed mlx.launch offers, and what each
needs from mlxrun.

- ring: TCP between every rank; a free block of ports, one per IP of every host.
- mpi: mpirun (Open MPI 5) starts the ranks; no ports of mlxrun's choosing.
- nccl: CUDA GPUs; rank 0's first IP and one port (`--nccl-port`, 12345 by default,
  so two jobs would clash: each job gets a free one).
- jaccl, jaccl-ring: RDMA over Thunderbolt between Macs; a hostfile whose hosts list
  their RDMA devices (`rdma`), and a coordinator port on rank 0's first IP
  (`--starting-port`). MLX's own backend is "jaccl" for both; jaccl-ring also sets
  MLX_JACCL_RING=1.

The list is read from the installed launcher's source rather than assumed, so that an
MLX without a backend says so before anything starts. Standard library only: reading it
must not import mlx.core, which costs the CLI a fifth of a second.
"""

from __future__ import annotations

import importlib.util
import re
from functools import cache
from pathlib import Path

from mlxrun.rank.group import init_name

KNOWN = ("ring", "mpi", "nccl", "jaccl", "jaccl-ring")
NEEDS_RDMA = ("jaccl", "jaccl-ring")
_DISPATCH = re.compile(r'args\.backend == "([a-z][a-z0-9-]*)"')


def launcher_source() -> Path | None:
    """mlx.launch's module (mlx/_distributed_utils/launch.py), found without importing it."""
    spec = importlib.util.find_spec("mlx")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "_distributed_utils" / "launch.py"
        if path.is_file():
            return path
    return None


def offered_in(source: str) -> tuple[str, ...]:
    """The backends a launcher's source dispatches on, in KNOWN's order."""
    found = set(_DISPATCH.findall(source))
    return tuple(b for b in KNOWN if b in found) + tuple(sorted(found - set(KNOWN)))


@cache
def offered() -> tuple[str, ...]:
    """The backends the installed mlx.launch offers (ring and mpi if it cannot be read)."""
    path = launcher_source()
    try:
        found = offered_in(path.read_text()) if path is not None else ()
    except OSError:
        found = ()
    return found or ("ring", "mpi")


NEEDS = {
    "nccl": "CUDA GPUs and an MLX built for them (pip install 'mlx[cuda]')",
    "jaccl": "Macs with RDMA over Thunderbolt enabled (macOS 26.2 or later)",
    "jaccl-ring": "Macs with RDMA over Thunderbolt enabled (macOS 26.2 or later)",
}


def missing_here(backend: str) -> str | None:
    """Why this machine's MLX cannot run `backend`'s ranks, or None. Only for nccl and
    jaccl, whose availability does not depend on how the rank is started (mpi's does)."""
    if backend not in NEEDS:
        return None
    import mlx.core as mx  # only for these backends: the import costs 0.2 s

    if mx.distributed.is_available(backend=init_name(backend)):
        return None
    return f"this machine's MLX cannot run {backend} ranks: it needs {NEEDS[backend]}"
