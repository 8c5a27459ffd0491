"""The raw TCP stream of a multi-host benchmark, over real loopback sockets; and the ranks'
part in it, with two real ranks on this machine standing for two hosts."""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace

import pytest

from mlxrun.bench import tcp
from mlxrun.bench.run import run_bench
from mlxrun.bench.spec import bench_spec
from mlxrun.launch.job import job_spec
from mlxrun.launch.output import RankOutput


def test_a_stream_arrives_whole_and_is_timed() -> None:
    server = tcp.listen()
    port = server.getsockname()[1]
    errors: list[BaseException] = []

    def receive() -> None:
        try:
            tcp.serve(server, 8 * tcp.CHUNK + 5)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            errors.append(e)

    t = threading.Thread(target=receive)
    t.start()
    gbps = tcp.stream("127.0.0.1", port, 8 * tcp.CHUNK + 5)
    t.join(timeout=10)
    assert errors == [] and gbps > 0


def test_nobody_listening_is_an_error_not_a_hang() -> None:
    server = tcp.listen()
    port = server.getsockname()[1]
    server.close()
    with pytest.raises(OSError):
        tcp.stream("127.0.0.1", port, tcp.CHUNK)


def test_ranks_time_the_stream_between_their_hosts() -> None:
    # One machine has one host: the spec names rank 1 the sender as another host would be.
    job = job_spec((), 2, "ring", None, 60)
    spec = bench_spec(
        uuid.uuid4().hex, 2, "ring", ["127.0.0.1"] * 2, "all_sum", "float32", "1K", "1K", 2, 1, 0
    )
    spec = replace(spec, tcp_ranks=(0, 1), tcp_address="127.0.0.1")
    result = run_bench(spec, job, RankOutput(quiet=True))
    assert result.tcp is not None and set(result.tcp) == {"from", "to", "gbps"}
    assert (result.tcp["from"], result.tcp["to"]) == (1, 0) and result.tcp["gbps"] > 0
    assert result.rows[0].tcp_fraction is not None and result.wrong == 0


def test_a_stream_that_cannot_connect_is_reported_and_the_benchmark_goes_on() -> None:
    job = job_spec((), 2, "ring", None, 60)
    spec = bench_spec(
        uuid.uuid4().hex, 2, "ring", ["127.0.0.1"] * 2, "all_sum", "float32", "1K", "1K", 2, 1, 0
    )
    spec = replace(spec, tcp_ranks=(0, 1), tcp_address="no-such-host.invalid")
    result = run_bench(spec, job, RankOutput(quiet=True))
    assert result.tcp is not None and "no-such-host.invalid" in result.tcp["error"]
    assert result.tcp_gbps is None and len(result.rows) == 1
