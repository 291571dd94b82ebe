"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.servers import OwnRedis


@pytest.fixture(scope="module")
def second() -> Iterator[OwnRedis]:
    """A second Redis instance (nothing on disk), for tests with several instances."""
    server = OwnRedis(persistent=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()
