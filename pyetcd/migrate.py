"""`pyetcd migrate --from-etcd-data-dir DIR`: a pyetcd data directory from a stopped etcd member's.

The member's backend, ``DIR/member/snap/db``, is an etcd backend without a trailer; it becomes a new
member's data as a restored snapshot would (same flags as `pyetcd snapshot restore`). etcd commits its
backend in batches, so a member that crashed can have acknowledged writes only in its WAL; the WAL is
read too, and its committed tail past the db's consistent index is replayed through pyetcd's applier,
as etcd replays it on restart. A tail holding changes that cannot be replayed (auth changes, entries
that do not parse or are missing) is refused before anything is written.
"""

from __future__ import annotations

import argparse
import fcntl
import os

from pyetcd.config import ConfigError
from pyetcd.etcd_wal_replay import replay_committed_tail
from pyetcd.etcd_wal_tail import consistent_index, unapplied_entries
from pyetcd.restore import add_member_arguments, build_data_dir, check_member_arguments
from pyetcd.snapshot_file import contents_of_etcd_database, is_bbolt
from storage.etcdwal import read_wal


class UnappliedWalError(ConfigError):
    """The etcd member's WAL has committed changes its db file does not hold, and pyetcd cannot replay them."""


REPLAYABLE = frozenset({"put", "delete_range", "txn", "compaction", "lease_grant", "lease_revoke", "alarm"})


def add_migrate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from-etcd-data-dir", required=True,
                        help="The data directory of a stopped etcd member (its member/snap/db and WAL are read).")
    parser.add_argument("--from-etcd-wal-dir", default="",
                        help="That member's WAL directory, when it ran with --wal-dir (default: DIR/member/wal).")
    add_member_arguments(parser)


def etcd_backend_path(data_dir: str) -> str:
    return os.path.join(data_dir, "member", "snap", "db")


def migrate(args: argparse.Namespace) -> None:
    check_member_arguments(args)
    path = etcd_backend_path(args.from_etcd_data_dir)
    with open(path, "rb") as fh:
        try:
            # A running etcd holds bbolt's exclusive lock on its db; its file may change under us.
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"{path} is locked: stop the etcd member before migrating it") from None
        data = fh.read()
    if not is_bbolt(data):
        raise ValueError(f"{path}: invalid database")
    contents = contents_of_etcd_database(data)
    wal_dir = args.from_etcd_wal_dir or os.path.join(args.from_etcd_data_dir, "member", "wal")
    if not os.path.isdir(wal_dir):
        raise ConfigError(f"{wal_dir}: no WAL directory (give --from-etcd-wal-dir if the member ran with --wal-dir)")
    wal = read_wal(wal_dir)
    missing = unapplied_entries(contents, wal)
    unreplayable = [entry for entry in missing if entry.what not in REPLAYABLE]
    if unreplayable:
        first = unreplayable[0]
        raise UnappliedWalError(
            f"{wal_dir} holds {len(unreplayable)} committed change(s) that {path} does not and pyetcd cannot "
            f"replay (the first at index {first.index}: {first.what}; the db's consistent index is "
            f"{consistent_index(contents)}, the WAL's commit index {wal.hard_state.commit}): the etcd member did "
            "not stop cleanly. Start that etcd member and stop it cleanly (SIGTERM), then migrate again")
    if missing:
        contents = replay_committed_tail(contents, wal)
    build_data_dir(args, contents)
