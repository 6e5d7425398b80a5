"""Fixtures of the grpc-proxy tests: real etcd members and proxies, always stopped."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from pyetcd.proxy import GrpcProxy, ProxyConfig
from tests.proxy.real_etcd import EtcdCluster, ProxyFactory, start_etcd_cluster

BACKENDS = ["etcd", "pyetcd"]
"""The proxy must behave the same in front of real etcd and in front of pyetcd."""


@pytest.fixture(scope="module", params=BACKENDS)
def etcd(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """One member shared by a module's tests (each test uses its own keys)."""
    cluster = start_etcd_cluster(tmp_path_factory.mktemp("etcd"), 1, request.param)
    try:
        yield cluster
    finally:
        cluster.kill()


@pytest.fixture(params=BACKENDS)
def etcd3(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EtcdCluster]:
    """A fresh three-member cluster."""
    cluster = start_etcd_cluster(tmp_path, 3, request.param)
    try:
        yield cluster
    finally:
        cluster.kill()


@pytest.fixture
async def start_proxy() -> AsyncIterator[ProxyFactory]:
    """Starts proxies on free ports (`await start_proxy(endpoints, namespace=...)`); all are stopped."""
    started: list[GrpcProxy] = []

    async def start(endpoints: list[str], **options: Any) -> GrpcProxy:
        proxy = GrpcProxy(ProxyConfig(endpoints=endpoints, listen_addr="127.0.0.1:0", **options))
        started.append(proxy)
        await proxy.start()
        return proxy

    try:
        yield start
    finally:
        for proxy in started:
            await proxy.stop()
