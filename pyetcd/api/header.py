"""Response headers as etcd's v3rpc layer fills them, chosen per method (handlers.py applies them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyetcd.api.server_api import EtcdServerApi

HeaderFill = Callable[[Any, EtcdServerApi], None]


def fill_header(response: Any, etcd: EtcdServerApi) -> None:
    """Cluster ID, member ID and Raft term always; the revision only when the answer left it 0.

    The revision a write or read produced must survive, so only an unset revision is
    replaced by the store's current one.
    """
    header = response.header
    current = etcd.header()
    header.cluster_id = current.cluster_id
    header.member_id = current.member_id
    header.raft_term = current.raft_term
    if header.revision == 0:
        header.revision = current.revision


def fill_header_without_revision(response: Any, etcd: EtcdServerApi) -> None:
    """Cluster answers carry no revision in etcd 3.4 (`member list -w json` shows none)."""
    header = response.header
    current = etcd.header()
    header.cluster_id = current.cluster_id
    header.member_id = current.member_id
    header.raft_term = current.raft_term
    header.revision = 0


def clear_header(response: Any, etcd: EtcdServerApi) -> None:
    """Alarm, Defragment and MoveLeader answers carry no header in etcd 3.4 (`etcdctl alarm list -w json`)."""
    response.ClearField("header")


HEADERLESS_METHODS = frozenset({
    "etcdserverpb.Maintenance.Alarm", "etcdserverpb.Maintenance.Defragment", "etcdserverpb.Maintenance.MoveLeader",
})


def fill_header_for(method_full_name: str) -> HeaderFill:
    """How etcd fills the header of a unary method's answer (method's full protobuf name)."""
    if method_full_name in HEADERLESS_METHODS:
        return clear_header
    if method_full_name.startswith("etcdserverpb.Cluster."):
        return fill_header_without_revision
    return fill_header
