"""Joining the job's MLX group, the same way in the worker, the bench rank and check's
probe: the last ring rank first waits for rank 0 to listen (rank.ring), and the backend
is named as mx.distributed.init knows it."""

from __future__ import annotations

from typing import Any

from mlxrun.rank.ring import deferring_wakeups, wait_for_ring_start


def init_name(backend: str) -> str:
    """mlx.launch's jaccl-ring is MLX's jaccl backend (with MLX_JACCL_RING=1 set)."""
    return "jaccl" if backend == "jaccl-ring" else backend


def join(np_: int, backend: str, strict: bool = True) -> Any:
    """The rank's mx.distributed group; mlx.core is imported here, where it is needed."""
    import mlx.core as mx

    if backend != "ring" or np_ <= 1:
        return mx.distributed.init(strict=strict, backend=init_name(backend))
    wait_for_ring_start(np_)
    with deferring_wakeups(np_):
        return mx.distributed.init(strict=strict, backend="ring")
