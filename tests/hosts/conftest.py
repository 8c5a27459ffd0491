"""The session's loopback hosts (`tests.hosts.loopback`): node1..node4, skipped where they
cannot be made (not root, no namespaces, no sshd)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.hosts.loopback import Hosts, loopback_hosts, missing


@pytest.fixture(scope="session")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    why = missing()
    if why is not None:
        pytest.skip(why)
    with loopback_hosts(tmp_path_factory.mktemp("hosts")) as cluster:
        yield cluster
