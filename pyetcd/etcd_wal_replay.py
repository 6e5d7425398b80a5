"""Replaying the committed tail of an etcd member's WAL into the records of its db, as etcd would on
its next start: the entries past the db's consistent index, through pyetcd's own applier, in order.

Only normal v3 requests are applied; those the db already shows (etcd writes lease and compaction
changes without moving the consistent index) fail as they would in etcd and change nothing. Empty
entries, v2 requests (etcd's v2 store is not migrated) and membership changes (the new member set
comes from migrate's flags) keep their place in the log but change nothing. Requests pyetcd's applier
cannot replay yet (auth changes) and entries that do not parse are refused by the caller first.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from pyetcd.apply import Applier, MembershipChanges
from pyetcd.auth.store import AuthStore
from pyetcd.auth.tokens import SimpleTokens
from pyetcd.config import DEFAULT_QUOTA_BYTES, min_lease_ttl
from pyetcd.etcd_wal_tail import consistent_index, request_of
from pyetcd.lessor import Lessor
from pyetcd.membership import MEMBERS_BUCKET, Member, Membership
from raft.core import ConfState, Entry
from storage.etcdwal import EntryType, WalContents
from storage.mvcc import MvccStore
from storage.mvcc.backend import Backend
from storage.mvcc.contents import StoreContents, read_contents, write_contents
from storage.mvcc.kvstore import default_map_size

ETCD_ELECTION_MS, ETCD_HEARTBEAT_MS = 1000, 100
"""etcd's default timeouts: the minimum lease TTL its lessor enforced when it applied these grants."""


def committed_tail(contents: StoreContents, wal: WalContents) -> list[Entry]:
    """The committed entries past the db's consistent index, as the applier takes them (non-v3 ones emptied)."""
    applied = consistent_index(contents)
    tail = []
    for entry in wal.entries:
        if not applied < entry.index <= wal.hard_state.commit:
            continue
        carries_v3 = entry.type == EntryType.NORMAL and entry.data and request_of(entry) not in (None, "v2")
        tail.append(Entry(term=entry.term, index=entry.index, data=entry.data if carries_v3 else b""))
    return tail


def replay_committed_tail(contents: StoreContents, wal: WalContents) -> StoreContents:
    """The db's records with the WAL's committed tail applied (the tail is known to be complete)."""
    map_size = default_map_size(DEFAULT_QUOTA_BYTES)
    with tempfile.TemporaryDirectory(prefix="pyetcd-migrate-") as scratch:
        directory = Path(scratch)
        write_contents(directory, contents, map_size=map_size)
        store = MvccStore(directory, map_size=map_size, sync_commits=False)
        try:
            lessor = Lessor(min_ttl=min_lease_ttl(ETCD_ELECTION_MS, ETCD_HEARTBEAT_MS))
            lessor.restore(store.leases())
            members = [Member.decode(raw) for raw in contents.buckets.get(MEMBERS_BUCKET, {}).values()]
            # Requests carry the user etcd checked them for; the replay checks them against the db's auth state.
            auth = AuthStore(SimpleTokens())
            auth.load(store)
            applier = Applier(store, Membership(members=members), lessor, _NO_MEMBERSHIP_CHANGES, auth)
            for entry in committed_tail(contents, wal):
                # One entry at a time, with the lessor told of each grant and revoke before the next entry
                # looks leases up. Request-level failures (a lease granted twice, a revision already
                # compacted) are what etcd's own replay meets too: the entry changes nothing.
                for follow_up in applier.apply_entries([entry]).after_commit:
                    follow_up()
        finally:
            store.close()
        backend = Backend(directory, map_size)
        try:
            return read_contents(backend)
        finally:
            backend.close()


def _no_conf_change(_: object) -> ConfState:
    raise AssertionError("membership changes are not replayed")


_NO_MEMBERSHIP_CHANGES = MembershipChanges(_no_conf_change, lambda _m: None, lambda _i: None, lambda _m: None)
