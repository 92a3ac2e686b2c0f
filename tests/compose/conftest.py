"""tests/compose/: Percept's images and docker-compose stack, for real (`make test-compose`).

They need a Docker engine, docker-compose and the images `make images` builds, and take
many minutes on two cores: `make test` does not run them (they are skipped unless
PERCEPT_COMPOSE_TEST=1, which `make test-compose` sets)."""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "compose: builds on Docker images and a docker-compose stack (make test-compose)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("PERCEPT_COMPOSE_TEST") == "1":
        return
    skip = pytest.mark.skip(reason="Docker images and compose: run by `make test-compose`")
    for item in items:
        if "compose" in item.keywords:
            item.add_marker(skip)
