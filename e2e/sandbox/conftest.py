from __future__ import annotations

from collections.abc import Iterator

import pytest

from e2e.fixtures.daemon import CridDaemon
from e2e.sandbox.pods import PodNet, pod_daemon


@pytest.fixture(scope="module")
def pod_env() -> Iterator[tuple[CridDaemon, PodNet]]:
    """One daemon on a private pod network, shared by a module's tests."""
    with pod_daemon() as env:
        yield env


@pytest.fixture
def daemon(pod_env: tuple[CridDaemon, PodNet]) -> CridDaemon:
    return pod_env[0]


@pytest.fixture
def net(pod_env: tuple[CridDaemon, PodNet]) -> PodNet:
    return pod_env[1]
