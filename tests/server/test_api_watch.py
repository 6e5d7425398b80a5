"""The Watch servicer over the real MVCC store: IDs, history, cancels, progress, fragments, slow clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from etcdpb.etcdserverpb import rpc_pb2
from etcdpb.mvccpb import kv_pb2
from pyetcd.api.watch import ERR_DUPLICATE_WATCH_ID, PROGRESS_WATCH_ID, fragment_response
from tests.server.fake_etcd import CLUSTER_ID, MEMBER_ID, Api, FakeConfig, serve_api

READ_TIMEOUT = 10.0


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with serve_api(tmp_path / "db") as served:
        yield served


def create(key: bytes, range_end: bytes = b"", **options: Any) -> rpc_pb2.WatchRequest:
    request = rpc_pb2.WatchCreateRequest(key=key, range_end=range_end, **options)
    return rpc_pb2.WatchRequest(create_request=request)


async def read(call: Any) -> rpc_pb2.WatchResponse:
    response = await asyncio.wait_for(call.read(), READ_TIMEOUT)
    assert isinstance(response, rpc_pb2.WatchResponse), response
    return response


async def read_events(call: Any, count: int) -> list[kv_pb2.Event]:
    events: list[kv_pb2.Event] = []
    while len(events) < count:
        response = await read(call)
        events.extend(response.events)
    return events


async def test_watch_ids_count_up_from_zero_per_stream_and_created_comes_first(api: Api) -> None:
    call = api.watch.Watch()
    await call.write(create(b"a"))
    await call.write(create(b"b"))
    first, second = await read(call), await read(call)
    assert (first.watch_id, first.created, second.watch_id, second.created) == (0, True, 1, True)
    assert first.header.cluster_id == CLUSTER_ID
    assert first.header.member_id == MEMBER_ID
    assert first.header.revision == api.etcd.store.current_revision
    other = api.watch.Watch()
    await other.write(create(b"a"))
    assert (await read(other)).watch_id == 0
    revision = await api.put(b"b", b"2")
    response = await read(call)
    assert response.watch_id == 1
    assert [(ev.kv.key, ev.kv.value) for ev in response.events] == [(b"b", b"2")]
    assert response.header.revision == revision
    call.cancel()
    other.cancel()


async def test_client_chosen_watch_id_is_used_and_a_duplicate_is_refused(api: Api) -> None:
    call = api.watch.Watch()
    await call.write(create(b"k", watch_id=7))
    assert (await read(call)).watch_id == 7
    await call.write(create(b"j", watch_id=7))
    refused = await read(call)
    assert (refused.watch_id, refused.created, refused.canceled) == (PROGRESS_WATCH_ID, True, True)
    assert refused.cancel_reason == ERR_DUPLICATE_WATCH_ID
    await call.write(create(b"j"))
    assert (await read(call)).watch_id == 0
    call.cancel()


async def test_watch_from_an_old_revision_replays_history_with_prev_kv_and_filters(api: Api) -> None:
    start = await api.put(b"/h/a", b"1")
    await api.put(b"/h/a", b"2")
    await api.kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"/h/a"))
    await api.put(b"/other", b"x")
    call = api.watch.Watch()
    await call.write(create(b"/h/", b"/h0", start_revision=start, prev_kv=True))
    await call.write(create(b"/h/", b"/h0", start_revision=start, watch_id=5,
                            filters=[rpc_pb2.WatchCreateRequest.NOPUT]))
    by_watch: dict[int, list[kv_pb2.Event]] = {0: [], 5: []}
    while len(by_watch[0]) < 3 or len(by_watch[5]) < 1:
        response = await read(call)
        if not response.created:
            by_watch[response.watch_id].extend(response.events)
    assert [(ev.type, ev.kv.value, ev.prev_kv.value) for ev in by_watch[0]] == [
        (kv_pb2.Event.PUT, b"1", b""), (kv_pb2.Event.PUT, b"2", b"1"), (kv_pb2.Event.DELETE, b"", b"2")]
    assert [ev.type for ev in by_watch[5]] == [kv_pb2.Event.DELETE]
    call.cancel()


async def test_cancel_answers_canceled_and_stops_events(api: Api) -> None:
    call = api.watch.Watch()
    await call.write(create(b"x"))
    await call.write(create(b"y"))
    await read(call)
    await read(call)
    await call.write(rpc_pb2.WatchRequest(cancel_request=rpc_pb2.WatchCancelRequest(watch_id=0)))
    canceled = await read(call)
    assert (canceled.watch_id, canceled.canceled) == (0, True)
    await api.put(b"x")
    await api.put(b"y")
    response = await read(call)
    assert response.watch_id == 1  # nothing more for the canceled watcher on "x"
    assert [ev.kv.key for ev in response.events] == [b"y"]
    call.cancel()


async def test_watch_below_the_compacted_revision_is_canceled_with_the_compact_revision(api: Api) -> None:
    old = await api.put(b"c")
    current = await api.put(b"c")
    await api.kv.Compact(rpc_pb2.CompactionRequest(revision=current))
    call = api.watch.Watch()
    await call.write(create(b"c", start_revision=old))
    created = await read(call)
    assert created.created and not created.canceled
    canceled = await read(call)
    assert (canceled.watch_id, canceled.canceled, canceled.compact_revision) == (0, True, current)
    await call.write(create(b"c", start_revision=current))
    assert (await read(call)).watch_id == 1  # starting at the compacted revision itself is fine
    call.cancel()


async def test_progress_request_reports_the_current_revision_once_caught_up(api: Api) -> None:
    for i in range(50):
        await api.put(b"/p/%d" % i)
    current = api.etcd.store.current_revision
    call = api.watch.Watch()
    await call.write(create(b"/p/", b"/p0", start_revision=1))
    await call.write(rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest()))
    assert (await read(call)).created
    events: list[kv_pb2.Event] = []
    while True:
        response = await read(call)
        if response.watch_id == PROGRESS_WATCH_ID:
            break
        events.extend(response.events)
    # Every event at or below the progress revision came before it.
    assert len(events) == 50
    assert not response.events
    assert response.header.revision == current
    call.cancel()


async def test_progress_notify_sends_empty_responses_while_idle(tmp_path: Path) -> None:
    async with serve_api(tmp_path / "db", watch_progress_interval=0.05) as api:
        call = api.watch.Watch()
        await call.write(create(b"idle", progress_notify=True))
        assert (await read(call)).created
        revision = await api.put(b"elsewhere")
        notification = await read(call)
        assert (notification.watch_id, list(notification.events)) == (0, [])
        assert notification.header.revision >= revision
        call.cancel()


async def test_large_revision_is_fragmented_when_the_client_asks(tmp_path: Path) -> None:
    async with serve_api(tmp_path / "db", config=FakeConfig(max_request_bytes=1)) as api:
        call = api.watch.Watch()
        await call.write(create(b"/f/", b"/f0", fragment=True))
        await call.write(create(b"/f/", b"/f0", watch_id=9))
        await read(call)
        await read(call)
        value = b"v" * (300 * 1024)  # three of these exceed 512 KiB + 1 byte
        ops = [rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"/f/%d" % i, value=value))
               for i in range(3)]
        await api.etcd.txn(rpc_pb2.TxnRequest(success=ops))  # straight to the store: too big for a request
        pieces: dict[int, list[rpc_pb2.WatchResponse]] = {0: [], 9: []}
        while sum(len(r.events) for r in pieces[0]) < 3 or sum(len(r.events) for r in pieces[9]) < 3:
            response = await read(call)
            pieces[response.watch_id].append(response)
        assert [r.fragment for r in pieces[0]] == [True, True, False]
        assert [len(r.events) for r in pieces[0]] == [1, 1, 1]
        assert [r.fragment for r in pieces[9]] == [False]  # did not ask: one big response
        call.cancel()


def test_fragments_hold_as_many_events_as_fit_and_at_least_one() -> None:
    events = [kv_pb2.Event(kv=kv_pb2.KeyValue(key=b"k%d" % i, value=b"x" * 100)) for i in range(10)]
    whole = rpc_pb2.WatchResponse(header=rpc_pb2.ResponseHeader(revision=9), watch_id=3, events=events)
    parts = fragment_response(whole, max_bytes=400)
    assert [e for part in parts for e in part.events] == events
    assert all(part.ByteSize() < 400 for part in parts)
    assert [part.fragment for part in parts] == [True] * (len(parts) - 1) + [False]
    assert all(part.watch_id == 3 and part.header.revision == 9 for part in parts)
    assert fragment_response(whole, max_bytes=10**6) == [whole]
    one = rpc_pb2.WatchResponse(events=events[:1])
    assert fragment_response(one, max_bytes=10) == [one]


async def test_slow_client_gets_every_event_once_in_order_and_never_blocks_writers(api: Api) -> None:
    api.etcd.store.watch_buffer_events = 4  # tiny, so the watcher falls behind and catches up from history
    call = api.watch.Watch()
    await call.write(create(b"/s/", b"/s0"))
    assert (await read(call)).created
    first = api.etcd.store.current_revision + 1
    for i in range(400):  # the client reads nothing meanwhile; these must all complete
        await api.put(b"/s/%d" % (i % 7), b"%d" % i)
    events = await read_events(call, 400)
    assert [ev.kv.mod_revision for ev in events] == list(range(first, first + 400))
    assert [ev.kv.value for ev in events] == [b"%d" % i for i in range(400)]
    call.cancel()


async def test_watch_of_a_future_revision_waits_for_it(api: Api) -> None:
    now = api.etcd.store.current_revision
    call = api.watch.Watch()
    await call.write(create(b"later", start_revision=now + 2))
    assert (await read(call)).created
    await api.put(b"later", b"skipped")
    await api.put(b"later", b"seen")
    [event] = (await read(call)).events
    assert (event.kv.value, event.kv.mod_revision) == (b"seen", now + 2)
    call.cancel()


async def test_client_going_away_cancels_its_watchers_in_the_store(api: Api) -> None:
    store = api.etcd.store
    made: list[Any] = []
    original = store.watch

    def recording_watch(*args: Any, **kwargs: Any) -> Any:
        made.append(original(*args, **kwargs))
        return made[-1]

    store.watch = recording_watch  # type: ignore[method-assign]
    call = api.watch.Watch()
    await call.write(create(b"a"))
    await call.write(create(b"b", start_revision=1))
    await read(call)
    await read(call)
    call.cancel()
    for _ in range(500):
        if all(watcher.canceled for watcher in made):
            break
        await asyncio.sleep(0.01)
    assert len(made) == 2
    assert all(watcher.canceled for watcher in made)
