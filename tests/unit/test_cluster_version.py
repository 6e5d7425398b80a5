"""The cluster version: the leader's decision (etcd's decideClusterVersion and monitorVersions rules),
and what applying a cluster version entry leaves in the membership and the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from etcdpb.etcdserverpb import raft_internal_pb2
from pyetcd.apply import Applier, MembershipChanges
from pyetcd.auth.store import AuthStore
from pyetcd.auth.tokens import new_token_provider
from pyetcd.cluster_version import Capabilities, ClusterVersionMonitor, decide, major_minor, next_version
from pyetcd.etcd_backend import etcd_backend
from pyetcd.lessor import Lessor
from pyetcd.membership import CLUSTER_BUCKET, CLUSTER_VERSION_KEY, Member, Membership
from raft.core import ConfState, Entry
from storage.mvcc import MvccStore


def test_the_lowest_member_decides_and_an_unknown_member_leaves_it_undecided() -> None:
    assert decide({1: "3.4.23", 2: "3.4.9", 3: "3.5.1"}) == "3.4.0"
    assert decide({1: "3.4.23", 2: "3.3.0"}) == "3.3.0"
    assert decide({1: "3.4.23", 2: None}) is None
    assert decide({1: "3.4.23", 2: "garbage"}) is None
    assert major_minor("3.4.0") == "3.4"


def test_an_undecided_cluster_takes_the_minimum_and_a_decided_one_only_rises() -> None:
    assert next_version(None, "3.4.0") == "3.4.0"
    assert next_version(None, None) == "3.0.0"
    assert next_version("3.0.0", "3.4.0") == "3.4.0"
    assert next_version("3.4.0", "3.4.0") is None
    assert next_version("3.4.0", "3.3.0") is None
    assert next_version("3.0.0", None) is None


def test_capabilities_follow_only_a_higher_version() -> None:
    capabilities = Capabilities()
    assert not capabilities.update(None)
    assert capabilities.update("3.0.0")
    assert capabilities.update("3.4.0")
    assert not capabilities.update("3.4.0")
    assert not capabilities.update("3.0.0")
    assert capabilities.version == "3.4.0"


async def test_the_leader_proposes_the_minimum_while_a_member_is_silent_then_raises_it() -> None:
    members = [Member(1, ("http://a",), "a"), Member(2, ("http://b",), "b")]
    answers: dict[int, str | None] = {2: None}
    proposed: list[str] = []
    state: dict[str, str | None] = {"version": None}

    async def remote_version(member: Member) -> str | None:
        return answers[member.id]

    async def propose(version: str) -> None:
        proposed.append(version)
        state["version"] = version

    monitor = ClusterVersionMonitor(member_id=1, is_leader=lambda: True, members=lambda: members,
                                    current=lambda: state["version"], remote_version=remote_version,
                                    propose=propose)
    await monitor.check()
    answers[2] = "3.4.23"
    await monitor.check()
    await monitor.check()
    assert proposed == ["3.0.0", "3.4.0"]


@pytest.fixture
def applier(tmp_path: Path) -> tuple[Applier, list[tuple[str | None, str]]]:
    seen: list[tuple[str | None, str]] = []
    changes = MembershipChanges(lambda cc: ConfState(), lambda m: None, lambda i: None, lambda m: None,
                                lambda old, new: seen.append((old, new)))
    store = MvccStore(tmp_path / "db")
    return Applier(store, Membership(7), Lessor(), changes, AuthStore(new_token_provider("simple", 300))), seen


def version_entry(index: int, version: str) -> Entry:
    request = raft_internal_pb2.InternalRaftRequest(ID=index)
    request.cluster_version_set.ver = version
    return Entry(term=2, index=index, data=request.SerializeToString())


def test_applying_a_cluster_version_sets_it_in_the_membership_and_the_store(
        applier: tuple[Applier, list[tuple[str | None, str]]]) -> None:
    apply, seen = applier
    try:
        for index, version in ((1, "3.0.0"), (2, "3.4.0")):
            batch = apply.apply_entries([version_entry(index, version)])
            assert batch.outcomes[0].error is None
            for action in batch.after_commit:
                action()
        assert apply.membership.version == "3.4.0"
        assert seen == [(None, "3.0.0"), ("3.0.0", "3.4.0")]
        assert apply.store.meta_get(CLUSTER_BUCKET, CLUSTER_VERSION_KEY) == b"3.4.0"
        assert etcd_backend(apply.store.contents()).buckets[b"cluster"].items == {b"clusterVersion": b"3.4.0"}
        refused = apply.apply_entries([version_entry(3, "not a version")])
        assert isinstance(refused.outcomes[0].error, ValueError)
        assert apply.membership.version == "3.4.0"
    finally:
        apply.store.close()
