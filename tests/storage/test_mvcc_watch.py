"""Watchers: history replay, ranges, filters, prev_kv, slow consumers caught up from history without holding
up writes, compaction, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from etcdpb.etcdserverpb import rpc_pb2
from etcdpb.mvccpb import kv_pb2
from pyetcd import apply_kv
from storage.mvcc import CompactedError, MvccStore, Watcher

Event = kv_pb2.Event
PUT, DELETE = Event.PUT, Event.DELETE


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MvccStore]:
    s = MvccStore(tmp_path / "db")
    try:
        yield s
    finally:
        s.close()


def put(store: MvccStore, key: bytes, value: bytes = b"") -> int:
    with store.write(store.consistent_index + 1) as b:
        return apply_kv.batch_put(b, rpc_pb2.PutRequest(key=key, value=value)).header.revision


def delete(store: MvccStore, key: bytes, range_end: bytes = b"") -> None:
    with store.write(store.consistent_index + 1) as b:
        apply_kv.batch_delete_range(b, rpc_pb2.DeleteRangeRequest(key=key, range_end=range_end))


def summary(events: list[kv_pb2.Event]) -> list[tuple[int, bytes, int, bytes]]:
    return [(ev.type, ev.kv.key, ev.kv.mod_revision, ev.kv.value) for ev in events]


async def collect(w: Watcher, count: int, **kw: Any) -> list[kv_pb2.Event]:
    """The next ``count`` events, batch by batch; the timeout only keeps a broken test from hanging."""
    events: list[kv_pb2.Event] = []
    while len(events) < count:
        batch = await asyncio.wait_for(w.next_batch(), timeout=10)
        assert batch, "watcher ended early"
        events.extend(batch)
    assert len(events) == count, "more events than expected"
    return events


async def nothing_more(w: Watcher) -> bool:
    """Whether the watcher has nothing to deliver (gives it a few loop turns to show otherwise)."""
    task = asyncio.ensure_future(w.next_batch())
    for _ in range(20):
        await asyncio.sleep(0)
    if task.done():
        return False
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return True


async def test_watch_replays_history_from_an_old_revision_then_goes_live(store: MvccStore) -> None:
    for i in range(5):
        put(store, b"k", b"%d" % i)  # revisions 2..6
    w = store.watch(b"k", b"", 4)
    assert not w.compacted
    assert summary(await collect(w, 3)) == [(PUT, b"k", rev, b"%d" % (rev - 2)) for rev in (4, 5, 6)]
    put(store, b"k", b"live")
    assert summary(await collect(w, 1)) == [(PUT, b"k", 7, b"live")]
    assert await nothing_more(w)


async def test_start_revision_zero_sees_only_new_events(store: MvccStore) -> None:
    put(store, b"k", b"old")
    w = store.watch(b"k", b"", 0)
    assert w.synced
    delete(store, b"k")
    assert summary(await collect(w, 1)) == [(DELETE, b"k", 3, b"")]


async def test_prefix_and_from_key_watches_see_only_their_keys(store: MvccStore) -> None:
    prefix = store.watch(b"a/", b"a0", 0)
    from_b = store.watch(b"b", b"\x00", 0)
    single = store.watch(b"a", b"", 0)
    for key in (b"a", b"a/1", b"b", b"a/2", b"c"):
        put(store, key)
    assert [ev.kv.key for ev in await collect(prefix, 2)] == [b"a/1", b"a/2"]
    assert [ev.kv.key for ev in await collect(from_b, 2)] == [b"b", b"c"]
    assert [ev.kv.key for ev in await collect(single, 1)] == [b"a"]
    for w in (prefix, from_b, single):
        assert await nothing_more(w)


async def test_filters_drop_puts_or_deletes(store: MvccStore) -> None:
    no_puts = store.watch(b"k", b"", 0, filter_put=True)
    no_deletes = store.watch(b"k", b"", 0, filter_delete=True)
    put(store, b"k", b"1")
    delete(store, b"k")
    put(store, b"k", b"2")
    assert summary(await collect(no_puts, 1)) == [(DELETE, b"k", 3, b"")]
    assert summary(await collect(no_deletes, 2)) == [(PUT, b"k", 2, b"1"), (PUT, b"k", 4, b"2")]
    assert await nothing_more(no_puts)


async def test_prev_kv_carries_the_key_as_it_was_before_the_event(store: MvccStore) -> None:
    put(store, b"k", b"1")
    live = store.watch(b"k", b"", 0, prev_kv=True)
    plain = store.watch(b"k", b"", 0)
    put(store, b"k", b"2")
    delete(store, b"k")
    events = await collect(live, 2)
    assert [(ev.kv.value, ev.prev_kv.value, ev.prev_kv.mod_revision) for ev in events] == [
        (b"2", b"1", 2),
        (b"", b"2", 3),
    ]
    assert not any(ev.HasField("prev_kv") for ev in await collect(plain, 2))
    replay = store.watch(b"k", b"", 2, prev_kv=True)
    events = await collect(replay, 3)
    assert [ev.HasField("prev_kv") for ev in events] == [False, True, True]


async def test_a_txn_events_arrive_together_in_sub_revision_order(store: MvccStore) -> None:
    w = store.watch(b"\x00", b"\x00", 0)
    ops = [
        rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"b", value=b"1")),
        rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"a", value=b"2")),
        rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=b"b")),
    ]
    with store.write(1) as b:
        apply_kv.batch_txn(b, rpc_pb2.TxnRequest(success=ops))
    batch = await asyncio.wait_for(w.next_batch(), timeout=10)
    assert summary(batch) == [(PUT, b"b", 2, b"1"), (PUT, b"a", 2, b"2"), (DELETE, b"b", 2, b"")]


async def test_a_slow_watcher_is_caught_up_from_history_without_holding_up_writes(store: MvccStore) -> None:
    store.watch_buffer_events = 8
    slow = store.watch(b"k", b"\x00", 0)
    fast = store.watch(b"k", b"\x00", 0)
    got_fast: list[kv_pb2.Event] = []
    for i in range(200):
        with store.write(i + 1) as b:  # every write returns at once, however far behind `slow` is
            apply_kv.batch_put(b, rpc_pb2.PutRequest(key=b"k%d" % (i % 7), value=b"%d" % i))
        if i % 5 == 4:
            got_fast.extend(await collect(fast, 5))
    assert not slow._synced and slow._pending_events <= 8  # it stopped buffering
    assert fast.synced
    events = await collect(slow, 200)
    assert [ev.kv.mod_revision for ev in events] == list(range(2, 202))  # each once, in order
    assert [ev.kv.value for ev in events] == [b"%d" % i for i in range(200)]
    assert summary(got_fast) == summary(events)
    assert slow.synced
    put(store, b"k", b"live")
    assert summary(await collect(slow, 1)) == [(PUT, b"k", 202, b"live")]


async def test_watching_from_a_compacted_revision_is_refused_with_its_revision(store: MvccStore) -> None:
    for i in range(5):
        put(store, b"k", b"%d" % i)  # revisions 2..6
    with store.write(99) as b:
        b.compact(5)
    w = store.watch(b"k", b"", 3)
    assert w.compacted and w.compact_revision == 5
    with pytest.raises(CompactedError) as err:
        await w.next_batch()
    assert err.value.compact_revision == 5
    at_compaction = store.watch(b"k", b"", 5)  # as in etcd, the compacted revision itself can be watched
    assert not at_compaction.compacted
    assert [ev.kv.mod_revision for ev in await collect(at_compaction, 2)] == [5, 6]


async def test_a_lagging_watcher_overtaken_by_compaction_becomes_compacted(store: MvccStore) -> None:
    store.watch_buffer_events = 4
    w = store.watch(b"k", b"", 0)
    for i in range(20):
        put(store, b"k", b"%d" % i)
    with store.write(99) as b:
        b.compact(store.current_revision)
    buffered = await w.next_batch()
    assert [ev.kv.mod_revision for ev in buffered] == [2, 3, 4, 5]
    with pytest.raises(CompactedError):
        await w.next_batch()
    assert w.compacted and w.compact_revision == 21


async def test_a_future_start_revision_waits_for_that_revision(store: MvccStore) -> None:
    w = store.watch(b"k", b"", 4)
    for i in range(4):
        put(store, b"k", b"%d" % i)  # revisions 2..5
    assert [ev.kv.mod_revision for ev in await collect(w, 2)] == [4, 5]


async def test_cancel_ends_a_waiting_consumer_and_the_iteration(store: MvccStore) -> None:
    w = store.watch(b"k", b"", 0)
    seen: list[list[kv_pb2.Event]] = []

    async def consume() -> None:
        async for batch in w:
            seen.append(batch)

    task = asyncio.ensure_future(consume())
    put(store, b"k", b"1")
    while not seen:
        await asyncio.sleep(0)
    w.cancel()
    await asyncio.wait_for(task, timeout=10)
    assert len(seen) == 1 and w.canceled
    put(store, b"k", b"2")
    assert await w.next_batch() == []


async def test_closing_the_store_cancels_its_watchers(tmp_path: Path) -> None:
    store = MvccStore(tmp_path / "db")
    w = store.watch(b"k", b"", 0)
    waiting = asyncio.ensure_future(w.next_batch())
    await asyncio.sleep(0)
    store.close()
    assert await asyncio.wait_for(waiting, timeout=10) == []


async def test_watchers_have_distinct_ids(store: MvccStore) -> None:
    ids = {store.watch(b"k", b"", 0).id for _ in range(5)}
    assert len(ids) == 5


async def test_a_write_from_another_thread_wakes_the_watcher(store: MvccStore) -> None:
    w = store.watch(b"k", b"", 0)
    waiting = asyncio.ensure_future(w.next_batch())
    await asyncio.sleep(0)
    await asyncio.to_thread(put, store, b"k", b"threaded")
    assert summary(await asyncio.wait_for(waiting, timeout=10)) == [(PUT, b"k", 2, b"threaded")]


async def test_watchers_catch_up_when_a_snapshot_replaces_the_store(tmp_path: Path) -> None:
    with MvccStore(tmp_path / "leader") as leader, MvccStore(tmp_path / "follower") as follower:
        for i in range(3):
            put(leader, b"k", b"%d" % i)
            put(follower, b"k", b"%d" % i)
        w = follower.watch(b"k", b"", 0)
        put(leader, b"k", b"missed")
        put(leader, b"other")
        put(leader, b"k", b"also missed")
        follower.replace_from_snapshot(leader.snapshot_bytes())
        assert summary(await collect(w, 2)) == [(PUT, b"k", 5, b"missed"), (PUT, b"k", 7, b"also missed")]
        put(follower, b"k", b"live")
        assert summary(await collect(w, 1)) == [(PUT, b"k", 8, b"live")]
