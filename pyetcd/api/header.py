"""Response headers as etcd's v3rpc layer fills them."""

from __future__ import annotations

from typing import Any

from pyetcd.api.server_api import EtcdServerApi


def fill_header(header: Any, etcd: EtcdServerApi) -> None:
    """Cluster ID, member ID and Raft term always; the revision only when the answer left it 0.

    The revision a write or read produced must survive, so only an unset revision is
    replaced by the store's current one.
    """
    current = etcd.header()
    header.cluster_id = current.cluster_id
    header.member_id = current.member_id
    header.raft_term = current.raft_term
    if header.revision == 0:
        header.revision = current.revision


def fill_header_without_revision(header: Any, etcd: EtcdServerApi) -> None:
    """Cluster answers carry no revision in etcd 3.4 (`member list -w json` shows none)."""
    current = etcd.header()
    header.cluster_id = current.cluster_id
    header.member_id = current.member_id
    header.raft_term = current.raft_term
    header.revision = 0
