"""The MVCC store's etcd semantics: revisions, generations, ranges, puts, deletes, txns, compaction, leases,
quota, hashes, snapshots and persistence."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from etcdpb.etcdserverpb import rpc_pb2
from etcdpb.mvccpb import kv_pb2
from pyetcd import apply_kv, errors
from pyetcd.api.kv import check_put_request
from pyetcd.apply_kv import read_range
from storage.mvcc import (
    CompactedError,
    FutureRevisionError,
    LeaseExistsError,
    LeaseNotFoundError,
    MvccStore,
    QuotaExceededError,
)
from storage.mvcc.revision import bytes_to_rev, is_tombstone

Compare = rpc_pb2.Compare
RangeRequest = rpc_pb2.RangeRequest


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MvccStore]:
    s = MvccStore(tmp_path / "db")
    try:
        yield s
    finally:
        s.close()


def put(store: MvccStore, key: bytes, value: bytes = b"", **kw: Any) -> rpc_pb2.PutResponse:
    with store.write(store.consistent_index + 1) as b:
        return apply_kv.batch_put(b, rpc_pb2.PutRequest(key=key, value=value, **kw))


def delete(store: MvccStore, key: bytes, range_end: bytes = b"", **kw: Any) -> rpc_pb2.DeleteRangeResponse:
    with store.write(store.consistent_index + 1) as b:
        return apply_kv.batch_delete_range(b, rpc_pb2.DeleteRangeRequest(key=key, range_end=range_end, **kw))


def txn(store: MvccStore, req: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
    with store.write(store.consistent_index + 1) as b:
        return apply_kv.batch_txn(b, req)


def compact(store: MvccStore, revision: int) -> None:
    """Compact at `revision` and wait until the revisions it dropped are deleted from the disk."""
    with store.write(store.consistent_index + 1) as b:
        b.compact(revision)
    assert store.wait_compacted(revision, timeout=10)


def get(store: MvccStore, key: bytes, **kw: Any) -> kv_pb2.KeyValue | None:
    kvs = read_range(store, RangeRequest(key=key, **kw)).kvs
    return kvs[0] if kvs else None


def keys(resp: rpc_pb2.RangeResponse) -> list[bytes]:
    return [kv.key for kv in resp.kvs]


def op_put(key: bytes, value: bytes = b"", **kw: Any) -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value, **kw))


def op_del(key: bytes, range_end: bytes = b"") -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=key, range_end=range_end))


def op_get(key: bytes, range_end: bytes = b"", **kw: Any) -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(request_range=RangeRequest(key=key, range_end=range_end, **kw))


def stored_revisions(store: MvccStore) -> list[tuple[int, int, bool]]:
    """(main, sub, tombstone) of every revision physically stored."""
    backend = store._state.backend
    with backend.begin() as t:
        return [(*bytes_to_rev(k), is_tombstone(k)) for k, _ in t.cursor(db=backend.key_db)]


# --- revisions and generations ---


def test_fresh_store_starts_at_revision_one(store: MvccStore) -> None:
    assert store.current_revision == 1
    assert store.compact_revision == 0
    assert store.consistent_index == 0


def test_each_put_and_delete_outside_a_txn_takes_the_next_revision(store: MvccStore) -> None:
    assert put(store, b"a", b"1").header.revision == 2
    assert put(store, b"b", b"2").header.revision == 3
    assert delete(store, b"a").header.revision == 4
    assert store.current_revision == 4


def test_several_requests_in_one_batch_each_take_a_revision(store: MvccStore) -> None:
    with store.write(7) as b:
        apply_kv.batch_put(b, rpc_pb2.PutRequest(key=b"a"))
        apply_kv.batch_put(b, rpc_pb2.PutRequest(key=b"b"))
        assert b.revision == 3
        assert store.current_revision == 1  # nothing is visible before the commit
    assert store.current_revision == 3
    assert store.consistent_index == 7


def test_txn_writes_share_one_main_revision_with_growing_sub_revisions(store: MvccStore) -> None:
    resp = txn(store, rpc_pb2.TxnRequest(success=[op_put(b"a"), op_put(b"b"), op_del(b"a")]))
    assert resp.header.revision == 2
    assert stored_revisions(store) == [(2, 0, False), (2, 1, False), (2, 2, True)]
    assert get(store, b"b").mod_revision == 2  # type: ignore[union-attr]


def test_writes_that_change_nothing_keep_the_revision(store: MvccStore) -> None:
    put(store, b"a")
    assert delete(store, b"missing").deleted == 0
    assert store.current_revision == 2
    assert txn(store, rpc_pb2.TxnRequest(success=[op_get(b"a")])).header.revision == 2
    assert txn(store, rpc_pb2.TxnRequest(success=[op_del(b"zz")])).header.revision == 2
    assert store.current_revision == 2


def test_version_counts_changes_and_a_delete_starts_a_new_generation(store: MvccStore) -> None:
    put(store, b"k", b"1")
    put(store, b"k", b"2")
    kv = get(store, b"k")
    assert kv is not None and (kv.create_revision, kv.mod_revision, kv.version) == (2, 3, 2)
    delete(store, b"k")
    assert get(store, b"k") is None
    put(store, b"k", b"3")
    kv = get(store, b"k")
    assert kv is not None and (kv.create_revision, kv.mod_revision, kv.version) == (5, 5, 1)
    old = get(store, b"k", revision=3)
    assert old is not None and (old.value, old.version) == (b"2", 2)
    assert get(store, b"k", revision=4) is None


# --- range ---


@pytest.fixture
def abc(store: MvccStore) -> MvccStore:
    for key in (b"a", b"ab", b"abc", b"b", b"c"):
        put(store, key, key.upper())
    return store


@pytest.mark.parametrize(
    ("key", "range_end", "expected"),
    [
        (b"ab", b"", [b"ab"]),
        (b"zz", b"", []),
        (b"ab", b"ac", [b"ab", b"abc"]),
        (b"ab", b"\x00", [b"ab", b"abc", b"b", b"c"]),
        (b"\x00", b"\x00", [b"a", b"ab", b"abc", b"b", b"c"]),
        (b"b", b"a", []),
    ],
)
def test_range_end_selects_one_key_a_span_or_everything_from_key(
    abc: MvccStore, key: bytes, range_end: bytes, expected: list[bytes]
) -> None:
    assert keys(read_range(abc, RangeRequest(key=key, range_end=range_end))) == expected


def test_limit_cuts_the_result_sets_more_and_count_stays_the_total(abc: MvccStore) -> None:
    resp = read_range(abc, RangeRequest(key=b"a", range_end=b"\x00", limit=2))
    assert keys(resp) == [b"a", b"ab"]
    assert resp.more and resp.count == 5
    exact = read_range(abc, RangeRequest(key=b"a", range_end=b"\x00", limit=5))
    assert not exact.more and len(exact.kvs) == 5


def test_range_revision_zero_is_current_and_out_of_range_revisions_fail(abc: MvccStore) -> None:
    assert keys(read_range(abc, RangeRequest(key=b"a", range_end=b"\x00", revision=3))) == [b"a", b"ab"]
    with pytest.raises(FutureRevisionError):
        read_range(abc, RangeRequest(key=b"a", revision=7))
    compact(abc, 4)
    with pytest.raises(CompactedError) as err:
        read_range(abc, RangeRequest(key=b"a", revision=3))
    assert err.value.compact_revision == 4
    assert keys(read_range(abc, RangeRequest(key=b"a", range_end=b"\x00", revision=4))) == [b"a", b"ab", b"abc"]


@pytest.fixture
def sortable(store: MvccStore) -> MvccStore:
    # key: value, version
    put(store, b"k1", b"z")
    put(store, b"k2", b"x")
    put(store, b"k2", b"y")
    put(store, b"k3", b"a")
    put(store, b"k1", b"b")
    put(store, b"k1", b"c")
    # k1: create 2, mod 7, ver 3, "c"; k2: create 3, mod 4, ver 2, "y"; k3: create 5, mod 5, ver 1, "a"
    return store


@pytest.mark.parametrize(
    ("order", "target", "expected"),
    [
        (RangeRequest.NONE, RangeRequest.KEY, [b"k1", b"k2", b"k3"]),
        (RangeRequest.DESCEND, RangeRequest.KEY, [b"k3", b"k2", b"k1"]),
        (RangeRequest.NONE, RangeRequest.VERSION, [b"k3", b"k2", b"k1"]),  # NONE with a target ascends
        (RangeRequest.DESCEND, RangeRequest.VERSION, [b"k1", b"k2", b"k3"]),
        (RangeRequest.ASCEND, RangeRequest.CREATE, [b"k1", b"k2", b"k3"]),
        (RangeRequest.DESCEND, RangeRequest.CREATE, [b"k3", b"k2", b"k1"]),
        (RangeRequest.ASCEND, RangeRequest.MOD, [b"k2", b"k3", b"k1"]),
        (RangeRequest.DESCEND, RangeRequest.MOD, [b"k1", b"k3", b"k2"]),
        (RangeRequest.ASCEND, RangeRequest.VALUE, [b"k3", b"k1", b"k2"]),
        (RangeRequest.DESCEND, RangeRequest.VALUE, [b"k2", b"k1", b"k3"]),
    ],
)
def test_sort_order_and_target(sortable: MvccStore, order: int, target: int, expected: list[bytes]) -> None:
    req = RangeRequest(key=b"k", range_end=b"l", sort_order=order, sort_target=target)  # type: ignore[arg-type]
    assert keys(read_range(sortable, req)) == expected


def test_sorting_happens_before_the_limit(sortable: MvccStore) -> None:
    req = RangeRequest(key=b"k", range_end=b"l", limit=1)
    req.sort_order, req.sort_target = RangeRequest.DESCEND, RangeRequest.MOD
    resp = read_range(sortable, req)
    assert keys(resp) == [b"k1"]
    assert resp.more and resp.count == 3


def test_keys_only_drops_values_and_count_only_drops_kvs(sortable: MvccStore) -> None:
    resp = read_range(sortable, RangeRequest(key=b"k", range_end=b"l", keys_only=True))
    assert keys(resp) == [b"k1", b"k2", b"k3"] and all(kv.value == b"" for kv in resp.kvs)
    assert resp.kvs[0].version == 3
    counted = read_range(sortable, RangeRequest(key=b"k", range_end=b"l", count_only=True))
    assert counted.count == 3 and not counted.kvs


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("min_mod_revision", 5, [b"k1", b"k3"]),
        ("max_mod_revision", 5, [b"k2", b"k3"]),
        ("min_create_revision", 3, [b"k2", b"k3"]),
        ("max_create_revision", 3, [b"k1", b"k2"]),
    ],
)
def test_revision_filters_drop_kvs_but_not_the_count(
    sortable: MvccStore, field: str, value: int, expected: list[bytes]
) -> None:
    resp = read_range(sortable, RangeRequest(key=b"k", range_end=b"l", **{field: value}))  # type: ignore[arg-type]
    assert keys(resp) == expected
    assert resp.count == 3  # etcd counts the keys in the range before filtering


def test_filters_apply_before_the_limit(sortable: MvccStore) -> None:
    resp = read_range(sortable, RangeRequest(key=b"k", range_end=b"l", min_mod_revision=5, limit=1))
    assert keys(resp) == [b"k1"] and resp.more


# --- put ---


def test_put_returns_the_previous_kv_when_asked(store: MvccStore) -> None:
    assert not put(store, b"k", b"1", prev_kv=True).HasField("prev_kv")
    resp = put(store, b"k", b"2", prev_kv=True)
    assert resp.prev_kv.value == b"1" and resp.prev_kv.mod_revision == 2


def test_put_with_an_unknown_lease_fails_and_changes_nothing(store: MvccStore) -> None:
    with pytest.raises(LeaseNotFoundError):
        put(store, b"k", b"v", lease=42)
    assert store.current_revision == 1 and get(store, b"k") is None


def test_put_attaches_moves_and_detaches_leases(store: MvccStore) -> None:
    with store.write(1) as b:
        b.lease_grant(10, 60)
        b.lease_grant(11, 30)
    put(store, b"k", lease=10)
    assert store.lease_keys(10) == [b"k"]
    put(store, b"k", lease=11)
    assert store.lease_keys(10) == [] and store.lease_keys(11) == [b"k"]
    put(store, b"k")
    assert store.lease_keys(11) == []
    put(store, b"j", lease=10)
    delete(store, b"j")
    assert store.lease_keys(10) == []
    assert store.leases() == [(10, 60), (11, 30)]


def test_ignore_value_and_ignore_lease_keep_what_the_key_had(store: MvccStore) -> None:
    with store.write(1) as b:
        b.lease_grant(5, 60)
    put(store, b"k", b"old", lease=5)
    put(store, b"k", ignore_value=True)
    kv = get(store, b"k")
    assert kv is not None and (kv.value, kv.lease, kv.version) == (b"old", 0, 2)
    put(store, b"k", lease=5)
    put(store, b"k", b"new", ignore_lease=True)
    kv = get(store, b"k")
    assert kv is not None and (kv.value, kv.lease) == (b"new", 5)


def test_ignore_flags_on_a_missing_key_fail_with_key_not_found(store: MvccStore) -> None:
    with pytest.raises(errors.EtcdError, match="etcdserver: key not found"):
        put(store, b"k", ignore_value=True)
    with pytest.raises(errors.EtcdError, match="etcdserver: key not found"):
        put(store, b"k", b"v", ignore_lease=True)
    assert store.current_revision == 1


def test_ignore_value_with_a_value_and_ignore_lease_with_a_lease_are_refused() -> None:
    with pytest.raises(errors.EtcdError, match="etcdserver: value is provided"):
        check_put_request(rpc_pb2.PutRequest(key=b"k", value=b"other", ignore_value=True))
    with pytest.raises(errors.EtcdError, match="etcdserver: lease is provided"):
        check_put_request(rpc_pb2.PutRequest(key=b"k", lease=3, ignore_lease=True))


# --- delete range ---


def test_delete_range_counts_deletions_and_returns_prev_kvs(abc: MvccStore) -> None:
    resp = delete(abc, b"ab", b"b", prev_kv=True)
    assert resp.deleted == 2
    assert [kv.key for kv in resp.prev_kvs] == [b"ab", b"abc"]
    assert resp.header.revision == 7
    assert keys(read_range(abc, RangeRequest(key=b"\x00", range_end=b"\x00"))) == [b"a", b"b", b"c"]
    assert delete(abc, b"\x00", b"\x00").deleted == 3


# --- txn ---


@pytest.mark.parametrize(
    ("target", "field", "value", "result", "expected"),
    [
        (Compare.VALUE, "value", b"v2", Compare.EQUAL, True),
        (Compare.VALUE, "value", b"v1", Compare.GREATER, True),
        (Compare.VALUE, "value", b"v3", Compare.LESS, True),
        (Compare.VALUE, "value", b"v2", Compare.NOT_EQUAL, False),
        (Compare.VERSION, "version", 2, Compare.EQUAL, True),
        (Compare.VERSION, "version", 2, Compare.GREATER, False),
        (Compare.CREATE, "create_revision", 2, Compare.EQUAL, True),
        (Compare.CREATE, "create_revision", 3, Compare.LESS, True),
        (Compare.MOD, "mod_revision", 3, Compare.EQUAL, True),
        (Compare.MOD, "mod_revision", 2, Compare.GREATER, True),
        (Compare.MOD, "mod_revision", 3, Compare.NOT_EQUAL, False),
        (Compare.LEASE, "lease", 0, Compare.EQUAL, True),
        (Compare.LEASE, "lease", 1, Compare.LESS, True),
    ],
)
def test_txn_compares_each_target_with_each_result(
    store: MvccStore, target: int, field: str, value: Any, result: int, expected: bool
) -> None:
    put(store, b"k", b"v1")
    put(store, b"k", b"v2")
    cmp = Compare(key=b"k", target=target, result=result, **{field: value})  # type: ignore[arg-type]
    resp = txn(store, rpc_pb2.TxnRequest(compare=[cmp], success=[op_get(b"k")], failure=[op_get(b"none")]))
    assert resp.succeeded is expected
    assert len(resp.responses[0].response_range.kvs) == (1 if expected else 0)


def test_compare_against_a_missing_key_uses_zero_fields_but_value_compares_fail(store: MvccStore) -> None:
    def check(cmp: rpc_pb2.Compare) -> bool:
        return txn(store, rpc_pb2.TxnRequest(compare=[cmp])).succeeded

    assert check(Compare(key=b"x", target=Compare.VERSION, result=Compare.EQUAL, version=0))
    assert check(Compare(key=b"x", target=Compare.CREATE, result=Compare.EQUAL, create_revision=0))
    assert check(Compare(key=b"x", target=Compare.MOD, result=Compare.LESS, mod_revision=1))
    assert not check(Compare(key=b"x", target=Compare.VALUE, result=Compare.EQUAL, value=b""))
    assert not check(Compare(key=b"x", target=Compare.VALUE, result=Compare.NOT_EQUAL, value=b"a"))


def test_compare_over_a_range_needs_every_key_to_match(abc: MvccStore) -> None:
    def check(cmp: rpc_pb2.Compare) -> bool:
        return txn(abc, rpc_pb2.TxnRequest(compare=[cmp])).succeeded

    span, rest = {"key": b"a", "range_end": b"b"}, {"key": b"a", "range_end": b"\x00"}
    assert check(Compare(**span, target=Compare.VERSION, result=Compare.EQUAL, version=1))  # type: ignore[arg-type]
    assert not check(Compare(**span, target=Compare.MOD, result=Compare.LESS, mod_revision=4))  # type: ignore[arg-type]
    assert check(Compare(**rest, target=Compare.MOD, result=Compare.LESS, mod_revision=7))  # type: ignore[arg-type]
    assert not check(Compare(**rest, target=Compare.VALUE, result=Compare.EQUAL, value=b"A"))  # type: ignore[arg-type]


def test_failed_compare_runs_the_failure_branch(store: MvccStore) -> None:
    cmp = Compare(key=b"k", target=Compare.VERSION, result=Compare.GREATER, version=0)
    resp = txn(store, rpc_pb2.TxnRequest(compare=[cmp], success=[op_put(b"s")], failure=[op_put(b"f")]))
    assert not resp.succeeded
    assert get(store, b"f") is not None and get(store, b"s") is None
    assert resp.responses[0].response_put.header.revision == 2


def test_reads_inside_a_txn_see_its_earlier_writes(store: MvccStore) -> None:
    put(store, b"a", b"old")
    ops = [op_put(b"a", b"new"), op_get(b"a"), op_del(b"a"), op_get(b"a")]
    resp = txn(store, rpc_pb2.TxnRequest(success=ops))
    first, second = resp.responses[1].response_range, resp.responses[3].response_range
    assert [kv.value for kv in first.kvs] == [b"new"] and first.header.revision == 3
    assert not second.kvs
    assert resp.responses[2].response_delete_range.deleted == 1


def test_nested_txns_apply_their_taken_branch_in_the_same_revision(store: MvccStore) -> None:
    put(store, b"flag", b"on")
    inner = rpc_pb2.TxnRequest(
        compare=[Compare(key=b"flag", target=Compare.VALUE, result=Compare.EQUAL, value=b"on")],
        success=[op_put(b"inner-yes")],
        failure=[op_put(b"inner-no")],
    )
    outer = rpc_pb2.TxnRequest(success=[op_put(b"outer"), rpc_pb2.RequestOp(request_txn=inner)])
    resp = txn(store, outer)
    assert resp.succeeded and resp.responses[1].response_txn.succeeded
    assert resp.header.revision == 3
    assert get(store, b"outer").mod_revision == get(store, b"inner-yes").mod_revision == 3  # type: ignore[union-attr]
    assert get(store, b"inner-no") is None


def test_nested_compares_see_the_state_before_the_txn(store: MvccStore) -> None:
    # The outer txn deletes "flag" before the nested txn runs, but etcd decides every branch up front.
    put(store, b"flag", b"on")
    inner = rpc_pb2.TxnRequest(
        compare=[Compare(key=b"flag", target=Compare.VERSION, result=Compare.GREATER, version=0)],
        success=[op_put(b"saw-flag")],
        failure=[op_put(b"no-flag")],
    )
    txn(store, rpc_pb2.TxnRequest(success=[op_del(b"flag"), rpc_pb2.RequestOp(request_txn=inner)]))
    assert get(store, b"saw-flag") is not None and get(store, b"no-flag") is None


def test_a_failing_request_leaves_nothing_of_its_txn_and_the_batch_goes_on(store: MvccStore) -> None:
    put(store, b"keep", b"1")
    with store.write(5) as b:
        apply_kv.batch_put(b, rpc_pb2.PutRequest(key=b"before"))
        with pytest.raises(LeaseNotFoundError):
            apply_kv.batch_txn(b, rpc_pb2.TxnRequest(success=[op_put(b"x"), op_put(b"y", lease=99)]))
        # Checks pass up front but the put fails while applying: the nested LMDB txn is rolled back.
        with pytest.raises(errors.EtcdError, match="etcdserver: key not found"):
            ops = [op_put(b"z"), op_del(b"keep"), op_put(b"keep", ignore_value=True)]
            apply_kv.batch_txn(b, rpc_pb2.TxnRequest(success=ops))
        apply_kv.batch_put(b, rpc_pb2.PutRequest(key=b"after"))
    assert store.current_revision == 4
    assert keys(read_range(store, RangeRequest(key=b"\x00", range_end=b"\x00"))) == [b"after", b"before", b"keep"]
    kv = get(store, b"keep")
    assert kv is not None and kv.version == 1
    assert stored_revisions(store) == [(2, 0, False), (3, 0, False), (4, 0, False)]


def test_a_txn_checks_range_revisions_before_writing(store: MvccStore) -> None:
    put(store, b"a")
    with pytest.raises(FutureRevisionError):
        txn(store, rpc_pb2.TxnRequest(success=[op_put(b"b"), op_get(b"a", revision=9)]))
    assert get(store, b"b") is None and store.current_revision == 2


def test_batch_reads_see_its_writes_and_store_reads_do_not_until_commit(store: MvccStore) -> None:
    with store.write(1) as b:
        apply_kv.batch_put(b, rpc_pb2.PutRequest(key=b"k", value=b"v"))
        assert [kv.value for kv in apply_kv.batch_range(b, RangeRequest(key=b"k")).kvs] == [b"v"]
        assert get(store, b"k") is None
    assert get(store, b"k") is not None


def test_an_exception_in_the_batch_discards_all_of_it(store: MvccStore) -> None:
    put(store, b"k", b"1")
    with pytest.raises(RuntimeError), store.write(9) as b:
        apply_kv.batch_put(b, rpc_pb2.PutRequest(key=b"k", value=b"2"))
        apply_kv.batch_put(b, rpc_pb2.PutRequest(key=b"new"))
        b.compact(2)
        raise RuntimeError("apply failed")
    assert store.current_revision == 2 and store.consistent_index == 1 and store.compact_revision == 0
    assert get(store, b"new") is None
    kv = get(store, b"k")
    assert kv is not None and kv.value == b"1"
    assert put(store, b"k", b"3").header.revision == 3  # the index is back to where it was
    assert get(store, b"k").version == 2  # type: ignore[union-attr]


# --- compaction ---


def test_compaction_keeps_each_live_key_latest_revision_and_drops_deleted_keys(store: MvccStore) -> None:
    put(store, b"a", b"1")  # 2
    put(store, b"a", b"2")  # 3
    put(store, b"b", b"1")  # 4
    delete(store, b"b")  # 5
    put(store, b"c", b"1")  # 6
    put(store, b"a", b"3")  # 7
    compact(store, 6)
    assert stored_revisions(store) == [(3, 0, False), (6, 0, False), (7, 0, False)]
    assert store.compact_revision == 6
    at6 = read_range(store, RangeRequest(key=b"\x00", range_end=b"\x00", revision=6))
    assert [(kv.key, kv.value) for kv in at6.kvs] == [(b"a", b"2"), (b"c", b"1")]


def test_compaction_at_a_deletion_removes_its_tombstone(store: MvccStore) -> None:
    put(store, b"a")
    delete(store, b"a")
    compact(store, 3)
    assert stored_revisions(store) == []
    assert store.current_revision == 3
    assert read_range(store, RangeRequest(key=b"a", revision=3)).count == 0


def test_ranges_at_and_after_the_compaction_revision_do_not_change(store: MvccStore) -> None:
    for i in range(30):
        key = b"k%d" % (i % 4)
        if i % 7 == 6:
            delete(store, key)
        else:
            put(store, key, b"%d" % i)
    everything = RangeRequest(key=b"\x00", range_end=b"\x00")
    before = {
        rev: read_range(store, RangeRequest(key=b"\x00", range_end=b"\x00", revision=rev))
        for rev in range(15, store.current_revision + 1)
    }
    compact(store, 15)
    for rev, resp in before.items():
        assert read_range(store, RangeRequest(key=b"\x00", range_end=b"\x00", revision=rev)) == resp
    now = read_range(store, everything)
    store.close()
    reopened = MvccStore(store.path)
    try:
        for rev, resp in before.items():
            assert read_range(reopened, RangeRequest(key=b"\x00", range_end=b"\x00", revision=rev)) == resp
        assert reopened.compact_revision == 15
        assert read_range(reopened, everything) == now
    finally:
        reopened.close()


def test_compact_refuses_old_and_future_revisions(store: MvccStore) -> None:
    put(store, b"a")
    put(store, b"a")
    with pytest.raises(FutureRevisionError):
        compact(store, 4)
    compact(store, 2)
    with pytest.raises(CompactedError):
        compact(store, 2)


def test_writes_after_a_compaction_in_the_same_batch_stay(store: MvccStore) -> None:
    put(store, b"a", b"1")
    put(store, b"a", b"2")
    with store.write(9) as b:
        b.compact(3)
        apply_kv.batch_put(b, rpc_pb2.PutRequest(key=b"a", value=b"3"))
        apply_kv.batch_delete_range(b, rpc_pb2.DeleteRangeRequest(key=b"a"))
        apply_kv.batch_put(b, rpc_pb2.PutRequest(key=b"a", value=b"4"))
    kv = get(store, b"a")
    assert kv is not None and (kv.value, kv.version, kv.create_revision) == (b"4", 1, 6)
    assert get(store, b"a", revision=3).value == b"2"  # type: ignore[union-attr]
    with pytest.raises(CompactedError):
        get(store, b"a", revision=2)


# --- leases ---


def test_revoking_a_lease_deletes_its_keys_at_one_revision(store: MvccStore) -> None:
    with store.write(1) as b:
        b.lease_grant(7, 10)
    put(store, b"b", lease=7)
    put(store, b"a", lease=7)
    put(store, b"c")
    with store.write(5) as b:
        b.lease_revoke(7)
    assert store.current_revision == 5
    assert stored_revisions(store)[-2:] == [(5, 0, True), (5, 1, True)]
    assert keys(read_range(store, RangeRequest(key=b"\x00", range_end=b"\x00"))) == [b"c"]
    assert store.leases() == [] and store.lease_keys(7) == []


def test_lease_grant_and_revoke_errors(store: MvccStore) -> None:
    with store.write(1) as b:
        b.lease_grant(7, 10)
        with pytest.raises(LeaseExistsError):
            b.lease_grant(7, 20)
        with pytest.raises(LeaseNotFoundError):
            b.lease_revoke(8)
        b.lease_revoke(7)
    assert store.leases() == [] and store.current_revision == 1


def test_leases_and_their_keys_survive_a_restart(store: MvccStore) -> None:
    with store.write(1) as b:
        b.lease_grant(3, 30)
        apply_kv.batch_put(b, rpc_pb2.PutRequest(key=b"x", lease=3))
        apply_kv.batch_put(b, rpc_pb2.PutRequest(key=b"y", lease=3))
        apply_kv.batch_delete_range(b, rpc_pb2.DeleteRangeRequest(key=b"y"))
    store.close()
    with MvccStore(store.path) as reopened:
        assert reopened.leases() == [(3, 30)]
        assert reopened.lease_keys(3) == [b"x"]


# --- quota ---


def test_a_put_beyond_the_quota_is_refused_and_deletes_still_work(tmp_path: Path) -> None:
    with MvccStore(tmp_path / "db", quota_bytes=256 * 1024) as store:
        refused = None
        for i in range(200):
            try:
                put(store, b"k%03d" % i, b"x" * 4000)
            except QuotaExceededError as e:
                refused = i
                assert e.quota_bytes == 256 * 1024
                break
        assert refused is not None
        rev = store.current_revision
        assert get(store, b"k%03d" % refused) is None
        assert store.db_size_in_use() <= 256 * 1024
        with pytest.raises(QuotaExceededError):
            txn(store, rpc_pb2.TxnRequest(success=[op_put(b"t", b"y" * 8000)]))
        assert store.current_revision == rev
        delete(store, b"k", b"l")
        compact(store, store.current_revision)
        put(store, b"again", b"x" * 4000)  # compaction gave the space back
        assert get(store, b"again") is not None


# --- hashes ---


def feed(store: MvccStore) -> None:
    with store.write(1) as b:
        b.lease_grant(1, 5)
    put(store, b"a", b"1")
    put(store, b"b", b"2", lease=1)
    txn(store, rpc_pb2.TxnRequest(success=[op_put(b"a", b"3"), op_del(b"b"), op_put(b"c", b"4")]))
    delete(store, b"c")
    put(store, b"d", b"5")


def test_hash_kv_is_the_same_across_a_restart_and_for_two_stores_fed_the_same(tmp_path: Path) -> None:
    one, two = MvccStore(tmp_path / "one"), MvccStore(tmp_path / "two")
    try:
        feed(one)
        feed(two)
        for rev in range(0, one.current_revision + 1):
            assert one.hash_kv(rev) == two.hash_kv(rev)
        assert one.hash() == two.hash()
        before = [one.hash_kv(rev) for rev in range(0, one.current_revision + 1)]
        one.close()
        one = MvccStore(tmp_path / "one")
        assert [one.hash_kv(rev) for rev in range(0, one.current_revision + 1)] == before
        compact(one, 4)
        compact(two, 4)
        assert one.hash_kv(0) == two.hash_kv(0) and one.hash_kv(0)[1] == 4
    finally:
        one.close()
        two.close()


def test_hash_kv_differs_for_different_data_and_rejects_bad_revisions(store: MvccStore) -> None:
    put(store, b"a", b"1")
    h1 = store.hash_kv(0)
    put(store, b"a", b"2")
    assert store.hash_kv(0)[0] != h1[0]
    assert store.hash_kv(2) == (h1[0], -1, 2)
    with pytest.raises(FutureRevisionError):
        store.hash_kv(9)
    compact(store, 2)
    with pytest.raises(CompactedError):
        store.hash_kv(2)


def test_hash_ignores_the_raft_position(store: MvccStore) -> None:
    put(store, b"a")
    h = store.hash()
    with store.write(100, 7):
        pass
    assert store.hash() == h and store.consistent_index == 100
    put(store, b"a")
    assert store.hash() != h


# --- persistence, snapshots, defragmentation ---


def test_consistent_index_and_term_persist_with_the_data(store: MvccStore) -> None:
    with store.write(41, 3) as b:
        apply_kv.batch_put(b, rpc_pb2.PutRequest(key=b"k"))
    with pytest.raises(ValueError), store.write(42, 3) as b:
        apply_kv.batch_put(b, rpc_pb2.PutRequest(key=b"lost"))
        raise ValueError
    store.close()
    with MvccStore(store.path) as reopened:
        assert (reopened.consistent_index, reopened.consistent_term) == (41, 3)
        assert reopened.current_revision == 2 and get(reopened, b"lost") is None


def test_a_committed_batch_survives_kill_9(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal
        from storage.mvcc import MvccStore
        store = MvccStore({str(tmp_path / "db")!r})
        with store.write(12, 2) as b:
            b.put(b"k", b"durable")
        with store.write(13, 2) as b:
            b.put(b"k", b"never committed")
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[2], timeout=60)
    assert result.returncode == -signal.SIGKILL
    with MvccStore(tmp_path / "db") as store:
        kv = get(store, b"k")
        assert kv is not None and kv.value == b"durable"
        assert (store.consistent_index, store.consistent_term, store.current_revision) == (12, 2, 2)


def test_snapshot_bytes_restore_into_an_equal_store(store: MvccStore, tmp_path: Path) -> None:
    feed(store)
    compact(store, 3)
    with store.write(77, 2) as b:
        b.meta_put("members", b"1", b"m1")
    data = store.snapshot_bytes()
    MvccStore.restore(tmp_path / "restored", data)
    with pytest.raises(FileExistsError):
        MvccStore.restore(tmp_path / "restored", data)
    with MvccStore(tmp_path / "restored") as copy:
        assert copy.current_revision == store.current_revision
        assert copy.compact_revision == 3 and copy.consistent_index == 77
        assert copy.hash_kv(0) == store.hash_kv(0) and copy.hash() == store.hash()
        assert copy.leases() == store.leases()
        assert copy.meta_items("members") == [(b"1", b"m1")]
        everything = RangeRequest(key=b"\x00", range_end=b"\x00")
        assert read_range(copy, everything) == read_range(store, everything)


def test_restore_refuses_bytes_that_are_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a store snapshot"):
        MvccStore.restore(tmp_path / "bad", b"not a database" * 1000)
    assert not (tmp_path / "bad" / "data.mdb").exists()
    with MvccStore(tmp_path / "store") as store:
        put(store, b"k", b"v")
        with pytest.raises(ValueError):
            store.replace_from_snapshot(b"\0" * 8192)
        assert get(store, b"k") is not None  # the store was left as it was


def test_replace_from_snapshot_swaps_the_whole_store(tmp_path: Path) -> None:
    with MvccStore(tmp_path / "leader") as leader, MvccStore(tmp_path / "follower") as follower:
        put(follower, b"stale", b"x")
        feed(leader)
        follower.replace_from_snapshot(leader.snapshot_bytes())
        assert follower.current_revision == leader.current_revision
        assert get(follower, b"stale") is None
        assert follower.lease_keys(1) == leader.lease_keys(1)
        assert follower.hash() == leader.hash()
        put(follower, b"next")
        assert follower.current_revision == leader.current_revision + 1


def test_defragment_keeps_the_data_and_gives_back_space(store: MvccStore) -> None:
    for i in range(300):
        put(store, b"k%d" % (i % 10), b"v" * 2000)
    compact(store, store.current_revision)
    big = store.db_size()
    everything = RangeRequest(key=b"\x00", range_end=b"\x00")
    before = (store.hash(), store.hash_kv(0), read_range(store, everything))
    store.defragment()
    assert store.db_size() < big
    assert (store.hash(), store.hash_kv(0), read_range(store, everything)) == before
    put(store, b"k0", b"after")
    assert get(store, b"k0").value == b"after"  # type: ignore[union-attr]


def test_meta_buckets_store_values_by_bucket_and_key(store: MvccStore) -> None:
    with store.write(1) as b:
        b.meta_put("members", b"2", b"two")
        b.meta_put("members", b"1", b"one")
        b.meta_put("alarm", b"1", b"nospace")
    assert store.meta_items("members") == [(b"1", b"one"), (b"2", b"two")]
    assert store.meta_get("alarm", b"1") == b"nospace"
    with store.write(2) as b:
        b.meta_delete("alarm", b"1")
    assert store.meta_get("alarm", b"1") is None
    assert store.current_revision == 1  # server buckets are not part of the keyspace


def test_keys_longer_than_lmdb_keys_work(store: MvccStore) -> None:
    long_key = b"k" * 4096
    put(store, long_key, b"v")
    delete(store, long_key)
    put(store, long_key, b"w")
    store.close()
    with MvccStore(store.path) as reopened:
        kv = get(reopened, long_key)
        assert kv is not None and kv.value == b"w" and kv.create_revision == 4
