"""What ranks do to start MLX's ring backend without its one-second stall."""

from __future__ import annotations

import time

from mlxrun.agent import rank_from_env

STAGGER_SECONDS = 0.05


def stagger_last_rank(np_: int) -> None:
    """On the ring the last rank connects first, to rank 0; if rank 0 is not listening
    yet, MLX waits a whole second before it tries again (seen in half of all 2-rank
    starts). Ranks start within a few ms of each other, so the last one waits a little
    instead of often losing a second."""
    if np_ > 1 and rank_from_env() == np_ - 1:
        time.sleep(STAGGER_SECONDS)
