"""Physical compaction in the background, a batch of revisions at a time (etcd's scheduleCompaction).

A compaction is applied in two steps, as in etcd. The write batch that applies it records the
revision as scheduled and compacts the in-memory key index; from then on reads below it fail and the
revisions it dropped are unreachable. Deleting those revisions from LMDB is left to this worker
thread, which walks the stored revisions in order, deletes up to `batch_limit` of the unreachable
ones per LMDB write transaction, pauses between batches so that the applier's batches get the
writer lock in between, and records the revision as finished in its last transaction. Done inline,
a compaction over a long history held the applier, and with it the event loop, for seconds.

A crash part-way leaves `scheduledCompactRev` above `finishedCompactRev`; the store then compacts
its rebuilt index at the scheduled revision and hands the rest back to this worker on open.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from storage.mvcc import backend as be
from storage.mvcc.backend import Backend
from storage.mvcc.revision import Revision, bytes_to_rev, rev_to_bytes

BATCH_LIMIT = 1000
"""Revisions deleted per LMDB write transaction (etcd's compaction batch limit)."""
BATCH_PAUSE_S = 0.01
"""Pause between two batches (etcd's 10 ms), so that write batches are never held off for long."""


@dataclass
class _Scheduled:
    revision: int
    keep: set[Revision]
    resume_from: bytes = b""
    """The first stored revision key not yet looked at."""


class CompactionWorker:
    """Deletes compacted revisions in batches on its own thread; one compaction after another.

    `use_backend` runs a function with the store's current backend while a defragment or snapshot
    install cannot swap it (the store's gate), never holding the store lock: the applier may hold that
    lock while it waits for the LMDB writer lock this worker holds during a batch.
    """

    def __init__(self, use_backend: Callable[[Callable[[Backend], bool]], bool | None], *,
                 batch_limit: int = BATCH_LIMIT, pause_s: float = BATCH_PAUSE_S) -> None:
        self._use_backend = use_backend
        self.batch_limit = batch_limit if batch_limit > 0 else BATCH_LIMIT  # as etcd's mvcc reads 0 or less
        self.pause_s = pause_s
        self._queue: deque[_Scheduled] = deque()
        self._changed = threading.Condition()
        self._finished = 0
        self._stopping = False
        self._thread: threading.Thread | None = None

    @property
    def finished(self) -> int:
        """The newest revision whose compaction is fully on disk (0: none since the store opened)."""
        return self._finished

    def schedule(self, revision: int, keep: set[Revision]) -> None:
        """Delete every stored revision at or below `revision` that is not in `keep`."""
        with self._changed:
            if self._stopping:
                return
            self._queue.append(_Scheduled(revision, keep))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="mvcc-compaction", daemon=True)
                self._thread.start()
            self._changed.notify_all()

    def wait_finished(self, revision: int, timeout: float | None = None) -> bool:
        """Wait until the compaction at `revision` (or a later one) is on disk; False on timeout or stop."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while self._finished < revision and not self._stopping:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return self._finished >= revision

    def pending(self) -> bool:
        with self._changed:
            return bool(self._queue)

    def forget(self) -> None:
        """Drop the compactions not started or part-done: the data they were for is being replaced (a
        snapshot install; the caller holds the store's swap, so no batch of this worker is running)."""
        with self._changed:
            self._queue.clear()
            self._changed.notify_all()

    def stop(self) -> None:
        """Stop after the batch in progress; what is left resumes when the store opens next."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._queue and not self._stopping:
                    self._changed.wait()
                if self._stopping:
                    return
                job = self._queue[0]
            done = self._use_backend(functools.partial(self._delete_batch, job=job))
            if done is None:  # the store is closed
                return
            if done:
                with self._changed:
                    if self._queue and self._queue[0] is job:
                        self._queue.popleft()
                    self._finished = max(self._finished, job.revision)
                    self._changed.notify_all()
            else:
                time.sleep(self.pause_s)

    def _is_current(self, job: _Scheduled) -> bool:
        with self._changed:
            return bool(self._queue) and self._queue[0] is job and not self._stopping

    def _delete_batch(self, backend: Backend, job: _Scheduled) -> bool:
        """One LMDB write transaction of at most `batch_limit` deletions; True once the job is done.

        Runs where no swap can happen; a job forgotten by a swap that ran just before is not touched."""
        if not self._is_current(job):
            return False
        upper = rev_to_bytes(Revision(job.revision + 1))
        keep = job.keep
        deleted = 0
        txn: Any = backend.begin(write=True)
        try:
            cursor = txn.cursor(db=backend.key_db)
            more = cursor.set_range(job.resume_from) if job.resume_from else cursor.first()
            while more and deleted < self.batch_limit:
                raw = cursor.key()
                if raw >= upper:
                    more = False
                    break
                if bytes_to_rev(raw) in keep:
                    more = cursor.next()
                else:
                    deleted += 1
                    more = cursor.delete() and bool(cursor.key())
            finished = not more
            if finished:
                if backend.get_revision(txn, be.FINISHED_COMPACT) < job.revision:
                    backend.put_revision(txn, be.FINISHED_COMPACT, job.revision)
            else:
                job.resume_from = bytes(cursor.key())
        except BaseException:
            txn.abort()
            raise
        txn.commit()
        return finished
