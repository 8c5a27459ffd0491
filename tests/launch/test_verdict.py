"""How a job's end is judged, from rank states alone (pure logic: no processes)."""

from __future__ import annotations

import signal

from mlxrun.launch.verdict import (
    VICTIM_GRACE_SECONDS,
    Outcome,
    RankStatus,
    awaiting_root_cause,
    decide,
    describe_end,
    launcher_warning,
)


def ended(rank: int, code: int | None, at: float, victim: bool = False, **kw) -> RankStatus:
    r = RankStatus(rank, host="127.0.0.1", connected=True, returncode=code, ended_at=at, **kw)
    if victim:
        r.heard_stderr(["RuntimeError: [ring] connection to a peer was lost"], at)
    return r


def test_a_rank_that_lost_its_peer_is_not_the_root_cause() -> None:
    victim = ended(0, 1, at=0.10, victim=True)
    cause = ended(1, 3, at=0.12)
    report = decide(None, [victim, cause], [victim, cause], 0.5, [])
    assert report.outcome is Outcome.FAILED and report.root_cause is cause
    assert report.reason == "rank 1 exited with code 3"


def test_mlxrun_waits_a_moment_for_the_peer_that_died_first() -> None:
    victim, peer = ended(0, 1, at=1.0, victim=True), RankStatus(1, connected=True)
    ranks = [victim, peer]
    assert awaiting_root_cause([victim], ranks, now=1.0 + VICTIM_GRACE_SECONDS / 2)
    assert not awaiting_root_cause([victim], ranks, now=1.0 + VICTIM_GRACE_SECONDS)
    real = ended(0, 1, at=1.0)
    assert not awaiting_root_cause([real], [real, peer], now=1.0)  # a real failure
    assert not awaiting_root_cause([], ranks, now=1.0)


def test_a_rank_that_left_early_is_the_cause_of_its_peers_loss() -> None:
    leaver = ended(1, 0, at=0.5)
    victim = ended(0, 1, at=0.6, victim=True)
    assert not awaiting_root_cause([victim], [victim, leaver], now=0.6)  # known already
    report = decide(None, [victim, leaver], [victim], 1.0, [])
    assert report.root_cause is leaver
    assert report.reason == (
        "rank 1 exited with code 0 while the other ranks still needed it (they lost their peer)"
    )
    later = ended(1, 0, at=0.7)  # exited after the failure: not the cause
    assert decide(None, [victim, later], [victim], 1.0, []).root_cause is victim


def test_only_victims_then_the_first_is_named() -> None:
    a, b = ended(0, 1, at=0.2, victim=True), ended(1, 1, at=0.3, victim=True)
    assert decide(None, [a, b], [a, b], 2.0, []).root_cause is a


def test_every_rank_ok_is_ok_and_a_stop_names_its_reason() -> None:
    ranks = [ended(0, 0, at=0.1), ended(1, 0, at=0.1)]
    assert decide(None, ranks, [], 0.2, []).outcome is Outcome.OK
    for why in (Outcome.TIMEOUT, Outcome.INTERRUPTED, Outcome.TERMINATED):
        report = decide(why, ranks, [], 0.2, ["tail"])
        assert (report.outcome, report.reason, report.root_cause) == (why, why.value, None)
        assert report.launcher_tail == ["tail"]
    assert Outcome.TIMEOUT.exit_code == 124 and Outcome.INTERRUPTED.exit_code == 130


def test_failures_found_only_at_the_end_still_fail_the_job() -> None:
    lost = RankStatus(1, connected=True, lost=True)
    report = decide(None, [ended(0, 0, at=0.1), lost], [], 1.0, [])
    assert report.outcome is Outcome.FAILED and report.root_cause is lost


def test_what_each_end_is_called() -> None:
    assert describe_end(ended(2, -signal.SIGKILL, at=0)) == "rank 2 was killed by SIGKILL"
    assert "(a mapped file got shorter" in describe_end(ended(0, -signal.SIGBUS, at=0))
    assert describe_end(RankStatus(1, lost=True)) == (
        "rank 1 never started (see the launcher's lines)"
    )
    assert "stopped reporting" in describe_end(RankStatus(1, connected=True, lost=True))
    ssh = RankStatus(1, host="node2", returncode=255)
    assert describe_end(ssh).startswith("rank 1 could not start on node2 (ssh exit code 255)")
    local = RankStatus(1, host="127.0.0.1", returncode=255)
    assert describe_end(local) == "rank 1 exited with code 255"


def test_the_launchers_warning_line() -> None:
    assert launcher_warning("[WARN] Node with rank 3 exited with code -9") == (3, -9)
    assert launcher_warning("Node with rank 0 exited with code 1") == (0, 1)
    assert launcher_warning("some other line") is None
