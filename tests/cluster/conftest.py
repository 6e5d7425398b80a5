"""A `cluster` fixture: a factory of pyetcd clusters whose processes are always stopped."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests.cluster.cluster import Cluster

MakeCluster = Callable[..., Cluster]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[MakeCluster]:
    made: list[Cluster] = []

    def make(size: int = 3, *, extra_args: Sequence[str] = (), binary: str = "pyetcd") -> Cluster:
        built = Cluster(tmp_path / f"cluster{len(made)}", binary=binary, extra_args=extra_args)
        made.append(built)
        return built.start(size)

    try:
        yield make
    finally:
        for built in made:
            built.stop()
